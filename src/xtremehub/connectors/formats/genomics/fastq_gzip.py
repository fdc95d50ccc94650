"""FASTQ.gz (single-member gzip, multi-member/pigz, BGZF): index once, read any batch of reads.

Runs on the record engine (:mod:`xtremehub.connectors.codecs.record_index`): this
module supplies only the record scanner (:func:`scan_span`, which counts and
validates the reads of one span between checkpoints) and the slice class
(:class:`FASTQGZipSlice`). The index holds gzip checkpoints about every ``spacing``
uncompressed bytes and, per checkpoint, the number and uncompressed offset of the
first read at or after it. A slice starts at a checkpoint, skips to its first
read, and reads exactly its reads, fetching only the compressed bytes it needs.

With rapidgzip installed (the ``gzip`` extra), ``preprocess()`` inflates the object
once (in a child process for objects of 64 MiB and more, in a thread below) and
validates the reads in the calling process as the text passes (:class:`FastqStream`,
overlapped with the inflation). Otherwise, or should that
pass fail, the two-pass route runs: checkpoints with indexed_gzip, then the spans
scanned serially or, given a :class:`~xtremehub.FunctionExecutor`, in parallel.

Example:
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
    >>> co = CloudObject.from_path(FASTQGZip, "/data/reads.fastq.gz")     # doctest: +SKIP
    >>> slices = co.preprocess().partition(partition_reads_batches, num_batches=8)  # doctest: +SKIP
    >>> sum(s.num_reads for s in slices) == co["num_reads"]              # doctest: +SKIP
    True
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub import storage
from xtremehub.connectors.base import Format, Index, Strategy
from xtremehub.connectors.codecs.gzip_index import is_bgzf
from xtremehub.connectors.codecs.gzip_stream import StreamPassFailed
from xtremehub.connectors.codecs.record_index import RecordIndex, index_records
from xtremehub.connectors.codecs.record_slice import RecordSlice
from xtremehub.connectors.codecs.spans import Span, SpanResult
from xtremehub.connectors.formats.genomics.fastq_records import (
    FastqRecords,
    RecordBlock,
    first_record_start,
    header_name,
)
from xtremehub.errors import ConfigError, MalformedRecord, TruncatedData

if TYPE_CHECKING:
    from xtremehub.connectors.cloudobject import CloudObject
    from xtremehub.connectors.codecs.mapper import MapperLike
    from xtremehub.connectors.codecs.source import RangeSource

__all__ = [
    "FASTQGZip",
    "FASTQGZipSlice",
    "FastqStats",
    "FastqStream",
    "partition_bytes_per_batch",
    "partition_reads_batches",
    "partition_reads_per_batch",
    "scan_span",
]

DEFAULT_SPACING = 3 * 1024 * 1024  # uncompressed bytes between checkpoints (~0.35 % index)


@dataclass(frozen=True, kw_only=True)
class FASTQGZipSlice(RecordSlice):
    """Reads ``[first_read, first_read + num_reads)`` of a FASTQ.gz object."""

    @property
    def first_read(self) -> int:
        return self.first

    @property
    def num_reads(self) -> int:
        return self.count

    @property
    def skip_reads(self) -> int:
        return self.skip

    def _blocks(self, source: RangeSource | None = None) -> Iterator[RecordBlock]:
        """The slice's own records as blocks (trimmed to its reads), read through ``source``."""
        records = FastqRecords(self.url, self.record_start, self.first - self.skip)
        to_skip, remaining = self.skip, self.count

        def take(block: RecordBlock) -> RecordBlock | None:
            """The part of a block this slice owns, its text as bytes; updates the counters."""
            nonlocal to_skip, remaining
            starts, data, lengths, first = block.starts, block.data, block.seq_lengths, block.first_record
            if to_skip:
                skipped = min(to_skip, len(starts))
                to_skip -= skipped
                if skipped == len(starts):
                    return None
                data = data[int(starts[skipped] - starts[0]) :]
                starts, lengths, first = starts[skipped:], lengths[skipped:], first + skipped
            if remaining < len(starts):
                data = data[: int(starts[remaining] - starts[0])]
                starts, lengths = starts[:remaining], lengths[:remaining]
            if not len(starts):  # a slice of no reads yields nothing
                return None
            remaining -= len(starts)
            text = data if isinstance(data, bytes) else bytes(data)  # bytes here: fed from the slice's bytes
            if len(starts) == len(block.starts):
                return RecordBlock(text, starts, block.bases, first, lengths)
            return RecordBlock(text, starts, int(lengths.sum()), first, lengths)

        with self.text(source) as chunks:
            for chunk in chunks:
                for block in records.feed(chunk):
                    if (mine := take(block)) is not None:
                        yield mine
                    if remaining == 0:
                        return
            for block in records.finish():
                if (mine := take(block)) is not None:
                    yield mine
        if remaining > 0:
            raise TruncatedData(self.url, self.object_size, f"{remaining} reads of this slice are missing")

    def iter_blocks(self) -> Iterator[RecordBlock]:
        """The slice's reads as blocks of whole records: text, offsets and lengths as arrays.

        The fast way to work on many reads: a block's ``starts`` (absolute uncompressed
        offsets of its reads) and ``seq_lengths`` are NumPy arrays, ``len(block)`` is its
        number of reads, and ``block.data`` its text (bytes), so counting reads or bases,
        or a read-length histogram, needs no Python loop per read. Every read was
        checked (``@`` header, ``+`` line, as many quality values as bases) before its
        block is yielded; memory stays bounded by one block. A file whose last line has
        no newline gets one in its last block's ``data``.

        Example (``s`` a slice from ``co.partition(...)``; docs/genomics.md runs a whole one)::

            reads = sum(len(b) for b in s.iter_blocks())       # == s.num_reads
            bases = sum(b.bases for b in s.iter_blocks())
        """
        return self._blocks()

    def iter_chunks(self) -> Iterator[bytes]:
        for block in self._blocks():
            yield bytes(block.data)  # already bytes (see take()): no copy

    def iter_records(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """``(header, sequence, quality)`` of each read, streaming."""
        for block in self._blocks():
            lines = bytes(block.data).split(b"\n")
            for i in range(0, len(lines) - 3, 4):
                yield lines[i][1:].rstrip(b"\r"), lines[i + 1].rstrip(b"\r"), lines[i + 3].rstrip(b"\r")

    def lines(self) -> list[bytes]:
        """All lines of the slice (Dataplug's ``get()`` shape)."""
        data: bytes = self.get()
        return data.splitlines()


@dataclass(frozen=True)
class FastqStats:
    """A span's own statistics: bases of its reads, and the first read's name (first span)."""

    bases: int = 0
    first_name: str = ""


class FastqStream:
    """The one-pass record scan of a FASTQ text (a :class:`~xtremehub.connectors.codecs.gzip_stream.StreamScan`).

    Validates every record from offset 0 (as :class:`FastqRecords`), counts reads and
    bases, and notes the first read at or after each announced checkpoint offset. An
    offset announced after the scan passed it is placed from the record starts of the
    last :data:`HISTORY` blocks; further back raises ``StreamPassFailed``.

    Example:
        >>> s = FastqStream("mem://x")
        >>> s.announce([0, 5])
        >>> s.feed(b"@r1\\nAC\\n+\\nII\\n@r2\\nAC\\n+\\nII\\n")
        >>> s.announce([12, 14])  # 12: after the scan passed it, placed from its history
        >>> (s.finish().count, s.finish().stats), s.first_record(5), s.first_record(12), s.first_record(14)
        ((2, FastqStats(bases=4, first_name='r1')), (1, 12, None), (1, 12, None), (2, None, None))
    """

    HISTORY = 64

    def __init__(self, url: str) -> None:
        self.url = url
        self._records = FastqRecords(url)
        self._first: dict[int, tuple[int, int | None]] = {}
        self._pending: list[int] = []
        self._history: deque[tuple[np.ndarray, int]] = deque(maxlen=self.HISTORY)
        self._scanned = -1  # start of the last record seen
        self._first_name = ""
        self._done = False

    def announce(self, offsets: Sequence[int]) -> None:
        for x in offsets:
            if x in self._first or (self._pending and x <= self._pending[-1]):
                continue
            if x > self._scanned:
                self._pending.append(x)
                continue
            for starts, first in self._history:
                if starts[-1] >= x:
                    i = int(np.searchsorted(starts, x))
                    self._first[x] = (first + i, int(starts[i]))
                    break
            else:
                raise StreamPassFailed(f"{self.url}: checkpoint at {x} announced after the scan passed it")

    def feed(self, chunk: bytes | memoryview) -> None:
        for block in self._records.feed(chunk):
            self._block(block)

    def _block(self, block: RecordBlock) -> None:
        starts = block.starts
        if block.first_record == 0 and not self._first_name:
            self._first_name = header_name(block.data)
        if self._pending and self._pending[0] <= starts[-1]:
            k = bisect.bisect_right(self._pending, int(starts[-1]))
            due, self._pending = self._pending[:k], self._pending[k:]
            idx = np.searchsorted(starts, due)
            for x, i in zip(due, idx.tolist(), strict=True):
                self._first[x] = (block.first_record + i, int(starts[i]))
        self._history.append((starts, block.first_record))
        self._scanned = int(starts[-1])

    def finish(self) -> SpanResult[FastqStats]:
        if not self._done:
            for block in self._records.finish():
                self._block(block)
            self._done = True
            for x in self._pending:  # no record starts at or after these
                self._first[x] = (self._records.records, None)
            self._pending = []
        return SpanResult(FastqStats(self._records.bases, self._first_name), self._records.records, 0)

    def first_record(self, offset: int) -> tuple[int, int | None, None]:
        if offset not in self._first:
            raise StreamPassFailed(f"{self.url}: no checkpoint was announced at {offset}")
        number, start = self._first[offset]
        return number, start, None


def scan_span(span: Span) -> SpanResult[FastqStats]:
    """Record scanner: reads whose start lies in ``(checkpoint, end]`` (``[0, end]`` for the
    first span): count, bases, first start, and whether one starts exactly at ``end``."""
    base = span.checkpoint.uncompressed
    count = bases = 0
    first_start: int | None = None
    first_name = ""
    at_end = False
    with span.decoded() as stream:
        buf, rel = b"", 0 if span.first else -1
        while rel < 0:
            chunk = next(stream, None)
            if chunk is None:
                rel = first_record_start(buf + b"\n") if buf else -1
                if rel < 0:
                    return SpanResult(FastqStats())  # no record starts after this checkpoint
                break
            buf += chunk
            rel = first_record_start(buf)
            if rel < 0 and len(buf) > span.end - base + (1 << 20):
                raise MalformedRecord(span.url, base, "no FASTQ record header found near this offset", "uncompressed")
        if base + rel > span.end:
            return SpanResult(FastqStats())
        records = FastqRecords(span.url, base + rel)
        pending = [buf[rel:]]
        done = False
        while not done:
            more = pending.pop() if pending else next(stream, None)
            blocks = records.feed(more) if more is not None else records.finish()
            for block in blocks:
                owned = block.starts <= span.end
                n = int(owned.sum())
                if n and first_start is None:
                    first_start = int(block.starts[0])
                    if span.first:
                        first_name = header_name(block.data)
                count += n
                bases += int(block.seq_lengths[owned].sum())
                at_end = at_end or bool((block.starts == span.end).any())
                if n < len(block.starts):
                    done = True
            if more is None:
                done = True
    return SpanResult(FastqStats(bases, first_name), count, first_start, at_end=at_end)


class FASTQGZip(Format):
    """Gzip-compressed FASTQ: plain gzip, concatenated/pigz members, or BGZF.

    Args:
        spacing: uncompressed bytes between gzip checkpoints (smaller: finer
            partitions and a bigger index; at least 64 KiB, default 3 MiB).

    ``preprocess()`` without an executor runs serially in the calling process.
    """

    name = "fastq_gzip"
    index_version = 2  # 2: record-engine layout "xhub-records/1"

    def __init__(self, spacing: int = DEFAULT_SPACING, **options: Any) -> None:
        if spacing < 65536:
            raise ConfigError("spacing must be at least 64 KiB")
        super().__init__(spacing=spacing, **options)
        self.spacing = spacing

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        """One pass (rapidgzip: checkpoints and reads together, see the module docstring) or,
        without rapidgzip, checkpoints in one sequential pass (indexed_gzip), then reads counted
        and validated per checkpoint span (map: on ``executor``, or serially), stitched (reduce)."""
        head = storage.get_range(co.url, 0, 18, settings=co.settings)
        records, results = index_records(
            co.url,
            co.size,
            scan_span,
            executor,
            spacing=self.spacing,
            gz=True,
            settings=co.settings,
            stream=FastqStream,
        )
        members = records.gzip_members
        attributes = {
            "num_reads": records.num_records,
            "num_bases": sum(r.stats.bases for r in results),
            "uncompressed_size": records.text_size,
            "compressed_size": co.size,
            "gzip_flavour": "bgzf" if is_bgzf(head) else ("multi-member" if members > 1 else "single-member"),
            "checkpoints": len(records.table),
            "spacing": self.spacing,
            "first_read": results[0].stats.first_name if results else "",
        }
        data, blob = records.to_data()
        return Index(self.name, self.index_version, {}, attributes, data, blob)


# -- partition strategies -------------------------------------------------------------------
def _slices(co: CloudObject, records: RecordIndex, bounds: list[int]) -> list[FASTQGZipSlice]:
    return [
        FASTQGZipSlice.planned(co.url, co.size, plan, gz=True, settings=co.settings)
        for plan in records.plans(bounds, co.size)
    ]


def partition_reads_batches(co: CloudObject, num_batches: int) -> list[FASTQGZipSlice]:
    """``num_batches`` slices of (nearly) equal read counts; boundaries snap to checkpoints
    when there are enough of them, so slices decompress no byte twice."""
    records = RecordIndex.of(co.index, co.url)
    return _slices(co, records, records.batch_bounds(num_batches))


def partition_reads_per_batch(co: CloudObject, reads_per_batch: int) -> list[FASTQGZipSlice]:
    """Slices of exactly ``reads_per_batch`` reads (the last one may be shorter)."""
    if reads_per_batch < 1:
        raise ConfigError("reads_per_batch must be >= 1")
    records = RecordIndex.of(co.index, co.url)
    return _slices(co, records, records.fixed_bounds(reads_per_batch))


def partition_bytes_per_batch(co: CloudObject, bytes_per_batch: int) -> list[FASTQGZipSlice]:
    """Slices of about ``bytes_per_batch`` uncompressed bytes, cut at checkpoints."""
    records = RecordIndex.of(co.index, co.url)
    return _slices(co, records, records.byte_bounds(bytes_per_batch))


_STRATEGIES: dict[str, Strategy] = {
    "reads_batches": partition_reads_batches,
    "reads_per_batch": partition_reads_per_batch,
    "bytes_per_batch": partition_bytes_per_batch,
}
FASTQGZip.strategies = _STRATEGIES
