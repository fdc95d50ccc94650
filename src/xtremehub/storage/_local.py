"""Local-directory store: the embedded default (plain paths and ``file://`` URLs)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from xtremehub.errors import AccessDenied, InvalidRange, ObjectNotFound, StorageError
from xtremehub.storage.base import ObjectInfo, PutSource, Store
from xtremehub.storage.chunks import iter_chunks
from xtremehub.storage.writeback import write_in_steps

__all__ = ["LocalStore"]

_TMP_PREFIX = ".xhub-tmp-"


def _fsync_directory(path: Path) -> None:
    """Make the entries of directory ``path`` durable (a rename into it); a no-op where directories
    cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - not POSIX
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore(Store):
    """Keys are ``/``-separated paths below ``root``; URLs are absolute paths.

    Writes go to a temporary file in the same directory, are fsynced and then
    renamed, so a reader never sees a half-written object. Large objects reach the disk in
    1 MiB steps as they are written (:mod:`~xtremehub.storage.writeback`), so that an fsync
    of another file meanwhile (a stream store's write-ahead log) does not wait behind the
    whole object.

    Example:
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.put("a/b.txt", b"hi").size
        2
        >>> [info.key for info in store.list("a/")]
        ['a/b.txt']
    """

    max_concurrency = 8

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStore) and other.root == self.root

    def __hash__(self) -> int:
        return hash(("local", self.root))

    def url(self, key: str) -> str:
        return str(self.root / key)

    def _path(self, key: str) -> Path:
        return self.root / key

    @contextmanager
    def _os_errors(self, key: str) -> Iterator[None]:
        """The one boundary where ``OSError`` becomes a typed storage error naming the object."""
        try:
            yield
        except StorageError:
            raise
        except OSError as exc:
            url = self.url(key)
            if isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.errno == errno.EISDIR:
                raise ObjectNotFound(url, f"no such file ({exc.strerror})") from exc
            if isinstance(exc, PermissionError):
                raise AccessDenied(url, f"permission denied ({exc.strerror})") from exc
            raise StorageError(url, f"{type(exc).__name__}: {exc}") from exc

    @contextmanager
    def _atomic_file(self, key: str) -> Iterator[str]:
        """A temporary path beside ``key`` that replaces it on success and is removed on failure."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        os.close(fd)
        try:
            yield tmp
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)  # the rename itself survives a crash

    def get(self, key: str) -> bytes:
        with self._os_errors(key):
            return self._path(key).read_bytes()

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        with self._os_errors(key), open(self._path(key), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if start > size:
                raise InvalidRange(self.url(key), f"bytes [{start}, {end}) start past the end (size {size})")
            return os.pread(fh.fileno(), end - start, start)

    def put(self, key: str, data: PutSource) -> ObjectInfo:
        with self._os_errors(key), self._atomic_file(key) as tmp, open(tmp, "wb") as fh:
            write_in_steps(fh, iter_chunks(data))
            os.fsync(fh.fileno())
        return self.head(key)

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            url=self.url(key),
            key=key,
            size=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            mtime=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        )

    def head(self, key: str) -> ObjectInfo:
        with self._os_errors(key):
            st = self._path(key).stat()
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(self.url(key), "is a directory, not an object")
        return self._info(key, st)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        directory, _, _ = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        with self._os_errors(directory or ""):
            if not base.is_dir():
                return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue  # removed while listing
                except OSError:
                    with self._os_errors(key):
                        raise
                yield self._info(key, st)

    def delete(self, key: str) -> None:
        with self._os_errors(key):
            self._path(key).unlink()

    def copy(self, src: str, dst: str) -> ObjectInfo:
        with self._os_errors(src), self._atomic_file(dst) as tmp:
            shutil.copyfile(self._path(src), tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        return self.head(dst)
