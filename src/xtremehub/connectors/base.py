"""The connector contracts: a :class:`Format` indexes an object; a :class:`DataSlice` reads part of it.

A format turns one pass over an object into a small :class:`Index` stored beside
it; partition strategies (plain functions ``strategy(cloud_object, **params)``)
cut the object into slices using the index only. A slice is a small picklable
description (URL, byte ranges, the few index entries it needs); ``get()`` on any
worker fetches just its byte ranges.
"""

from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from xtremehub.errors import CorruptData

if TYPE_CHECKING:
    from xtremehub.connectors.cloudobject import CloudObject
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = ["DataSlice", "Format", "Index", "Strategy"]

_MAGIC = b"XHIDX1\n"

#: A partition strategy: ``strategy(cloud_object, **params) -> list of slices``.
Strategy = Callable[..., "Sequence[DataSlice]"]


@dataclass
class Index:
    """What preprocessing learned: JSON-able ``attributes`` and ``data``, plus a binary ``blob``.

    ``identity`` ties the index to one version of the object (size and etag).
    """

    format: str
    version: int
    identity: dict[str, Any]
    attributes: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    blob: bytes = b""

    def to_bytes(self) -> bytes:
        header = json.dumps(
            {
                "format": self.format,
                "version": self.version,
                "identity": self.identity,
                "attributes": self.attributes,
                "data": self.data,
            },
            separators=(",", ":"),
        ).encode()
        return _MAGIC + struct.pack("<Q", len(header)) + header + self.blob

    @classmethod
    def from_bytes(cls, raw: bytes, url: str) -> Index:
        if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + 8:
            raise CorruptData(url, 0, "not an XtremeHub index", "uncompressed")
        (n,) = struct.unpack_from("<Q", raw, len(_MAGIC))
        start = len(_MAGIC) + 8
        try:
            header = json.loads(raw[start : start + n])
        except ValueError as exc:
            raise CorruptData(url, start, f"index header is not JSON ({exc})", "uncompressed") from exc
        return cls(
            header["format"],
            header["version"],
            header["identity"],
            header["attributes"],
            header.get("data", {}),
            raw[start + n :],
        )


class Format(ABC):
    """How to index one kind of object. Subclasses are registered by ``name``."""

    name: ClassVar[str] = ""
    #: Bump when the index layout changes: older indexes are rebuilt, never misread.
    index_version: ClassVar[int] = 1
    #: Strategies usable by name in ``CloudObject.partition("name", ...)``.
    strategies: ClassVar[dict[str, Strategy]] = {}

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        """Read the object (possibly in parallel on ``executor``) and describe it."""

    def companion_identity(self, co: CloudObject) -> dict[str, Any]:
        """Identity of companion objects the index also depends on (imzML's ``.ibd``); none by default."""
        return {}


class DataSlice(ABC):
    """A lazily evaluated part of an object; small and picklable."""

    @abstractmethod
    def iter_chunks(self) -> Iterator[bytes]:
        """The slice's content as a stream of byte chunks (constant memory)."""

    def get(self) -> Any:
        """The whole slice's content (bytes unless a format says otherwise)."""
        return b"".join(self.iter_chunks())

    def to_file(self, path: str | Path) -> Path:
        """Write the slice's content to a local file, streaming."""
        target = Path(path)
        with target.open("wb") as fh:
            for chunk in self.iter_chunks():
                fh.write(chunk)
        return target
