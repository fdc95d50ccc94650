"""FASTA: a faidx-compatible index built in parallel, slices of whole sequences or of bases.

Preprocessing maps over byte chunks: each chunk reports the headers that start in
it (with the first sequence line's width) and its newline counts; the reduce step
turns those into samtools-faidx entries (name, length, offset, line bases, line
width; 64-bit offsets). ``.fai`` files can be written and read.

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

import bisect
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtremehub import storage
from xtremehub.connectors.base import DataSlice, Format, Index, Strategy
from xtremehub.connectors.codecs.checkpoint_table import CheckpointTable, table_data
from xtremehub.connectors.codecs.gzip_index import Checkpoint, build_checkpoints, inflate_from
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.errors import ConfigError, MalformedRecord

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = ["FASTA", "FASTASlice", "FaiEntry", "partition_bases", "partition_sequences", "read_fai"]

_CHUNK = 32 * 1024 * 1024
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
    """Pieces ``(entry, start, end)`` of sequences; ``get()`` returns ``[(name, start, bases)]``."""

    url: str
    pieces: tuple[tuple[FaiEntry, int, int], ...]
    object_size: int = 0
    #: for compressed files: per piece, the checkpoint to start from and the planned end
    starts: tuple[tuple[Checkpoint, int], ...] = ()

    @property
    def num_bases(self) -> int:
        return sum(end - start for _, start, end in self.pieces)

    def _ranges(self) -> list[tuple[int, int]]:
        return [(e.byte_at(a), e.byte_at(b - 1) + 1) for e, a, b in self.pieces]

    def _read_compressed(self, a: int, b: int, point: Checkpoint, planned: int) -> bytes:
        stream = inflate_from(RangeSource(self.url, self.object_size, point.byte_offset, planned), point)
        pos, out = point.uncompressed, []
        for chunk in stream:
            lo, hi = max(a - pos, 0), min(b - pos, len(chunk))
            if hi > lo:
                out.append(chunk[lo:hi])
            pos += len(chunk)
            if pos >= b:
                break
        getattr(stream, "close", lambda: None)()
        return b"".join(out)

    def get(self) -> list[tuple[str, int, str]]:
        if self.starts:
            raw = [
                self._read_compressed(a, b, point, planned)
                for (a, b), (point, planned) in zip(self._ranges(), self.starts, strict=True)
            ]
        else:
            store, key = storage.open_store(self.url)
            raw = store.get_ranges(key, self._ranges())
        return [
            (e.name, a, data.replace(b"\n", b"").replace(b"\r", b"").decode())
            for (e, a, _), data in zip(self.pieces, raw, strict=True)
        ]

    def iter_chunks(self) -> Iterator[bytes]:
        """The pieces as FASTA text (one record per piece, header ``>name:start-end``, 1-based)."""
        for name, start, seq in self.get():
            yield f">{name}:{start + 1}-{start + len(seq)}\n{seq}\n".encode()


def _scan_data(
    url: str, data: bytes, lo: int, own: tuple[int, int], counted: tuple[int, int], at_eof: bool
) -> dict[str, Any]:
    """Headers whose ``>`` lies in ``own`` (absolute, half-open) and newline counts within
    ``counted``; ``data`` starts at absolute offset ``lo`` and reaches past ``own``."""
    headers = []
    pos = data.find(b">", own[0] - lo)
    while 0 <= pos < own[1] - lo:
        if lo + pos == 0 or (pos > 0 and data[pos - 1 : pos] == b"\n"):
            line_end = data.find(b"\n", pos)
            if line_end < 0:
                line_end = len(data)
            first_end = data.find(b"\n", line_end + 1)
            if first_end < 0:
                if not at_eof:
                    raise MalformedRecord(
                        url, lo + pos, "FASTA header and first line longer than 1 MiB", "uncompressed"
                    )
                first_end = len(data)
            line = data[line_end + 1 : first_end]
            headers.append(
                {
                    "at": lo + pos,
                    "name": data[pos + 1 : line_end].split()[0].decode() if line_end > pos + 1 else "",
                    "seq_start": lo + line_end + 1,
                    "newlines_before": data.count(b"\n", counted[0] - lo, pos),
                    "linebases": len(line.rstrip(b"\r")),
                    "linewidth": len(line) + 1,
                }
            )
        pos = data.find(b">", pos + 1)
    return {"headers": headers, "newlines": data.count(b"\n", counted[0] - lo, counted[1] - lo)}


def scan_chunk(url: str, start: int, end: int, size: int) -> dict[str, Any]:
    """Map step (plain FASTA): headers starting in ``[start, end)``, newlines counted there."""
    store, key = storage.open_store(url)
    lo = max(0, start - 1)
    data = store.get_range(key, lo, min(size, end + _LOOKAHEAD))
    return _scan_data(url, data, lo, (start, end), (start, end), lo + len(data) >= size)


def scan_gz_span(url: str, size: int, point: Checkpoint, end: int, planned: int, first: bool) -> dict[str, Any]:
    """Map step (bgzip FASTA): the span ``(checkpoint, end]`` of the uncompressed text."""
    src = RangeSource(url, size, point.byte_offset, planned)
    stream = inflate_from(src, point)
    parts, have, base = [], 0, point.uncompressed
    at_eof = True
    for chunk in stream:
        parts.append(chunk)
        have += len(chunk)
        if base + have >= end + _LOOKAHEAD:
            at_eof = False
            break
    getattr(stream, "close", lambda: None)()
    data = b"".join(parts)
    own_start = base if first else base + 1
    return _scan_data(url, data, base, (own_start, end + 1), (base, end), at_eof)


class FASTA(Format):
    """FASTA, plain or bgzip/gzip-compressed (offsets in the index are uncompressed, as in faidx).

    Options: ``spacing`` (uncompressed bytes between gzip checkpoints, compressed files only).
    """

    name = "fasta"
    index_version = 2

    def __init__(self, spacing: int = 4 * 1024 * 1024, **options: Any) -> None:
        super().__init__(spacing=spacing, **options)
        self.spacing = spacing

    def build_index(self, co: CloudObject, executor: FunctionExecutor | None) -> Index:
        gz = storage.get_range(co.url, 0, 2, settings=co.settings) == b"\x1f\x8b"
        marks: list[Checkpoint] = []
        if gz:
            with storage.open(co.url, settings=co.settings) as fh:
                marks = build_checkpoints(fh, co.url, spacing=self.spacing)
            func: Any = scan_gz_span
            args: list[tuple[Any, ...]] = [
                (co.url, co.size, p, nxt.uncompressed, min(co.size, nxt.byte_offset + 4096), k == 0)
                for k, (p, nxt) in enumerate(itertools.pairwise(marks))
            ]
            text_size = marks[-1].uncompressed
        else:
            func = scan_chunk
            args = [(co.url, a, min(co.size, a + _CHUNK), co.size) for a in range(0, co.size, _CHUNK)]
            text_size = co.size
        if executor is not None and len(args) > 1:
            results = executor.get_result(executor.map(func, args))
        else:
            results = [func(*a) for a in args]
        heads, newlines = [], 0
        for r in results:
            for h in r["headers"]:
                heads.append({**h, "newlines_before": newlines + h["newlines_before"]})
            newlines += r["newlines"]
        if text_size and not heads:
            raise MalformedRecord(co.url, 0, "no FASTA header ('>') found", "uncompressed")
        if heads and heads[0]["at"] != 0:
            raise MalformedRecord(co.url, 0, "data before the first FASTA header", "uncompressed")
        entries = []
        for i, h in enumerate(heads):
            region_end = heads[i + 1]["at"] if i + 1 < len(heads) else text_size
            nl_end = heads[i + 1]["newlines_before"] if i + 1 < len(heads) else newlines
            seq_newlines = nl_end - h["newlines_before"] - 1  # minus the header line's own
            length = max(0, region_end - h["seq_start"] - seq_newlines)
            if h["linewidth"] - h["linebases"] == 2:  # CRLF: one \r per sequence line
                length -= seq_newlines
            entries.append([h["name"], length, h["seq_start"], h["linebases"], h["linewidth"]])
        names = [e[0] for e in entries]
        attributes = {
            "num_sequences": len(entries),
            "total_length": sum(e[1] for e in entries),
            "names": names if len(names) <= 1000 else names[:1000],
        }
        attributes["compressed"] = gz
        table, blob = table_data(marks[:-1])
        data: dict[str, Any] = {"fai": entries, "gz": gz, **table}
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


def read_fai(url: str) -> list[FaiEntry]:
    """Parse a samtools ``.fai`` file."""
    out = []
    for n, line in enumerate(storage.get(url).decode().splitlines()):
        cols = line.split("\t")
        if len(cols) < 5:
            raise MalformedRecord(url, n, f"a .fai line needs 5 columns, got {len(cols)}", "record")
        out.append(FaiEntry(cols[0], int(cols[1]), int(cols[2]), int(cols[3]), int(cols[4])))
    return out


def _slice_maker(co: CloudObject) -> Callable[[list[tuple[FaiEntry, int, int]]], FASTASlice]:
    """Builds slices; for compressed files each piece gets the checkpoint it starts from."""
    d = co.index.data
    if not d.get("gz"):
        return lambda pieces: FASTASlice(co.url, tuple(pieces), co.size)
    table = CheckpointTable.from_data(d, co.index.blob)

    def make(pieces: list[tuple[FaiEntry, int, int]]) -> FASTASlice:
        starts = []
        for e, a, b in pieces:
            nxt = bisect.bisect_right(table.uncompressed, e.byte_at(b - 1))
            planned = co.size if nxt >= len(table) else min(co.size, table.byte_offset(nxt) + 4096)
            starts.append((table.checkpoint(table.at_or_before(e.byte_at(a))), planned))
        return FASTASlice(co.url, tuple(pieces), co.size, tuple(starts))

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
    step = bases_per_slice if bases_per_slice is not None else math.ceil(total / max(1, num_slices or 1))
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
