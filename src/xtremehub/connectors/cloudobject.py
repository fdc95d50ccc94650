"""``CloudObject``: one object in storage, its format, and its index stored beside it.

Example:
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.genomics import FASTQGZip
    >>> co = CloudObject.from_path(FASTQGZip, "s3://bucket/runs/reads.fastq.gz")
    >>> co.metadata_url
    's3://bucket/runs/.xhub/reads.fastq.gz.fastq_gzip.xhidx'
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from xtremehub import storage
from xtremehub.config import Settings, default_settings
from xtremehub.connectors.base import DataSlice, Format, Index, Strategy
from xtremehub.connectors.registry import format_class
from xtremehub.errors import ConfigError, NotPreprocessed, ObjectNotFound, StaleIndex
from xtremehub.storage import ObjectInfo
from xtremehub.storage.access import StoreAccess

if TYPE_CHECKING:
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = ["CloudObject"]

log = logging.getLogger(__name__)


class CloudObject:
    """An object to process in place: ``preprocess()`` once, then ``partition()`` at will.

    Args:
        fmt: a :class:`~xtremehub.connectors.base.Format` class, instance or registered name.
        url: the object (local path, ``s3://``, ``mem://``...). It is never modified.
        metadata_url: where the index lives (default: ``<dir>/.xhub/<name>.<format>.xhidx``).
        settings: storage settings (default: this process's).
        format_options: options of the format (e.g. ``spacing`` for gzip checkpoints).
    """

    def __init__(
        self,
        fmt: type[Format] | Format | str,
        url: str,
        *,
        metadata_url: str | None = None,
        settings: Settings | None = None,
        **format_options: Any,
    ) -> None:
        if isinstance(fmt, str):
            fmt = format_class(fmt)
        self.format: Format = fmt(**format_options) if isinstance(fmt, type) else fmt
        self.url = str(url)
        self.settings = settings or default_settings()
        self._metadata_url = metadata_url
        self._index: Index | None = None

    @classmethod
    def from_path(cls, fmt: type[Format] | Format | str, url: str, **kwargs: Any) -> CloudObject:
        """Dataplug's spelling of the constructor."""
        return cls(fmt, url, **kwargs)

    def __repr__(self) -> str:
        return f"CloudObject({type(self.format).__name__}, {self.url!r})"

    @property
    def metadata_url(self) -> str:
        if self._metadata_url:
            return self._metadata_url
        head, sep, name = self.url.rpartition("/")
        return f"{head}{sep}.xhub/{name}.{self.format.name}.xhidx"

    @property
    def access(self) -> StoreAccess:
        """The object's settings as slices carry them to workers (without credentials)."""
        return StoreAccess(self.settings)

    @cached_property
    def info(self) -> ObjectInfo:
        """Size, etag and mtime of the object (read once)."""
        return storage.head(self.url, settings=self.settings)

    @property
    def size(self) -> int:
        return self.info.size

    def identity(self) -> dict[str, Any]:
        """What must not change for an index to stay valid."""
        return {
            "size": self.info.size,
            "etag": self.info.etag,
            "format": self.format.name,
            **self.format.companion_identity(self),
        }

    # -- preprocessing -------------------------------------------------------------------
    def preprocess(self, executor: MapperLike | None = None, *, force: bool = False) -> CloudObject:
        """Build the index beside the object unless a fresh one exists (``force`` rebuilds)."""
        self.__dict__.pop("info", None)  # look at the object as it is now
        if not force and self.is_preprocessed():
            log.info("%s: fresh index at %s", self.url, self.metadata_url)
            return self
        start = time.perf_counter()
        index = self.format.build_index(self, executor)
        index.identity = self.identity()
        index.attributes.setdefault("preprocess_seconds", round(time.perf_counter() - start, 3))
        storage.put(self.metadata_url, index.to_bytes(), settings=self.settings)
        self._index = index
        log.info("%s: indexed in %.2fs -> %s", self.url, time.perf_counter() - start, self.metadata_url)
        return self

    def _load_index(self) -> Index | None:
        try:
            raw = storage.get(self.metadata_url, settings=self.settings)
        except ObjectNotFound:
            return None
        return Index.from_bytes(raw, self.metadata_url)

    def is_preprocessed(self) -> bool:
        """Whether an index exists and matches the object as it is now."""
        index = self._index or self._load_index()
        if index is None or index.version != self.format.index_version:
            return False
        if index.identity != self.identity():
            return False
        self._index = index
        return True

    @property
    def index(self) -> Index:
        """The index; raises :class:`NotPreprocessed` or :class:`StaleIndex` rather than misread."""
        if self._index is None:
            self._index = self._load_index()
            if self._index is None:
                raise NotPreprocessed(f"{self.url}: no index at {self.metadata_url}; call preprocess() first")
        if self._index.version != self.format.index_version:
            raise StaleIndex(f"{self.url}: index version {self._index.version} is outdated; call preprocess()")
        if self._index.identity != self.identity():
            raise StaleIndex(
                f"{self.url}: the object changed since it was indexed "
                f"(index {self._index.identity}, object {self.identity()}); call preprocess() again"
            )
        return self._index

    @property
    def attributes(self) -> dict[str, Any]:
        """What preprocessing learned (counts, sizes, header fields)."""
        return dict(self.index.attributes)

    def __getitem__(self, name: str) -> Any:
        return self.index.attributes[name]

    # -- partitioning --------------------------------------------------------------------
    def partition(self, strategy: Strategy | str, **params: Any) -> list[DataSlice]:
        """Cut the object into slices using only the index (no data is read)."""
        if isinstance(strategy, str):
            found = type(self.format).strategies.get(strategy)
            if found is None:
                known = ", ".join(sorted(type(self.format).strategies))
                raise ConfigError(f"format {self.format.name!r} has no strategy {strategy!r}; known: {known}")
            strategy = found
        self.__dict__.pop("info", None)  # re-check the object's identity now
        _ = self.index
        return list(strategy(self, **params))
