"""The slice half of the record engine: records ``[first, first + count)`` read from a checkpoint.

A format's slice class subclasses :class:`RecordSlice` and turns the text from
:meth:`RecordSlice.text` (which starts exactly at ``record_start``, the first
record at or after the checkpoint) into its records. Every slice carries the
storage settings of the :class:`~xtremehub.connectors.CloudObject` it was cut
from, so a worker reads with them, not with its process defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from xtremehub.connectors.base import DataSlice
from xtremehub.connectors.codecs.gzip_index import Checkpoint
from xtremehub.connectors.codecs.spans import decoded
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

if TYPE_CHECKING:
    from xtremehub.config import Settings
    from xtremehub.connectors.codecs.record_index import SlicePlan
    from xtremehub.connectors.codecs.source import RangeSource

__all__ = ["RecordSlice"]

T = TypeVar("T", bound="RecordSlice")


@dataclass(frozen=True, kw_only=True)
class RecordSlice(DataSlice):
    """Records ``[first, first + count)`` of an object, read from one checkpoint."""

    url: str
    object_size: int
    checkpoint: Checkpoint
    record_start: int  # uncompressed offset of the first record at/after the checkpoint
    skip: int  # records to skip after record_start
    first: int
    count: int
    planned_end: int  # compressed byte offset the slice expects to need
    gz: bool = True
    access: StoreAccess = PROCESS_DEFAULTS  # the object's settings, without credentials when pickled

    @classmethod
    def planned(
        cls: type[T], url: str, object_size: int, plan: SlicePlan, *, gz: bool, settings: Settings | None, **extra: Any
    ) -> T:
        """The slice of a :class:`~xtremehub.connectors.codecs.record_index.SlicePlan`."""
        return cls(
            url=url,
            object_size=object_size,
            checkpoint=plan.checkpoint,
            record_start=plan.record_start,
            skip=plan.skip,
            first=plan.first,
            count=plan.count,
            planned_end=plan.planned_end,
            gz=gz,
            access=StoreAccess(settings),
            **extra,
        )

    @property
    def byte_range(self) -> tuple[int, int]:
        """The compressed bytes the slice plans to fetch ``[start, end)``."""
        return self.checkpoint.byte_offset, self.planned_end

    @contextmanager
    def text(self, source: RangeSource | None = None) -> Iterator[Iterator[bytes]]:
        """Context manager: the text from ``record_start`` to the end of the object, as chunks."""
        with decoded(
            self.url,
            self.object_size,
            self.checkpoint,
            self.planned_end,
            gz=self.gz,
            settings=self.access.settings_for(self.url),
            source=source,
        ) as chunks:
            yield _from(chunks, self.record_start - self.checkpoint.uncompressed)


def _from(chunks: Iterator[bytes], cut: int) -> Iterator[bytes]:
    """``chunks`` without their first ``cut`` bytes (they belong to the previous slice)."""
    for chunk in chunks:
        if cut >= len(chunk):
            cut -= len(chunk)
            continue
        yield chunk[cut:] if cut else chunk
        cut = 0
