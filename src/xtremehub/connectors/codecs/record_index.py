"""The checkpointed record engine: index a record format once, plan slices from the index.

:func:`index_records` is the whole preprocessing of a checkpointed record format
(FASTQ.gz, VCF, FASTA, or your own): checkpoints in one pass (gzip: indexed_gzip,
about every ``spacing`` uncompressed bytes; plain text: every ``spacing`` bytes),
one :class:`~xtremehub.connectors.codecs.spans.Span` per pair of checkpoints,
the format's record scanner mapped over the spans (on the executor given, or
serially in this process when there is none), and the results stitched into a
:class:`RecordIndex`. Partition strategies then ask the index for
:class:`SlicePlan` s (:meth:`RecordIndex.plan`), each starting at the latest
checkpoint at or before its first record and planning to fetch up to the
checkpoint after its last record plus :data:`MARGIN` compressed bytes.

On-disk layout (``Index.data``, JSON, :data:`LAYOUT` ``"xhub-records/1"``); a
format may add keys of its own next to these::

    layout         "xhub-records/1"; anything else raises StaleIndex, never a misread
    gz             true: gzip (resume by inflating from a checkpoint); false: plain text
    text_size      uncompressed size of the object
    num_records    records in the object
    bit_offset     per checkpoint: compressed offset in bits (8 x the byte offset for plain text)
    uncompressed   per checkpoint: uncompressed offset
    window_len     per checkpoint: bytes of its zlib-compressed 32 KiB window in the blob
    record_number  per checkpoint: number of the first record starting at or after it
    record_start   per checkpoint: uncompressed offset of that record (text_size if none)
    first_key      per checkpoint: that record's key as a list (null: none or no keys)
    gzip_members   gzip member starts seen by the checkpoint pass (0 for plain text)

``Index.blob`` holds the windows back to back, in checkpoint order.

Example:
    >>> from xtremehub import storage
    >>> from xtremehub.connectors.codecs.spans import Span, SpanResult, lines_from
    >>> def count_lines(span: Span) -> SpanResult[None]:
    ...     with span.decoded() as chunks:
    ...         starts = [o for o, _ in lines_from(chunks, span.start, span.start) if span.owns(o)]
    ...     return SpanResult(None, len(starts), starts[0] if starts else None, at_end=span.end in starts)
    >>> _ = storage.put("mem://ri/x.txt", b"".join(b"line %d\\n" % i for i in range(1000)))
    >>> index, _ = index_records("mem://ri/x.txt", 8890, count_lines, None, spacing=1000, gz=False)
    >>> index.num_records, len(index.table), index.plan(500, 510, 8890).skip
    (1000, 9, 43)
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from xtremehub import storage
from xtremehub.connectors.codecs import gzip_stream
from xtremehub.connectors.codecs.checkpoint_table import CheckpointTable
from xtremehub.connectors.codecs.gzip_index import Checkpoint, CheckpointScan, build_checkpoints
from xtremehub.connectors.codecs.mapper import MapperLike, as_mapper
from xtremehub.connectors.codecs.spans import RecordKey, Span, SpanResult, stitch
from xtremehub.errors import ConfigError, StaleIndex, XHubError
from xtremehub.storage.access import StoreAccess

if TYPE_CHECKING:
    from xtremehub.config import Settings
    from xtremehub.connectors.base import Index
    from xtremehub.connectors.codecs.gzip_stream import StreamScan

__all__ = ["LAYOUT", "MARGIN", "RecordIndex", "SlicePlan", "checkpoints", "index_records", "is_gzip"]

LAYOUT = "xhub-records/1"
#: Compressed bytes a span or slice plans to fetch past the last checkpoint it needs
#: (its last record usually ends just past it; more is fetched on demand).
MARGIN = 4 * 1024
S = TypeVar("S")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlicePlan:
    """Where a slice of records ``[first, first + count)`` starts reading and how far it plans to."""

    checkpoint: Checkpoint
    record_start: int  # uncompressed offset of the first record at/after the checkpoint
    skip: int  # records to skip from there
    first: int
    count: int
    planned_end: int  # compressed byte offset


@dataclass(frozen=True)
class RecordIndex:
    """Checkpoints and, per checkpoint, the first record at or after it (layout: module docstring)."""

    gz: bool
    text_size: int
    num_records: int
    table: CheckpointTable
    record_number: tuple[int, ...]
    record_start: tuple[int, ...]
    first_key: tuple[RecordKey | None, ...]
    gzip_members: int = 0  # gzip member starts the checkpoint pass saw (0: plain text)

    def to_data(self) -> tuple[dict[str, Any], bytes]:
        """``Index.data`` entries and the blob."""
        data: dict[str, Any] = {
            "layout": LAYOUT,
            "gz": self.gz,
            "text_size": self.text_size,
            "num_records": self.num_records,
            **self.table.columns(),
            "record_number": list(self.record_number),
            "record_start": list(self.record_start),
            "first_key": [list(k) if k is not None else None for k in self.first_key],
            "gzip_members": self.gzip_members,
        }
        return data, self.table.blob

    @classmethod
    def from_data(cls, data: Mapping[str, Any], blob: bytes, url: str) -> RecordIndex:
        """Read an index back; an index of another layout raises :class:`StaleIndex`."""
        layout = data.get("layout")
        if layout != LAYOUT:
            raise StaleIndex(
                f"{url}: the index has record layout {layout!r}, this version reads {LAYOUT!r}; "
                "call preprocess(force=True) to rebuild it"
            )
        return cls(
            bool(data["gz"]),
            int(data["text_size"]),
            int(data["num_records"]),
            CheckpointTable.from_columns(data, blob),
            tuple(data["record_number"]),
            tuple(data["record_start"]),
            tuple(tuple(k) if k is not None else None for k in data["first_key"]),
            int(data["gzip_members"]),
        )

    @classmethod
    def of(cls, index: Index, url: str) -> RecordIndex:
        """The record index inside a format's :class:`~xtremehub.connectors.base.Index`."""
        return cls.from_data(index.data, index.blob, url)

    # -- slice planning ---------------------------------------------------------------------------
    def plan(self, first: int, end: int, object_size: int) -> SlicePlan:
        """Plan for records ``[first, end)``: start at the latest checkpoint at or before
        ``first``; the last record ends where record ``end`` starts, at most one record past
        checkpoint ``e`` (the first whose record number is >= ``end``), so plan up to ``e``."""
        k = max(0, bisect.bisect_right(self.record_number, first) - 1)
        e = bisect.bisect_left(self.record_number, end)
        planned = object_size if e >= len(self.table) else min(object_size, self.table.byte_offset(e) + MARGIN)
        return SlicePlan(
            self.table.checkpoint(k),
            self.record_start[k],
            first - self.record_number[k],
            first,
            end - first,
            max(planned, self.table.byte_offset(k) + 1),
        )

    def plan_bytes(self, start: int, end: int, object_size: int) -> tuple[Checkpoint, int]:
        """Checkpoint and planned compressed end to read uncompressed bytes ``[start, end)``."""
        nxt = bisect.bisect_left(self.table.uncompressed, end)
        planned = object_size if nxt >= len(self.table) else min(object_size, self.table.byte_offset(nxt) + MARGIN)
        return self.table.checkpoint(self.table.at_or_before(start)), planned

    def batch_bounds(self, num_batches: int) -> list[int]:
        """Record boundaries ``[0, ..., num_records]`` of ``num_batches`` (nearly) equal batches;
        a boundary snaps to a checkpoint's first record when one is within a quarter batch,
        so neighbouring slices decompress no byte twice."""
        if num_batches < 1:
            raise ConfigError("num_batches must be >= 1")
        total = self.num_records
        candidates = sorted(set(self.record_number) - {0, total})
        step = total / num_batches
        bounds = [0]
        for i in range(1, num_batches):
            ideal = round(i * total / num_batches)
            j = bisect.bisect_left(candidates, ideal)
            near = [c for c in candidates[max(0, j - 1) : j + 1] if c > bounds[-1]]
            snapped = min(near, key=lambda c: abs(c - ideal)) if near else None
            choice = snapped if snapped is not None and abs(snapped - ideal) <= step / 4 else ideal
            bounds.append(max(choice, bounds[-1]))
        bounds.append(total)
        return bounds

    def fixed_bounds(self, per_batch: int) -> list[int]:
        """Boundaries of batches of exactly ``per_batch`` records (the last may be shorter)."""
        if per_batch < 1:
            raise ConfigError("records per batch must be >= 1")
        return [*range(0, self.num_records, per_batch), self.num_records]

    def byte_bounds(self, bytes_per_batch: int) -> list[int]:
        """Boundaries of batches of about ``bytes_per_batch`` uncompressed bytes, cut at checkpoints."""
        if bytes_per_batch < 1:
            raise ConfigError("bytes_per_batch must be >= 1")
        bounds, next_cut = [0], bytes_per_batch
        for number, start in zip(self.record_number[1:], self.record_start[1:], strict=True):
            if start >= next_cut and number > bounds[-1]:
                bounds.append(number)
                next_cut = start + bytes_per_batch
        if bounds[-1] != self.num_records:
            bounds.append(self.num_records)
        return bounds

    def plans(self, bounds: list[int], object_size: int) -> list[SlicePlan]:
        """One plan per non-empty ``[bounds[i], bounds[i + 1])``."""
        return [self.plan(a, b, object_size) for a, b in itertools.pairwise(bounds) if b > a]


