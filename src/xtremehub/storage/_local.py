"""Local-directory store: the embedded default (plain paths and ``file://`` URLs)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from xtremehub.errors import AccessDenied, InvalidRange, ObjectNotFound, StorageError
from xtremehub.storage.base import ObjectInfo, PutSource, Store
from xtremehub.storage.chunks import iter_chunks

__all__ = ["LocalStore"]

_TMP_PREFIX = ".xhub-tmp-"


class LocalStore(Store):
    """Keys are ``/``-separated paths below ``root``; URLs are absolute paths.

    Writes go to a temporary file in the same directory, are fsynced and then
    renamed, so a reader never sees a half-written object.

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

    def _translate(self, key: str, exc: OSError) -> StorageError:
        url = self.url(key)
        if isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.errno == errno.EISDIR:
            return ObjectNotFound(url, f"no such file ({exc.strerror})")
        if isinstance(exc, PermissionError):
            return AccessDenied(url, f"permission denied ({exc.strerror})")
        return StorageError(url, f"{type(exc).__name__}: {exc}")

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise self._translate(key, exc) from exc

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if start > size:
                    raise InvalidRange(self.url(key), f"bytes [{start}, {end}) start past the end (size {size})")
                return os.pread(fh.fileno(), end - start, start)
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise self._translate(key, exc) from exc

    def put(self, key: str, data: PutSource) -> ObjectInfo:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in iter_chunks(data):
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._translate(key, exc) from exc
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
        try:
            st = self._path(key).stat()
        except OSError as exc:
            raise self._translate(key, exc) from exc
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(self.url(key), "is a directory, not an object")
        return self._info(key, st)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        directory, _, _ = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
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
                yield self._info(key, st)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except OSError as exc:
            raise self._translate(key, exc) from exc

    def copy(self, src: str, dst: str) -> ObjectInfo:
        target = self._path(dst)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(self._path(src), tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._translate(src, exc) from exc
        return self.head(dst)
