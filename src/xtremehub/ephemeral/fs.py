"""``fsspec`` file system for ``xhub-eph://`` URLs: pandas, pyarrow, xarray read and write Tier 0.

Importing this module registers the protocol (the ``fsspec.specs`` entry point of
the package does it without an import). Directories are implied by ``/`` in keys,
as on S3. Reads are ranged (zero-copy file reads on the service's node); a file
opened for writing is spooled locally and stored in one atomic put on ``close``.

Example:
    >>> import fsspec, tempfile
    >>> from pathlib import Path
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> settings = Settings(home=Path(tempfile.mkdtemp()))
    >>> with NodeService(TierConfig(memory_limit="16MiB"), settings).start():
    ...     with fsspec.open("xhub-eph://frames/a.csv", "w", settings=settings) as fh:
    ...         _ = fh.write("x,y\\n1,2\\n")
    ...     with fsspec.open("xhub-eph://frames/a.csv", "r", settings=settings) as fh:
    ...         fh.read()
    ...     fsspec.filesystem("xhub-eph", settings=settings).ls("frames", detail=False)
    'x,y\\n1,2\\n'
    ['frames/a.csv']
"""

from __future__ import annotations

import io
import tempfile
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from xtremehub import storage
from xtremehub.config import Settings, default_settings
from xtremehub.errors import ObjectNotFound

__all__ = ["EphemeralFileSystem"]


class EphemeralFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec has no type hints
    """The node service's buckets as an fsspec file system (``storage_options``: ``settings``)."""

    protocol = ("xhub-eph",)
    root_marker = ""

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or default_settings()

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        text = str(path)
        if text.startswith("xhub-eph://"):
            text = text[len("xhub-eph://") :]
        return text.rstrip("/")

    def _url(self, path: str) -> str:
        return "xhub-eph://" + self._strip_protocol(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        bucket, _, prefix = path.partition("/")
        entries: dict[str, dict[str, Any]] = {}
        base = f"{prefix}/" if prefix else ""
        for info in storage.list(f"xhub-eph://{bucket}/{base}", settings=self.settings):
            rest = info.key[len(base) :]
            head, slash, _ = rest.partition("/")
            name = f"{bucket}/{base}{head}"
            if slash:
                entries.setdefault(name, {"name": name, "size": 0, "type": "directory"})
            else:
                entries[name] = {"name": name, "size": info.size, "type": "file", "etag": info.etag}
        if not entries:
            try:
                return [self.info(path)] if detail else [path]
            except FileNotFoundError:
                raise FileNotFoundError(self._url(path)) from None
        listed = [entries[k] for k in sorted(entries)]
        return listed if detail else [e["name"] for e in listed]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        try:
            head = storage.head(self._url(path), settings=self.settings)
            return {"name": path, "size": head.size, "type": "file", "etag": head.etag, "mtime": head.mtime}
        except (ObjectNotFound, ValueError):
            pass
        bucket, _, prefix = path.partition("/")
        listing = storage.list(
            f"xhub-eph://{bucket}/{prefix}/" if prefix else f"xhub-eph://{bucket}/", settings=self.settings
        )
        if next(iter(listing), None) is not None:
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(self._url(path))

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, **kwargs: Any) -> Any:
        url = self._url(path)
        if "r" in mode:
            return storage.open(url, block_size=block_size or 4 * 1024 * 1024, settings=self.settings)
        if "w" in mode:
            return _WriteFile(url, self.settings)
        raise ValueError(f"{url}: mode {mode!r} is not supported (objects are written whole: use 'rb' or 'wb')")

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        url = self._url(path)
        if start is None and end is None:
            return storage.get(url, settings=self.settings)
        size = storage.head(url, settings=self.settings).size
        lo = 0 if start is None else (start if start >= 0 else max(0, size + start))
        hi = size if end is None else (end if end >= 0 else max(0, size + end))
        return storage.get_range(url, lo, max(lo, min(hi, size)), settings=self.settings)

    def pipe_file(self, path: str, value: bytes, **kwargs: Any) -> None:
        storage.put(self._url(path), value, settings=self.settings)

    def rm_file(self, path: str) -> None:
        storage.delete(self._url(path), settings=self.settings)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        storage.copy(self._url(path1), self._url(path2), settings=self.settings)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Directories are implied by keys: nothing to do."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Directories are implied by keys: nothing to do."""


class _WriteFile(io.RawIOBase):
    """Bytes written are spooled (in memory, then a temporary file) and put on close, atomically."""

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__()
        self.name = url
        self._settings = settings
        self._spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - closed in close()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._spool.write(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._spool.seek(0)
            storage.put(self.name, self._spool, settings=self._settings)
        finally:
            self._spool.close()
            super().close()


fsspec.register_implementation("xhub-eph", EphemeralFileSystem, clobber=True)
