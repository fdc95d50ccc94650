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
from xtremehub.connectors.codecs.gzip_index import Checkpoint, build_checkpoints, inflate_from
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.connectors.formats.genomics.fastq_records import FastqRecords, RecordBlock
from xtremehub.errors import ConfigError, TruncatedData

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
        with storage.open(co.url, settings=co.settings) as fh:
            head = fh.read(18)
            fh.seek(0)
            points = build_checkpoints(fh, co.url, spacing=self.spacing)
        bgzf = len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC"
        # One sequential pass counts and validates every record and finds, for each
        # checkpoint, the first record starting at or after it.
        src = RangeSource(co.url, co.size, 0, co.size)
        records = FastqRecords(co.url)
        rec_number: list[int] = []
        rec_start: list[int] = []
        uncompressed = 0
        first_name = b""
        for chunk in inflate_from(src, Checkpoint(0, 0)):
            uncompressed += len(chunk)
            for block in records.feed(chunk):
                if not first_name and len(block.data):
                    first_name = block.data[1 : block.data.index(b"\n")].split(b" ")[0]
                _assign(points, block.starts, block.first_record, rec_number, rec_start)
        for block in records.finish():
            _assign(points, block.starts, block.first_record, rec_number, rec_start)
        while len(rec_number) < len(points):
            rec_number.append(records.records)
            rec_start.append(uncompressed)
        members = sum(1 for p in points if not p.window and p.bit_offset % 8 == 0)
        attributes = {
            "num_reads": records.records,
            "num_bases": records.bases,
            "uncompressed_size": uncompressed,
            "compressed_size": co.size,
            "gzip_flavour": "bgzf" if bgzf else ("multi-member" if members > 1 else "single-member"),
            "checkpoints": len(points),
            "spacing": self.spacing,
            "first_read": first_name.decode(errors="replace"),
        }
        blob = b"".join(p.window for p in points)
        data = {
            "bit_offset": [p.bit_offset for p in points],
            "uncompressed": [p.uncompressed for p in points],
            "window_len": [len(p.window) for p in points],
            "record_number": rec_number,
            "record_start": rec_start,
        }
        return Index(self.name, self.index_version, {}, attributes, data, blob)


def _assign(
    points: list[Checkpoint], starts: Any, first_record: int, rec_number: list[int], rec_start: list[int]
) -> None:
    """For checkpoints not yet assigned whose offset <= the last start here, record the first record at/after."""
    import numpy as np

    if not len(starts):
        return
    last = int(starts[-1])
    while len(rec_number) < len(points) and points[len(rec_number)].uncompressed <= last:
        i = int(np.searchsorted(starts, points[len(rec_number)].uncompressed))
        rec_number.append(first_record + i)
        rec_start.append(int(starts[i]))


# -- partition strategies -------------------------------------------------------------------
@dataclass(frozen=True)
class _Points:
    bit_offset: list[int]
    uncompressed: list[int]
    record_number: list[int]
    record_start: list[int]
    window_slices: list[tuple[int, int]]
    blob: bytes

    @classmethod
    def of(cls, co: CloudObject) -> _Points:
        d = co.index.data
        offsets, pos = [], 0
        for n in d["window_len"]:
            offsets.append((pos, pos + n))
            pos += n
        return cls(d["bit_offset"], d["uncompressed"], d["record_number"], d["record_start"], offsets, co.index.blob)

    def checkpoint(self, k: int) -> Checkpoint:
        a, b = self.window_slices[k]
        return Checkpoint(self.bit_offset[k], self.uncompressed[k], self.blob[a:b])


def _slices_for(co: CloudObject, boundaries: list[int]) -> list[FASTQGZipSlice]:
    """Slices for consecutive record-number boundaries ``[b0=0, b1, ..., bn=total]``."""
    pts = _Points.of(co)
    # Checkpoints whose first record is the same as the next one's carry no new record:
    # the slice starts from the latest checkpoint at or before its first record.
    out = []
    for first, end in itertools.pairwise(boundaries):
        if end <= first:
            continue
        k = bisect.bisect_right(pts.record_number, first) - 1
        k = max(k, 0)
        # The slice's last record ends where record `end` starts, which is at most one
        # record past checkpoint e (the first whose record number is >= end): plan to
        # fetch up to checkpoint e plus a small margin; the source fetches more on demand.
        e = bisect.bisect_left(pts.record_number, end)
        planned = co.size if e >= len(pts.bit_offset) else min(co.size, pts.bit_offset[e] // 8 + _END_MARGIN)
        out.append(
            FASTQGZipSlice(
                co.url,
                co.size,
                pts.checkpoint(k),
                pts.record_start[k],
                first - pts.record_number[k],
                first,
                end - first,
                max(planned, pts.bit_offset[k] // 8 + 1),
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
    return _slices_for(co, bounds)


def partition_reads_per_batch(co: CloudObject, reads_per_batch: int) -> list[FASTQGZipSlice]:
    """Slices of exactly ``reads_per_batch`` reads (the last one may be shorter)."""
    if reads_per_batch < 1:
        raise ConfigError("reads_per_batch must be >= 1")
    total = int(co["num_reads"])
    return _slices_for(co, [*range(0, total, reads_per_batch), total])


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
    return _slices_for(co, bounds)


_STRATEGIES: dict[str, Strategy] = {
    "reads_batches": partition_reads_batches,
    "reads_per_batch": partition_reads_per_batch,
    "bytes_per_batch": partition_bytes_per_batch,
}
FASTQGZip.strategies = _STRATEGIES
