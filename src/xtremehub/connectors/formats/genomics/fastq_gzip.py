"""FASTQ.gz (single-member gzip, multi-member/pigz, BGZF): index once, read any batch of reads.

Index: gzip checkpoints about every ``spacing`` uncompressed bytes (see
:mod:`xtremehub.connectors.codecs.gzip_index`) and, for each checkpoint, the
number and uncompressed offset of the first record that starts at or after it.
A slice starts at a checkpoint, skips to its first record, and reads exactly its
records, fetching only the compressed bytes it needs.

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
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtremehub import storage
from xtremehub.connectors.base import DataSlice, Format, Index, Strategy
from xtremehub.connectors.codecs.checkpoint_table import CheckpointTable, stitch_spans, table_data
from xtremehub.connectors.codecs.gzip_index import Checkpoint, build_checkpoints, inflate_from
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.connectors.formats.genomics.fastq_records import FastqRecords, RecordBlock, first_record_start
from xtremehub.errors import ConfigError, MalformedRecord, TruncatedData

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = [
    "FASTQGZip",
    "FASTQGZipSlice",
    "partition_bytes_per_batch",
    "partition_reads_batches",
    "partition_reads_per_batch",
]

DEFAULT_SPACING = 8 * 1024 * 1024  # uncompressed bytes between checkpoints (~0.5 % index)
_END_MARGIN = 4 * 1024  # compressed bytes planned past the last checkpoint a slice needs


@dataclass(frozen=True)
class FASTQGZipSlice(DataSlice):
    """Reads ``[first_read, first_read + num_reads)`` of a FASTQ.gz object."""

    url: str
    object_size: int
    checkpoint: Checkpoint
    record_start: int  # uncompressed offset of the first record at/after the checkpoint
    skip_reads: int  # records to skip after record_start
    first_read: int
    num_reads: int
    planned_end: int  # compressed byte offset the slice expects to need

    @property
    def byte_range(self) -> tuple[int, int]:
        """The compressed bytes the slice plans to fetch ``[start, end)``."""
        return self.checkpoint.byte_offset, self.planned_end

    def _blocks(self, source: RangeSource | None = None) -> Iterator[bytes]:
        src = source or RangeSource(self.url, self.object_size, self.checkpoint.byte_offset, self.planned_end)
        stream = inflate_from(src, self.checkpoint)
        records = FastqRecords(self.url, self.record_start, self.first_read - self.skip_reads)
        to_skip, remaining = self.skip_reads, self.num_reads

        def take(block: RecordBlock) -> bytes:
            """The part of a block this slice owns; updates the counters."""
            nonlocal to_skip, remaining
            starts, data = block.starts, block.data
            if to_skip:
                skipped = min(to_skip, len(starts))
                to_skip -= skipped
                if skipped == len(starts):
                    return b""
                data, starts = data[int(starts[skipped] - starts[0]) :], starts[skipped:]
            if remaining < len(starts):
                data, starts = data[: int(starts[remaining] - starts[0])], starts[:remaining]
            remaining -= len(starts)
            return data

        position = self.checkpoint.uncompressed
        try:
            for raw in stream:
                chunk = raw
                if position < self.record_start:  # bytes before the first record are the previous slice's
                    cut = self.record_start - position
                    position += len(raw)
                    if cut >= len(raw):
                        continue
                    chunk = raw[cut:]
                for block in records.feed(chunk):
                    if data := take(block):
                        yield data
                    if remaining == 0:
                        return
            for block in records.finish():
                if data := take(block):
                    yield data
        finally:
            stream.close()  # type: ignore[attr-defined]  # a generator: stop fetching
        if remaining > 0:
            raise TruncatedData(self.url, self.object_size, f"{remaining} reads of this slice are missing")

    def iter_chunks(self) -> Iterator[bytes]:
        return self._blocks()

    def iter_records(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """``(header, sequence, quality)`` of each read, streaming."""
        for chunk in self._blocks():
            lines = chunk.split(b"\n")
            for i in range(0, len(lines) - 3, 4):
                yield lines[i][1:].rstrip(b"\r"), lines[i + 1].rstrip(b"\r"), lines[i + 3].rstrip(b"\r")

    def lines(self) -> list[bytes]:
        """All lines of the slice (Dataplug's ``get()`` shape)."""
        data: bytes = self.get()
        return data.splitlines()


class FASTQGZip(Format):
    """Gzip-compressed FASTQ: plain gzip, concatenated/pigz members, or BGZF.

    Args:
        spacing: uncompressed bytes between gzip checkpoints (smaller: finer
            partitions and bigger index).
    """

    name = "fastq_gzip"
    index_version = 1

    def __init__(self, spacing: int = DEFAULT_SPACING, **options: Any) -> None:
        if spacing < 65536:
            raise ConfigError("spacing must be at least 64 KiB")
        super().__init__(spacing=spacing, **options)
        self.spacing = spacing

    def build_index(self, co: CloudObject, executor: FunctionExecutor | None) -> Index:
        """Checkpoints in one sequential pass (indexed_gzip), then records counted and
        validated per checkpoint span in parallel (map), and stitched together (reduce)."""
        with storage.open(co.url, settings=co.settings) as fh:
            head = fh.read(18)
            fh.seek(0)
            marks = build_checkpoints(fh, co.url, spacing=self.spacing)
        points, end_mark = marks[:-1], marks[-1]
        spans = [
            _Span(co.url, co.size, p, nxt.uncompressed, min(co.size, nxt.byte_offset + _END_MARGIN), k == 0)
            for k, (p, nxt) in enumerate(itertools.pairwise(marks))
        ]
        results = _run_spans(spans, executor, co)
        rec_number, rec_start, _ = stitch_spans(points, results, end_mark.uncompressed)
        total = sum(r["count"] for r in results)
        bgzf = len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC"
        members = sum(1 for p in points if not p.window and p.bit_offset % 8 == 0)
        attributes = {
            "num_reads": total,
            "num_bases": sum(r["bases"] for r in results),
            "uncompressed_size": end_mark.uncompressed,
            "compressed_size": co.size,
            "gzip_flavour": "bgzf" if bgzf else ("multi-member" if members > 1 else "single-member"),
            "checkpoints": len(points),
            "spacing": self.spacing,
            "first_read": results[0]["first_name"] if results else "",
        }
        data, blob = table_data(points)
        data.update(record_number=rec_number, record_start=rec_start)
        return Index(self.name, self.index_version, {}, attributes, dict(data), blob)


@dataclass(frozen=True)
class _Span:
    """The uncompressed bytes between two checkpoints, for the parallel record scan."""

    url: str
    object_size: int
    checkpoint: Checkpoint
    end: int  # uncompressed offset of the next checkpoint
    planned_end: int
    first: bool


def _run_spans(spans: list[_Span], executor: FunctionExecutor | None, co: CloudObject) -> list[dict[str, Any]]:
    if len(spans) <= 1:
        return [scan_span(s) for s in spans]
    if executor is not None:
        return list(executor.get_result(executor.map(scan_span, spans)))
    from xtremehub.compute import FunctionExecutor

    with FunctionExecutor(settings=co.settings, progress=False) as fexec:
        return list(fexec.get_result(fexec.map(scan_span, spans)))


def scan_span(span: _Span) -> dict[str, Any]:
    """Map step of preprocessing: records whose start lies in ``(checkpoint, end]``
    (``[0, end]`` for the first span): count, bases, first start, and whether one
    starts exactly at ``end`` (that one is the next checkpoint's first record)."""
    src = RangeSource(span.url, span.object_size, span.checkpoint.byte_offset, span.planned_end)
    stream = inflate_from(src, span.checkpoint)
    base = span.checkpoint.uncompressed
    out: dict[str, Any] = {"count": 0, "bases": 0, "first_start": None, "at_end": False, "first_name": ""}
    try:
        buf, rel = b"", 0 if span.first else -1
        while rel < 0:
            chunk = next(stream, None)
            if chunk is None:
                rel = first_record_start(buf + b"\n") if buf else -1
                if rel < 0:
                    return out  # no record starts after this checkpoint
                break
            buf += chunk
            rel = first_record_start(buf)
            if rel < 0 and len(buf) > span.end - base + (1 << 20):
                raise MalformedRecord(span.url, base, "no FASTQ record header found near this offset", "uncompressed")
        if base + rel > span.end:
            return out
        records = FastqRecords(span.url, base + rel)
        pending = [buf[rel:]]
        done = False
        while not done:
            chunk = pending.pop() if pending else next(stream, None)
            blocks = records.feed(chunk) if chunk is not None else records.finish()
            for block in blocks:
                owned = block.starts <= span.end
                n = int(owned.sum())
                if n and out["first_start"] is None:
                    out["first_start"] = int(block.starts[0])
                    if span.first:
                        out["first_name"] = block.data[1 : block.data.index(b"\n")].split(b" ")[0].decode()
                out["count"] += n
                out["bases"] += int(block.seq_lengths[owned].sum())
                out["at_end"] = out["at_end"] or bool((block.starts == span.end).any())
                if n < len(block.starts):
                    done = True
            if chunk is None:
                done = True
    finally:
        stream.close()  # type: ignore[attr-defined]
    return out


# -- partition strategies -------------------------------------------------------------------
@dataclass(frozen=True)
class _Points:
    """Checkpoints plus, for each, the first record at or after it."""

    table: CheckpointTable
    record_number: list[int]
    record_start: list[int]

    @classmethod
    def of(cls, co: CloudObject) -> _Points:
        d = co.index.data
        return cls(CheckpointTable.from_data(d, co.index.blob), d["record_number"], d["record_start"])

    def checkpoint(self, k: int) -> Checkpoint:
        return self.table.checkpoint(k)


def _slices_for(co: CloudObject, pts: _Points, boundaries: list[int]) -> list[FASTQGZipSlice]:
    """Slices for consecutive record-number boundaries ``[b0=0, b1, ..., bn=total]``; each
    starts from the latest checkpoint at or before its first record."""
    out = []
    for first, end in itertools.pairwise(boundaries):
        if end <= first:
            continue
        k = max(0, bisect.bisect_right(pts.record_number, first) - 1)
        # The slice's last record ends where record `end` starts, which is at most one
        # record past checkpoint e (the first whose record number is >= end): plan to
        # fetch up to checkpoint e plus a small margin; the source fetches more on demand.
        e = bisect.bisect_left(pts.record_number, end)
        planned = co.size if e >= len(pts.table) else min(co.size, pts.table.byte_offset(e) + _END_MARGIN)
        out.append(
            FASTQGZipSlice(
                co.url,
                co.size,
                pts.checkpoint(k),
                pts.record_start[k],
                first - pts.record_number[k],
                first,
                end - first,
                max(planned, pts.table.byte_offset(k) + 1),
            )
        )
    return out


def partition_reads_batches(co: CloudObject, num_batches: int) -> list[FASTQGZipSlice]:
    """``num_batches`` slices of (nearly) equal read counts; boundaries snap to checkpoints
    when there are enough of them, so slices decompress no byte twice."""
    if num_batches < 1:
        raise ConfigError("num_batches must be >= 1")
    total = int(co["num_reads"])
    pts = _Points.of(co)
    candidates = sorted(set(pts.record_number) - {0, total})
    bounds = [0]
    for i in range(1, num_batches):
        ideal = round(i * total / num_batches)
        j = bisect.bisect_left(candidates, ideal)
        near = [c for c in candidates[max(0, j - 1) : j + 1] if c > bounds[-1]]
        step = total / num_batches
        snapped = min(near, key=lambda c: abs(c - ideal)) if near else None
        choice = snapped if snapped is not None and abs(snapped - ideal) <= step / 4 else ideal
        bounds.append(max(choice, bounds[-1]))
    bounds.append(total)
    return _slices_for(co, pts, bounds)


def partition_reads_per_batch(co: CloudObject, reads_per_batch: int) -> list[FASTQGZipSlice]:
    """Slices of exactly ``reads_per_batch`` reads (the last one may be shorter)."""
    if reads_per_batch < 1:
        raise ConfigError("reads_per_batch must be >= 1")
    total = int(co["num_reads"])
    return _slices_for(co, _Points.of(co), [*range(0, total, reads_per_batch), total])


def partition_bytes_per_batch(co: CloudObject, bytes_per_batch: int) -> list[FASTQGZipSlice]:
    """Slices of about ``bytes_per_batch`` uncompressed bytes, cut at checkpoints."""
    if bytes_per_batch < 1:
        raise ConfigError("bytes_per_batch must be >= 1")
    pts = _Points.of(co)
    total = int(co["num_reads"])
    bounds, next_cut = [0], bytes_per_batch
    for k in range(1, len(pts.record_number)):
        if pts.record_start[k] >= next_cut and pts.record_number[k] > bounds[-1]:
            bounds.append(pts.record_number[k])
            next_cut = pts.record_start[k] + bytes_per_batch
    if bounds[-1] != total:
        bounds.append(total)
    return _slices_for(co, pts, bounds)


_STRATEGIES: dict[str, Strategy] = {
    "reads_batches": partition_reads_batches,
    "reads_per_batch": partition_reads_per_batch,
    "bytes_per_batch": partition_bytes_per_batch,
}
FASTQGZip.strategies = _STRATEGIES
