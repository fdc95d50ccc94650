"""The inflating half of the one pass (:mod:`~xtremehub.connectors.codecs.gzip_stream`), free of XtremeHub imports.

rapidgzip inflates the object, offering checkpoints as it goes, and exports its index
thinned to the checkpoints kept. :mod:`~xtremehub.connectors.codecs.gzip_stream` runs
:func:`inflate` in a thread, or this file as a script in a child process (by its path,
``python -S``: the child imports only the standard library and rapidgzip, not the
``xtremehub`` package, which takes 0.1 s of CPU to import). The child reads the job
(``(size, chunk_size, parallel, spacing, part, behind)``) and the object from stdin
(pieces of ``part`` bytes, then an empty one) and writes to (a copy of) stdout pickled
``("text", offsets)`` each followed by the raw text, then ``("index", blob)`` or
``("error", why)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["PipeReader", "inflate", "thin_gzidx"]

_READ = 4 * 1024 * 1024  # decompressed bytes per read


def inflate(
    raw: io.RawIOBase,
    *,
    chunk_size: int,
    parallel: int,
    spacing: int,
    put: Callable[[list[int], bytes], None],
    stop: Callable[[], bool],
) -> bytes:
    """rapidgzip over the object read from ``raw``: ``put(new checkpoint offsets, text)`` per
    piece, an empty piece last; returns the exported index (thinned for ``spacing``)."""
    import rapidgzip

    blob = io.BytesIO()
    announced = 0
    gz = rapidgzip.RapidgzipFile(raw, parallelization=parallel, chunk_size=chunk_size)
    try:
        while not stop():
            chunk = gz.read(_READ)
            offsets = sorted(gz.available_block_offsets().values())
            put(offsets[announced:], chunk)
            announced = len(offsets)
            if not chunk:
                gz.export_index(blob)
                break
    finally:
        gz.close()
    return thin_gzidx(blob.getvalue(), spacing)


def thin_gzidx(blob: bytes, spacing: int) -> bytes:
    """A ``GZIDX`` index without the points :func:`~xtremehub.connectors.codecs.gzip_index.parse_gzidx`
    would drop for ``spacing``: the same checkpoints and member count parsed from it, a fraction of
    the bytes to pipe (rapidgzip exports a point with its 32 KiB window per chunk, 34 MiB for 1 GiB
    of FASTQ). Kept: the points ``parse_gzidx`` keeps, and every window-less point at a byte
    boundary before the end (the member starts it counts). Anything unexpected is returned as is.

    Example:
        >>> import struct
        >>> head = b"GZIDX" + bytes([1, 0]) + struct.pack("<QQIII", 50, 300, 0, 2, 3)
        >>> points = [struct.pack("<QQBB", c, u, 0, w) for c, u, w in ((10, 0, 0), (20, 100, 1), (30, 250, 1))]
        >>> thin = thin_gzidx(head + b"".join(points) + b"abcd", 200)
        >>> struct.unpack_from("<I", thin, 31)[0], thin[-2:]
        (2, b'cd')
    """
    if blob[:5] != b"GZIDX" or len(blob) < 35 or blob[5] != 1:
        return blob
    csize, usize, zspacing, wsize, npoints = struct.unpack_from("<QQIII", blob, 7)
    view = memoryview(blob)
    points: list[bytes | memoryview] = []
    windows: list[bytes | memoryview] = []
    window_at, last = 35 + 18 * npoints, -1
    for k in range(npoints):
        at = 35 + 18 * k
        _, uncmp, bits, has_window = struct.unpack_from("<QQBB", blob, at)
        window = view[window_at : window_at + wsize] if has_window else b""
        window_at += len(window)
        kept = last < 0 or not (uncmp >= usize or uncmp - last < spacing)
        if kept:
            last = uncmp
        if kept or (not has_window and bits == 0 and uncmp < usize):
            points.append(view[at : at + 18])
            windows.append(window)
    head = struct.pack("<QQIII", csize, usize, zspacing, wsize, len(points))
    return b"".join([view[:7], head, *points, *windows])


class PipeReader(io.RawIOBase):
    """The object as the parent pipes it (messages of ``part`` bytes), a read-only file
    seekable back over the last ``behind`` parts (rapidgzip seeks back up to about a
    chunk, 1.2 MiB measured, and to the end only to learn the size)."""

    def __init__(self, conn: Connection, size: int, *, part: int, behind: int) -> None:
        super().__init__()
        self._conn = conn
        self._size, self._pos = size, 0
        self._part, self._behind = part, behind
        self._parts: dict[int, bytes] = {}
        self._received = 0  # parts received so far

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        k, at = divmod(self._pos, self._part)
        while self._received <= k:
            data = self._conn.recv_bytes()
            if not data:
                raise OSError(f"the object ends at byte {self._received * self._part} of {self._size}")
            self._parts[self._received] = data
            self._parts.pop(self._received - self._behind - 1, None)
            self._received += 1
        if (piece := self._parts.get(k)) is None:
            raise OSError(f"cannot read back at byte {self._pos}: more than {self._behind} parts behind")
        n = max(0, min(len(view), len(piece) - at))
        if n == 0:  # a short part before the size: the object ended early
            raise OSError(f"the object ends at byte {k * self._part + len(piece)} of {self._size}")
        view[:n] = memoryview(piece)[at : at + n]
        self._pos += n
        return n


def main() -> None:
    """Entry of the child process: the job from stdin, messages to (a copy of) stdout."""
    conn = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stray prints must not mix into the messages
    source = Connection(os.dup(0), writable=False)
    size, chunk_size, parallel, spacing, part, behind = source.recv()

    def put(offsets: list[int], chunk: bytes) -> None:
        conn.send(("text", offsets))
        conn.send_bytes(chunk)

    try:
        raw = PipeReader(source, size, part=part, behind=behind)
        blob = inflate(raw, chunk_size=chunk_size, parallel=parallel, spacing=spacing, put=put, stop=lambda: False)
    except BrokenPipeError:
        return  # the parent stopped reading
    except BaseException as exc:  # reported to the parent, which falls back to two passes
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("index", blob))
    conn.close()


if __name__ == "__main__":
    main()
