"""Write a large file in steps whose bytes reach the disk as they go (Linux ``sync_file_range``).

A large object written to the page cache and then fsynced in one go reaches the disk as one
burst: an ``fdatasync`` of another file on the same disk meanwhile (a stream store's
write-ahead log acknowledging an event) waits behind all of it, on ext4 also because its
journal commit must first write the burst's newly allocated blocks. Written in steps of
``WRITEBACK_STEP`` bytes, each step's writeback started and waited for before the next
(``sync_file_range``: no journal commit, no cache flush), another file's ``fdatasync`` waits
behind one step at most; the final ``fsync`` still makes the whole file durable. Where
``sync_file_range`` is missing (not Linux) the steps are plain writes.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryFile() as fh:
    ...     write_in_steps(fh, [b"a" * 3, b"b" * 5], step=4)
    ...     _ = fh.seek(0)
    ...     fh.read()
    8
    b'aaabbbbb'
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import BinaryIO

__all__ = ["WRITEBACK_STEP", "write_in_steps"]

log = logging.getLogger(__name__)

#: Bytes written before their writeback is started and waited for.
WRITEBACK_STEP = 1024 * 1024

# SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
_WAIT_WRITE_WAIT = 1 | 2 | 4


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()
#: Errors that say the call is not available here (not a failed write): steps become plain writes.
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP, errno.EPERM})


def write_back(fd: int, offset: int, length: int) -> None:
    """Write ``[offset, offset + length)`` of ``fd`` to the disk and wait (no-op without ``sync_file_range``).

    Not a durability point (no metadata, no device cache flush): the caller still fsyncs.

    Raises:
        OSError: the writeback failed (an I/O error). It must not be swallowed: the kernel
            reports a write error once per file, so the caller's later ``fsync`` would succeed
            with pages lost. Where the call is not supported (a filesystem or a sandbox
            refusing it) the steps become plain writes for the rest of the process.
    """
    global _SYNC_FILE_RANGE
    if _SYNC_FILE_RANGE is None or _SYNC_FILE_RANGE(fd, offset, length, _WAIT_WRITE_WAIT) == 0:
        return
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        log.info("sync_file_range unsupported here (%s): large local writes are plain writes", os.strerror(code))
        _SYNC_FILE_RANGE = None
        return
    raise OSError(code, f"writeback of bytes {offset}-{offset + length} failed: {os.strerror(code)}")


def write_in_steps(fh: BinaryIO, chunks: Iterable[bytes], *, step: int = WRITEBACK_STEP) -> int:
    """Write ``chunks`` to ``fh`` (at its start), each ``step`` bytes on disk before the next; returns the size.

    The caller fsyncs afterwards, as with plain writes.
    """
    fd = fh.fileno()
    done = pending = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            piece = view[: step - pending]
            fh.write(piece)
            pending += len(piece)
            view = view[len(piece) :]
            if pending >= step:
                fh.flush()
                write_back(fd, done, pending)
                done, pending = done + pending, 0
    fh.flush()
    return done + pending
