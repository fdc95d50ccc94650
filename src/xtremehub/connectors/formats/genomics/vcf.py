"""VCF, plain or bgzip-compressed (BGZF): header once, body cut on record boundaries.

A line format on the record engine (:mod:`xtremehub.connectors.codecs.line_records`):
this module supplies the slice class :class:`VCFSlice` (comment lines start with
``#``; a record's key is its (contig, position), validated) and the header
reading. Preprocessing counts records per contig over the spans between
checkpoints (gzip checkpoints for ``.vcf.gz``, plain byte offsets otherwise), on
the executor given or serially in the calling process, and keeps, for each
checkpoint, the first record after it and its key. Strategies:
:func:`partition_records` (about equal record counts, snapped to checkpoints) and
:func:`partition_by_region` (records of genomic regions, located through the same
index, so no ``.tbi`` is needed and slices work the same on S3). Records are never
cut; every slice can give the header.

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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtremehub.connectors.base import Format, Index, Strategy
from xtremehub.connectors.codecs.gzip_index import Checkpoint
from xtremehub.connectors.codecs.line_records import LineSlice, index_lines
from xtremehub.connectors.codecs.record_index import RecordIndex, SlicePlan, is_gzip
from xtremehub.connectors.codecs.spans import RecordKey, decoded, lines_from
from xtremehub.errors import ConfigError, MalformedRecord

if TYPE_CHECKING:
    from xtremehub.config import Settings
    from xtremehub.connectors.cloudobject import CloudObject
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = ["VCF", "VCFSlice", "partition_by_region", "partition_records"]

DEFAULT_SPACING = 4 * 1024 * 1024


def _header_lines(
    url: str, size: int, gz: bool, settings: Settings | None, planned_end: int
) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of the header (``#`` lines) at the start of the object."""
    with decoded(url, size, Checkpoint(0, 0), planned_end, gz=gz, settings=settings) as chunks:
        for offset, line in lines_from(chunks, 0, 0):
            if not line.startswith(b"#"):
                return
            yield offset, line


@dataclass(frozen=True, kw_only=True)
class VCFSlice(LineSlice):
    """VCF records ``[first, first + count)`` (optionally only those inside ``region``)."""

    body_start: int
    region: tuple[str, int, int] | None = None  # contig, 1-based start, end (inclusive)

    @staticmethod
    def key(url: str, offset: int, line: bytes) -> RecordKey:
        """``(contig, position)`` of a record line; :class:`MalformedRecord` if it has neither."""
        fields = line.split(b"\t", 2)
        if len(fields) < 3:
            raise MalformedRecord(url, offset, "a VCF record needs at least CHROM, POS and ID", "uncompressed")
        try:
            return fields[0].decode(), int(fields[1])
        except ValueError:
            raise MalformedRecord(url, offset, f"POS {fields[1]!r} is not a number", "uncompressed") from None

    def header(self) -> bytes:
        """The VCF header (all ``#`` lines), read from the start of the object."""
        lines = _header_lines(self.url, self.object_size, self.gz, self.access.settings_for(self.url), self.body_start)
        return b"".join(line + b"\n" for _, line in lines)

    def iter_chunks(self) -> Iterator[bytes]:
        for line in self.record_lines():
            if self.region is not None:
                fields = line.split(b"\t", 2)
                if fields[0].decode() != self.region[0] or not self.region[1] <= int(fields[1]) <= self.region[2]:
                    continue
            yield line + b"\n"

    def records(self) -> list[list[str]]:
        """The slice's records, split into VCF columns."""
        return [line.decode().rstrip("\r\n").split("\t") for line in self.iter_chunks()]