def is_gzip(url: str, settings: Settings | None = None) -> bool:
    """Whether the object starts with the gzip magic bytes."""
    return storage.get_range(url, 0, 2, settings=settings) == b"\x1f\x8b"


def checkpoints(url: str, size: int, *, spacing: int, gz: bool, settings: Settings | None = None) -> CheckpointScan:
    """Checkpoints about every ``spacing`` uncompressed bytes, then an end marker (the text size)."""
    if gz:
        with storage.open(url, settings=settings) as fh:
            return build_checkpoints(fh, url, spacing=spacing)
    return CheckpointScan([Checkpoint(8 * a, a) for a in range(0, size, spacing)] + [Checkpoint(8 * size, size)], 0)


def index_records(
    url: str,
    size: int,
    scanner: Callable[[Span], SpanResult[S]],
    executor: MapperLike | None,
    *,
    spacing: int,
    gz: bool | None = None,
    settings: Settings | None = None,
    stream: Callable[[str], StreamScan[S]] | None = None,
) -> tuple[RecordIndex, list[SpanResult[S]]]:
    """Index an object of ``size`` bytes: checkpoints, ``scanner`` mapped over the spans, stitching.

    ``scanner`` must be picklable (a module-level function or a frozen dataclass) when an
    executor runs it. Without ``executor`` the spans are scanned serially in this process.
    ``gz=None`` looks at the magic bytes. Returns the index and the per-span results (in
    object order) for the format's own statistics.

    ``stream`` (``stream(url) -> StreamScan``): for gzip, when rapidgzip is installed,
    inflate the object only once and scan its records as the text passes
    (:mod:`~xtremehub.connectors.codecs.gzip_stream`; the results are then one, for the
    whole object); should that route fail, the two-pass route runs and raises its errors.
    """
    if gz is None:
        gz = is_gzip(url, settings)
    if gz and stream is not None and gzip_stream.available():
        try:
            return _index_in_one_pass(url, size, stream(url), spacing=spacing, settings=settings)
        except gzip_stream.StreamPassFailed as exc:
            log.info("one-pass indexing of %s failed, indexing in two passes: %s", url, exc)
    scan = checkpoints(url, size, spacing=spacing, gz=gz, settings=settings)
    marks = scan.points
    spans = [
        Span(url, size, p, nxt.uncompressed, min(size, nxt.byte_offset + MARGIN), k == 0, gz, StoreAccess(settings))
        for k, (p, nxt) in enumerate(itertools.pairwise(marks))
    ]
    mapper = as_mapper(executor if len(spans) > 1 else None)
    results = mapper.map(scanner, spans)
    points, text_size = marks[:-1], marks[-1].uncompressed
    numbers, starts, keys = stitch(points, results, text_size)
    index = RecordIndex(
        gz,
        text_size,
        sum(r.count for r in results),
        CheckpointTable.of(points),
        tuple(numbers),
        tuple(starts),
        tuple(keys),
        scan.member_starts,
    )
    return index, results


def _index_in_one_pass(
    url: str, size: int, stream: StreamScan[S], *, spacing: int, settings: Settings | None
) -> tuple[RecordIndex, list[SpanResult[S]]]:
    scan = gzip_stream.checkpoints_and_records(url, size, stream, spacing=spacing, settings=settings)
    points, text_size = scan.points[:-1], scan.points[-1].uncompressed
    try:
        total = stream.finish()
        firsts = [stream.first_record(p.uncompressed) for p in points]
    except XHubError as exc:  # the two-pass route reports bad records the canonical way
        raise gzip_stream.StreamPassFailed(f"{url}: {exc}") from exc
    index = RecordIndex(
        True,
        text_size,
        total.count,
        CheckpointTable.of(points),
        tuple(f[0] for f in firsts),
        tuple(text_size if f[1] is None else f[1] for f in firsts),
        tuple(f[2] for f in firsts),
        scan.member_starts,
    )
    return index, [total]
