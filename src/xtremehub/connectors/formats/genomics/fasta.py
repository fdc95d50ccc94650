"""FASTA: a faidx-compatible index built in parallel, slices of whole sequences or of bases.

Runs on the record engine (:mod:`xtremehub.connectors.codecs.record_index`), a
record being one sequence: this module supplies the record scanner
(:func:`scan_span`: the headers that start in one span between checkpoints, with
the first sequence line's width, and the span's newline count) and the slice
class (:class:`FASTASlice`). The reduce step turns the headers into samtools-faidx
entries (name, length, offset, line bases, line width; 64-bit offsets), keeping
the first sequence of each name as samtools does (the ``duplicate_names``
attribute lists the names seen more than once). ``.fai`` files can be written and
read. An empty file is refused with :class:`~xtremehub.errors.MalformedRecord`
naming it, as pysam and pyfastx refuse it. Spans are plain byte chunks for
uncompressed files and gzip checkpoint spans (``spacing`` uncompressed bytes)
otherwise; ``preprocess()`` without an executor scans them serially in the
calling process.

Strategies: :func:`partition_sequences` (whole sequences, balanced by bases) and
:func:`partition_bases` (about N bases per slice, splitting long sequences: each
piece carries its sequence name and its offset within the sequence).

Example:
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> _ = storage.put("mem://fa/x.fa", b">a desc\\nACGTA\\nCG\\n>b\\nTTTT\\n")
    >>> co = CloudObject.from_path(FASTA, "mem://fa/x.fa").preprocess()
    >>> co.format.fai_text(co)
    'a\\t7\\t8\\t5\\t6\\nb\\t4\\t20\\t4\\t5\\n'
    >>> [p for s in co.partition(partition_bases, bases_per_slice=4) for p in s.get()]
    [('a', 0, 'ACGT'), ('a', 4, 'ACG'), ('b', 0, 'T'), ('b', 1, 'TTT')]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from xtremehub import storage
from xtremehub.connectors.base import DataSlice, Format, Index, Strategy
from xtremehub.connectors.codecs.gzip_index import Checkpoint
from xtremehub.connectors.codecs.record_index import RecordIndex, index_records, is_gzip
from xtremehub.connectors.codecs.spans import Span, SpanResult, decoded
from xtremehub.errors import ConfigError, MalformedRecord
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

if TYPE_CHECKING:
    from xtremehub.config import Settings
    from xtremehub.connectors.cloudobject import CloudObject
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = ["FASTA", "FASTASlice", "FaiEntry", "partition_bases", "partition_sequences", "read_fai", "scan_span"]

log = logging.getLogger(__name__)

_CHUNK = 32 * 1024 * 1024  # span size of uncompressed files
_LOOKAHEAD = 1 << 20  # a header line plus the first sequence line must fit in this


@dataclass(frozen=True)
class FaiEntry:
    """One line of a ``.fai``: samtools faidx's five columns."""

    name: str
    length: int
    offset: int
    linebases: int
    linewidth: int

    def byte_at(self, pos: int) -> int:
        """File offset of base ``pos`` (0-based) of this sequence."""
        return self.offset + (pos // self.linebases) * self.linewidth + pos % self.linebases


@dataclass(frozen=True)
class FASTASlice(DataSlice):
    """Pieces ``(entry, start, end)`` of sequences; ``get()`` returns ``[(name, start, bases)]``.

    Reads with ``settings`` (the storage settings of the object it was cut from).
    """

    url: str
    pieces: tuple[tuple[FaiEntry, int, int], ...]
    object_size: int = 0
    #: for compressed files: per piece, the checkpoint to start from and the planned end
    starts: tuple[tuple[Checkpoint, int], ...] = ()
    access: StoreAccess = PROCESS_DEFAULTS  # the object's settings, without credentials when pickled

    @property
    def num_bases(self) -> int:
        return sum(end - start for _, start, end in self.pieces)

    def _ranges(self) -> list[tuple[int, int]]:
        return [(e.byte_at(a), e.byte_at(b - 1) + 1) for e, a, b in self.pieces]

    def _read_compressed(self, a: int, b: int, point: Checkpoint, planned: int) -> bytes:
        pos, out = point.uncompressed, []
        with decoded(
            self.url, self.object_size, point, planned, gz=True, settings=self.access.settings_for(self.url)
        ) as chunks:
            for chunk in chunks:
                lo, hi = max(a - pos, 0), min(b - pos, len(chunk))
                if hi > lo:
                    out.append(chunk[lo:hi])
                pos += len(chunk)
                if pos >= b:
                    break
        return b"".join(out)

    def get(self) -> list[tuple[str, int, str]]:
        if self.starts:
            raw = [
                self._read_compressed(a, b, point, planned)
                for (a, b), (point, planned) in zip(self._ranges(), self.starts, strict=True)
            ]
        else:
            raw = storage.get_ranges(self.url, self._ranges(), settings=self.access.settings_for(self.url))
        return [
            (e.name, a, data.replace(b"\n", b"").replace(b"\r", b"").decode())
            for (e, a, _), data in zip(self.pieces, raw, strict=True)
        ]

    def iter_chunks(self) -> Iterator[bytes]:
        """The pieces as FASTA text (one record per piece, header ``>name:start-end``, 1-based)."""
        for name, start, seq in self.get():
            yield f">{name}:{start + 1}-{start + len(seq)}\n{seq}\n".encode()


@dataclass(frozen=True)
class FastaHeader:
    """A header line found by the scan, with what the reduce step needs to build its entry."""

    at: int  # uncompressed offset of the '>'
    name: str
    seq_start: int
    newlines_before: int  # newlines between the span start and the '>'
    linebases: int
    linewidth: int


@dataclass(frozen=True)
class FastaStats:
    """A span's headers and its newline count (within ``[start, end)``)."""

    headers: tuple[FastaHeader, ...] = ()
    newlines: int = 0


def _span_text(chunks: Iterator[bytes], span: Span) -> tuple[bytes, bool]:
    """The span's text through ``end``, plus the first sequence line of a header near the end;
    and whether the text ends there."""
    parts: list[bytes] = []
    need, have = span.end - span.start + 1, 0
    for chunk in chunks:
        parts.append(chunk)
        have += len(chunk)
        if have >= need:
            break
    else:
        return b"".join(parts), True
    data = b"".join(parts)
    last = data.rfind(b">", 0, need)
    while last >= 0 and data.count(b"\n", last) < 2 and len(data) < need + _LOOKAHEAD:
        more = next(chunks, None)
        if more is None:
            return data, True
        data += more
    return data, False


def scan_span(span: Span) -> SpanResult[FastaStats]:
    """Record scanner: headers whose ``>`` starts a line in ``(start, end]`` (``[0, end]`` for
    the first span), and the newlines in ``[start, end)``."""
    with span.decoded() as chunks:
        data, at_eof = _span_text(chunks, span)
    lo = span.start
    headers = []
    pos = data.find(b">", 0 if span.first else 1)
    while 0 <= pos <= span.end - lo:
        if lo + pos == 0 or (pos > 0 and data[pos - 1 : pos] == b"\n"):
            line_end = data.find(b"\n", pos)
            if line_end < 0:
                line_end = len(data)
            first_end = data.find(b"\n", line_end + 1)
            if first_end < 0:
                if not at_eof:
                    raise MalformedRecord(
                        span.url, lo + pos, "FASTA header and first line longer than 1 MiB", "uncompressed"
                    )
                first_end = len(data)
            line = data[line_end + 1 : first_end]
            name = data[pos + 1 : line_end].split()[0].decode() if line_end > pos + 1 else ""
            headers.append(
                FastaHeader(
                    lo + pos, name, lo + line_end + 1, data.count(b"\n", 0, pos), len(line.rstrip(b"\r")), len(line) + 1
                )
            )
        pos = data.find(b">", pos + 1)
    stats = FastaStats(tuple(headers), data.count(b"\n", 0, span.end - lo))
    first_start = headers[0].at if headers else None
    return SpanResult(stats, len(headers), first_start, at_end=bool(headers) and headers[-1].at == span.end)


class FASTA(Format):
    """FASTA, plain or bgzip/gzip-compressed (offsets in the index are uncompressed, as in faidx).

    Options: ``spacing`` (uncompressed bytes between gzip checkpoints, compressed files only).
    ``preprocess()`` without an executor runs serially in the calling process.
    """

    name = "fasta"
    index_version = 3  # 3: record-engine layout "xhub-records/1", duplicates dropped

    def __init__(self, spacing: int = 4 * 1024 * 1024, **options: Any) -> None:
        super().__init__(spacing=spacing, **options)
        self.spacing = spacing

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        gz = is_gzip(co.url, co.settings)
        spacing = self.spacing if gz else _CHUNK
        records, results = index_records(
            co.url, co.size, scan_span, executor, spacing=spacing, gz=gz, settings=co.settings
        )
        heads: list[FastaHeader] = []
        newlines = 0
        for r in results:
            heads.extend(replace(h, newlines_before=newlines + h.newlines_before) for h in r.stats.headers)
            newlines += r.stats.newlines
        if not heads:
            detail = "empty FASTA file: no sequences" if records.text_size == 0 else "no FASTA header ('>') found"
            raise MalformedRecord(co.url, 0, detail, "uncompressed")
        if heads[0].at != 0:
            raise MalformedRecord(co.url, 0, "data before the first FASTA header", "uncompressed")
        entries: list[list[Any]] = []
        seen: set[str] = set()
        duplicates: dict[str, int] = {}
        for i, h in enumerate(heads):
            if h.name in seen:  # samtools and pysam keep the first sequence of a name
                log.warning("%s: ignoring duplicate sequence %r at byte offset %d", co.url, h.name, h.at)
                duplicates[h.name] = duplicates.get(h.name, 0) + 1
                continue
            seen.add(h.name)
            region_end = heads[i + 1].at if i + 1 < len(heads) else records.text_size
            nl_end = heads[i + 1].newlines_before if i + 1 < len(heads) else newlines
            seq_newlines = nl_end - h.newlines_before - 1  # minus the header line's own
            length = max(0, region_end - h.seq_start - seq_newlines)
            if h.linewidth - h.linebases == 2:  # CRLF: one \r per sequence line
                length -= seq_newlines
            entries.append([h.name, length, h.seq_start, h.linebases, h.linewidth])
        names = [e[0] for e in entries]
        attributes = {
            "num_sequences": len(entries),
            "total_length": sum(e[1] for e in entries),
            "names": names if len(names) <= 1000 else names[:1000],
            "duplicate_names": sorted(duplicates)[:1000],
            "duplicates_skipped": sum(duplicates.values()),
            "compressed": gz,
        }
        data, blob = records.to_data()
        data["fai"] = entries
        return Index(self.name, self.index_version, {}, attributes, data, blob)

    @staticmethod
    def entries(co: CloudObject) -> list[FaiEntry]:
        return [FaiEntry(*e) for e in co.index.data["fai"]]

    def fai_text(self, co: CloudObject) -> str:
        """The index as samtools ``.fai`` text."""
        return "".join(f"{e.name}\t{e.length}\t{e.offset}\t{e.linebases}\t{e.linewidth}\n" for e in self.entries(co))

    def write_fai(self, co: CloudObject, url: str | None = None) -> str:
        """Write ``<object>.fai`` (or ``url``); returns where."""
        target = url or co.url + ".fai"
        storage.put(target, self.fai_text(co).encode(), settings=co.settings)
        return target


def read_fai(url: str, *, settings: Settings | None = None) -> list[FaiEntry]:
    """Parse a samtools ``.fai`` file."""
    out = []
    for n, line in enumerate(storage.get(url, settings=settings).decode().splitlines()):
        cols = line.split("\t")
        if len(cols) < 5:
            raise MalformedRecord(url, n, f"a .fai line needs 5 columns, got {len(cols)}", "record")
        out.append(FaiEntry(cols[0], int(cols[1]), int(cols[2]), int(cols[3]), int(cols[4])))
    return out


def _slice_maker(co: CloudObject) -> Callable[[list[tuple[FaiEntry, int, int]]], FASTASlice]:
    """Builds slices; for compressed files each piece gets the checkpoint it starts from."""
    records = RecordIndex.of(co.index, co.url)
    if not records.gz:
        return lambda pieces: FASTASlice(co.url, tuple(pieces), co.size, access=co.access)

    def make(pieces: list[tuple[FaiEntry, int, int]]) -> FASTASlice:
        starts = tuple(records.plan_bytes(e.byte_at(a), e.byte_at(b - 1) + 1, co.size) for e, a, b in pieces)
        return FASTASlice(co.url, tuple(pieces), co.size, starts, co.access)

    return make


def partition_sequences(co: CloudObject, num_batches: int) -> list[FASTASlice]:
    """Whole sequences in ``num_batches`` contiguous groups balanced by bases."""
    if num_batches < 1:
        raise ConfigError("num_batches must be >= 1")
    entries = FASTA.entries(co)
    make_slice = _slice_maker(co)
    target = sum(e.length for e in entries) / num_batches
    slices: list[FASTASlice] = []
    group: list[tuple[FaiEntry, int, int]] = []
    acc = 0
    for e in entries:
        group.append((e, 0, e.length))
        acc += e.length
        if len(slices) < num_batches - 1 and acc >= target * (len(slices) + 1):
            slices.append(make_slice(group))
            group = []
    if group:
        slices.append(make_slice(group))
    return slices


def partition_bases(
    co: CloudObject, bases_per_slice: int | None = None, num_slices: int | None = None
) -> list[FASTASlice]:
    """About ``bases_per_slice`` bases per slice (or ``num_slices`` slices), splitting sequences."""
    entries = FASTA.entries(co)
    total = sum(e.length for e in entries)
    if (bases_per_slice is None) == (num_slices is None):
        raise ConfigError("give bases_per_slice or num_slices")
    step = bases_per_slice if bases_per_slice is not None else max(1, math.ceil(total / max(1, num_slices or 1)))
    if step < 1:
        raise ConfigError("bases_per_slice must be >= 1")
    make_slice = _slice_maker(co)
    slices, pieces, room = [], [], step
    for e in entries:
        pos = 0
        while pos < e.length:
            take = min(room, e.length - pos)
            pieces.append((e, pos, pos + take))
            pos += take
            room -= take
            if room == 0:
                slices.append(make_slice(pieces))
                pieces, room = [], step
    if pieces:
        slices.append(make_slice(pieces))
    return slices


_STRATEGIES: dict[str, Strategy] = {"sequences": partition_sequences, "bases": partition_bases}
FASTA.strategies = _STRATEGIES
