"""One process owns a data directory: an exclusive ``fcntl`` lock on ``<data_dir>/LOCK``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> lock = DataDirLock.acquire(d)
    >>> DataDirLock.acquire(d)
    Traceback (most recent call last):
    ...
    xtremehub.errors.DataDirLocked: ... is owned by process ...
    >>> lock.release()
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from xtremehub.errors import DataDirLocked

__all__ = ["DataDirLock"]


class DataDirLock:
    """Held for the lifetime of a store; the kernel drops it when the process dies."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirLocked(f"data directory {data_dir} is owned by process {owner}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
