"""VCF, plain or bgzip-compressed (BGZF): header once, body cut on record boundaries.

Preprocessing reads the header, then counts records per contig in parallel over
spans between checkpoints (gzip checkpoints for ``.vcf.gz``, plain byte offsets
otherwise) and records, for each checkpoint, the first record after it and its
(contig, position). Strategies: :func:`partition_records` (about equal record
counts, snapped to checkpoints) and :func:`partition_by_region` (records of
genomic regions, located through the same index, so no ``.tbi`` is needed and
slices work the same on S3). Records are never cut; every slice can give the header.

Example:
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> body = "".join(f"chr1\\t{p}\\t.\\tA\\tC\\t50\\tPASS\\t.\\n" for p in range(1, 6))
    >>> head = "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\n"
    >>> _ = storage.put("mem://v/x.vcf", (head + body).encode())
    >>> co = CloudObject.from_path(VCF, "mem://v/x.vcf").preprocess()
    >>> co["num_variants"], co["per_contig"]
    (5, {'chr1': 5})
    >>> [len(s.records()) for s in co.partition(partition_records, num_batches=2)]
    [2, 3]
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
from xtremehub.errors import ConfigError, MalformedRecord

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = ["VCF", "VCFSlice", "partition_by_region", "partition_records"]

DEFAULT_SPACING = 4 * 1024 * 1024
_MARGIN = 4 * 1024


def _stream(url: str, size: int, point: Checkpoint, planned_end: int, gz: bool) -> Iterator[bytes]:
    src = RangeSource(url, size, point.byte_offset, planned_end)
    if gz:
        return inflate_from(src, point)
    return iter(src.read, b"")


def _lines_from(stream: Iterator[bytes], skip_to: int, base: int) -> Iterator[tuple[int, bytes]]:
    """(absolute offset, line without newline) for lines starting at or after ``skip_to``."""
    carry, pos = b"", base
    for chunk in stream:
        buf = carry + chunk
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if pos + start >= skip_to:
                yield pos + start, buf[start:nl]
            start = nl + 1
        carry, pos = buf[start:], pos + start
    if carry and pos >= skip_to:
        yield pos, carry


@dataclass(frozen=True)
class VCFSlice(DataSlice):
    """VCF records ``[first, first + count)`` (optionally only those inside ``region``)."""

    url: str
    object_size: int
    gz: bool
    checkpoint: Checkpoint
    line_start: int  # uncompressed offset of the first record at/after the checkpoint
    skip: int
    first: int
    count: int
    planned_end: int
    body_start: int
    region: tuple[str, int, int] | None = None  # contig, 1-based start, end (inclusive)

    def header(self) -> bytes:
        """The VCF header (all ``#`` lines), read from the start of the object."""
        out = []
        for _, line in _lines_from(
            _stream(self.url, self.object_size, Checkpoint(0, 0), self.body_start, self.gz), 0, 0
        ):
            if not line.startswith(b"#"):
                break
            out.append(line + b"\n")
        return b"".join(out)

    def _lines(self) -> Iterator[bytes]:
        stream = _stream(self.url, self.object_size, self.checkpoint, self.planned_end, self.gz)
        taken = 0
        lines = _lines_from(stream, self.line_start, self.checkpoint.uncompressed)
        for _, line in itertools.islice(lines, self.skip, None):
            if taken == self.count:
                break
            taken += 1
            if self.region is not None:
                fields = line.split(b"\t", 2)
                if fields[0].decode() != self.region[0] or not self.region[1] <= int(fields[1]) <= self.region[2]:
                    continue
            yield line + b"\n"
        getattr(stream, "close", lambda: None)()

    def iter_chunks(self) -> Iterator[bytes]:
        return self._lines()

    def records(self) -> list[list[str]]:
        """The slice's records, split into VCF columns."""
        return [line.decode().rstrip("\r\n").split("\t") for line in self._lines()]


def scan_span(url: str, size: int, gz: bool, point: Checkpoint, end: int, planned: int, first: bool) -> dict[str, Any]:
    """Map step: records whose line starts in ``(checkpoint, end]`` (``[0, end]`` first)."""
    out: dict[str, Any] = {"count": 0, "per_contig": {}, "first_start": None, "first_key": None, "at_end": False}
    lo = point.uncompressed if first else point.uncompressed + 1
    stream = _stream(url, size, point, planned, gz)
    lines = _lines_from(stream, lo, point.uncompressed)
    per: dict[str, int] = {}
    for offset, line in lines:
        if offset > end:
            break
        if line.startswith(b"#") or not line:
            continue
        fields = line.split(b"\t", 2)
        if len(fields) < 3:
            raise MalformedRecord(url, offset, "a VCF record needs at least CHROM, POS and ID", "uncompressed")
        contig = fields[0].decode()
        try:
            position = int(fields[1])
        except ValueError:
            raise MalformedRecord(url, offset, f"POS {fields[1]!r} is not a number", "uncompressed") from None
        if out["first_start"] is None:
            out["first_start"], out["first_key"] = offset, [contig, position]
        per[contig] = per.get(contig, 0) + 1
        out["count"] += 1
        if offset == end:  # this record is also the next checkpoint's first one
            out["at_end"], out["last_key"] = True, [contig, position]
    getattr(stream, "close", lambda: None)()
    out["per_contig"] = per
    return out


class VCF(Format):
    """VCF or VCF.gz/BGZF. Options: ``spacing`` (uncompressed bytes between checkpoints)."""

    name = "vcf"
    index_version = 1

    def __init__(self, spacing: int = DEFAULT_SPACING, **options: Any) -> None:
        super().__init__(spacing=spacing, **options)
        self.spacing = max(spacing, 65536)

    def build_index(self, co: CloudObject, executor: FunctionExecutor | None) -> Index:
        head = storage.get_range(co.url, 0, 2, settings=co.settings)
        gz = head == b"\x1f\x8b"
        if gz:
            with storage.open(co.url, settings=co.settings) as fh:
                marks = build_checkpoints(fh, co.url, spacing=self.spacing)
        else:
            marks = [Checkpoint(8 * a, a) for a in range(0, co.size, self.spacing)] + [Checkpoint(8 * co.size, co.size)]
        points = marks[:-1]
        header_lines, body_start = self._header(co, gz)
        args = [
            (co.url, co.size, gz, p, nxt.uncompressed, min(co.size, nxt.byte_offset + _MARGIN), k == 0)
            for k, (p, nxt) in enumerate(itertools.pairwise(marks))
        ]
        if executor is not None and len(args) > 1:
            results = executor.get_result(executor.map(scan_span, args))
        else:
            results = [scan_span(*a) for a in args]
        total = sum(r["count"] for r in results)
        per_contig: dict[str, int] = {}
        for r in results:
            for c, n in r["per_contig"].items():
                per_contig[c] = per_contig.get(c, 0) + n
        rec_number, rec_start, first_key = stitch_spans(points, results, marks[-1].uncompressed)
        samples = header_lines[-1].split("\t")[9:] if header_lines and header_lines[-1].startswith("#CHROM") else []
        contigs = [
            line.split("ID=", 1)[1].split(",")[0].rstrip(">")
            for line in header_lines
            if line.startswith("##contig=") and "ID=" in line
        ]
        fileformat = next((line.split("=", 1)[1] for line in header_lines if line.startswith("##fileformat=")), "")
        attributes = {
            "num_variants": total,
            "per_contig": per_contig,
            "samples": samples,
            "header_contigs": contigs,
            "meta_header_lines": sum(1 for line in header_lines if line.startswith("##")),
            "fileformat": fileformat,
            "compressed": gz,
            "checkpoints": len(points),
        }
        table, blob = table_data(points)
        data: dict[str, Any] = {
            **table,
            "gz": gz,
            "body_start": body_start,
            "record_number": rec_number,
            "record_start": rec_start,
            "first_key": first_key,
            "contig_order": list(per_contig),
        }
        return Index(self.name, self.index_version, {}, attributes, data, blob)

    @staticmethod
    def _header(co: CloudObject, gz: bool) -> tuple[list[str], int]:
        lines, body_start = [], 0
        stream = _stream(co.url, co.size, Checkpoint(0, 0), min(co.size, 1 << 20), gz)
        for offset, line in _lines_from(stream, 0, 0):
            if not line.startswith(b"#"):
                body_start = offset
                break
            lines.append(line.decode(errors="replace").rstrip("\r"))
            body_start = offset + len(line) + 1
        getattr(stream, "close", lambda: None)()
        if not lines or not lines[0].startswith("##fileformat=VCF"):
            raise MalformedRecord(co.url, 0, "not a VCF file (no ##fileformat=VCF header line)", "uncompressed")
        return lines, body_start


def _slice(
    co: CloudObject, table: CheckpointTable, first: int, end: int, region: tuple[str, int, int] | None = None
) -> VCFSlice:
    d = co.index.data
    numbers = d["record_number"]
    k = max(0, bisect.bisect_right(numbers, first) - 1)
    e = bisect.bisect_left(numbers, end)
    planned = co.size if e >= len(numbers) else min(co.size, d["bit_offset"][e] // 8 + _MARGIN)
    return VCFSlice(
        co.url,
        co.size,
        d["gz"],
        table.checkpoint(k),
        max(d["record_start"][k], d["body_start"]),
        first - numbers[k],
        first,
        end - first,
        max(planned, d["bit_offset"][k] // 8 + 1),
        d["body_start"],
        region,
    )


def partition_records(co: CloudObject, num_batches: int) -> list[VCFSlice]:
    """About ``num_batches`` slices of equal record counts."""
    if num_batches < 1:
        raise ConfigError("num_batches must be >= 1")
    total = int(co["num_variants"])
    bounds = sorted({round(i * total / num_batches) for i in range(num_batches + 1)})
    table = CheckpointTable.from_data(co.index.data, co.index.blob)
    return [_slice(co, table, a, b) for a, b in itertools.pairwise(bounds) if b > a]


def partition_by_region(co: CloudObject, regions: list[tuple[str, int, int]]) -> list[VCFSlice]:
    """One slice per ``(contig, start, end)`` region (1-based, inclusive), like a tabix fetch."""
    d = co.index.data
    order = {c: i for i, c in enumerate(d["contig_order"])}
    keys = [(order.get(k[0], len(order)), k[1]) if k is not None else (len(order) + 1, 0) for k in d["first_key"]]
    total = int(co["num_variants"])
    table = CheckpointTable.from_data(d, co.index.blob)
    out = []
    for contig, start, end in regions:
        if contig not in order:
            raise ConfigError(f"{co.url}: no records on contig {contig!r}; contigs: {', '.join(order)}")
        lo = max(0, bisect.bisect_right(keys, (order[contig], start)) - 1)
        hi = bisect.bisect_right(keys, (order[contig], end))
        first = d["record_number"][lo]
        # records of the region end before the checkpoint after `hi` (its first key is past the end)
        last = total if hi + 1 >= len(keys) else d["record_number"][min(hi + 1, len(keys) - 1)]
        out.append(_slice(co, table, first, max(first, last), (contig, start, end)))
    return out


_STRATEGIES: dict[str, Strategy] = {"records": partition_records, "region": partition_by_region}
VCF.strategies = _STRATEGIES