class VCF(Format):
    """VCF or VCF.gz/BGZF. Options: ``spacing`` (uncompressed bytes between checkpoints).

    ``preprocess()`` without an executor runs serially in the calling process.
    """

    name = "vcf"
    index_version = 2  # 2: record-engine layout "xhub-records/1"

    def __init__(self, spacing: int = DEFAULT_SPACING, **options: Any) -> None:
        super().__init__(spacing=spacing, **options)
        self.spacing = max(spacing, 65536)

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        gz = is_gzip(co.url, co.settings)
        header_lines, body_start = self._header(co, gz)
        records, per_contig = index_lines(
            co.url, co.size, VCFSlice, executor, spacing=self.spacing, settings=co.settings
        )
        samples = header_lines[-1].split("\t")[9:] if header_lines and header_lines[-1].startswith("#CHROM") else []
        contigs = [
            line.split("ID=", 1)[1].split(",")[0].rstrip(">")
            for line in header_lines
            if line.startswith("##contig=") and "ID=" in line
        ]
        fileformat = next((line.split("=", 1)[1] for line in header_lines if line.startswith("##fileformat=")), "")
        attributes = {
            "num_variants": records.num_records,
            "per_contig": per_contig,
            "samples": samples,
            "header_contigs": contigs,
            "meta_header_lines": sum(1 for line in header_lines if line.startswith("##")),
            "fileformat": fileformat,
            "compressed": gz,
            "checkpoints": len(records.table),
        }
        data, blob = records.to_data()
        data.update(body_start=body_start, contig_order=list(per_contig))
        return Index(self.name, self.index_version, {}, attributes, data, blob)

    @staticmethod
    def _header(co: CloudObject, gz: bool) -> tuple[list[str], int]:
        lines, body_start = [], 0
        for offset, line in _header_lines(co.url, co.size, gz, co.settings, min(co.size, 1 << 20)):
            lines.append(line.decode(errors="replace").rstrip("\r"))
            body_start = offset + len(line) + 1
        if not lines or not lines[0].startswith("##fileformat=VCF"):
            raise MalformedRecord(co.url, 0, "not a VCF file (no ##fileformat=VCF header line)", "uncompressed")
        return lines, body_start


def _slice(
    co: CloudObject, records: RecordIndex, plan: SlicePlan, region: tuple[str, int, int] | None = None
) -> VCFSlice:
    return VCFSlice.planned(
        co.url,
        co.size,
        plan,
        gz=records.gz,
        settings=co.settings,
        body_start=co.index.data["body_start"],
        region=region,
    )


def partition_records(co: CloudObject, num_batches: int) -> list[VCFSlice]:
    """About ``num_batches`` slices of equal record counts (boundaries snap to checkpoints)."""
    records = RecordIndex.of(co.index, co.url)
    bounds = records.batch_bounds(num_batches)
    return [_slice(co, records, plan) for plan in records.plans(bounds, co.size)]


def partition_by_region(co: CloudObject, regions: list[tuple[str, int, int]]) -> list[VCFSlice]:
    """One slice per ``(contig, start, end)`` region (1-based, inclusive), like a tabix fetch."""
    records = RecordIndex.of(co.index, co.url)
    order = {c: i for i, c in enumerate(co.index.data["contig_order"])}
    keys = [
        (order.get(str(k[0]), len(order)), k[1]) if k is not None else (len(order) + 1, 0) for k in records.first_key
    ]
    numbers = records.record_number
    out = []
    for contig, start, end in regions:
        if contig not in order:
            raise ConfigError(f"{co.url}: no records on contig {contig!r}; contigs: {', '.join(order)}")
        lo = max(0, bisect.bisect_right(keys, (order[contig], start)) - 1)
        hi = bisect.bisect_right(keys, (order[contig], end))
        first = numbers[lo]
        # records of the region end before the checkpoint after `hi` (its first key is past the end)
        last = records.num_records if hi + 1 >= len(keys) else numbers[min(hi + 1, len(keys) - 1)]
        out.append(_slice(co, records, records.plan(first, max(first, last), co.size), (contig, start, end)))
    return out


_STRATEGIES: dict[str, Strategy] = {"records": partition_records, "region": partition_by_region}
VCF.strategies = _STRATEGIES
