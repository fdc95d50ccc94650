"""Plain text and CSV: newline-aligned byte partitions; CSV slices hold whole records and carry the header.

Text: preprocessing counts lines in parallel over byte chunks (map); partitioning
is pure arithmetic on the size, and each slice aligns its nominal byte range to
line starts when read (every line in exactly one slice).

CSV: a newline inside a quoted field does not end a record (RFC 4180), so
preprocessing finds records as Python's ``csv`` module reads them, in parallel and
exactly (see :mod:`~xtremehub.connectors.formats.text.records`), and stores record
starts at a fine grid in the index. Partitioning moves every cut to such a start,
so a slice never splits a record and ``num_rows`` is what ``csv.DictReader`` yields.

Example:
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> _ = storage.put("mem://doc/t.csv", b'a,b\\n1,"one\\nline"\\n3,4\\n5,6\\n')
    >>> co = CloudObject.from_path(CSV, "mem://doc/t.csv", metadata_url="mem://doc/t.idx").preprocess()
    >>> co["num_rows"], co["columns"]
    (3, ['a', 'b'])
    >>> [s.rows() for s in co.partition(partition_num_chunks, num_chunks=2)]
    [[{'a': '1', 'b': 'one\\nline'}], [{'a': '3', 'b': '4'}, {'a': '5', 'b': '6'}]]
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from xtremehub import storage
from xtremehub.compute.partitioner import ObjectPart
from xtremehub.connectors.base import DataSlice, Format, Index, Strategy
from xtremehub.connectors.codecs.mapper import MapperLike, as_mapper, starmap
from xtremehub.connectors.formats.text.records import (
    ChunkScan,
    Dialect,
    RecordIndex,
    checkpoint_cuts,
    exact_scan,
    first_record,
    scan_chunk,
    stitch,
)
from xtremehub.errors import ConfigError, MalformedRecord, MissingDependency
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

if TYPE_CHECKING:
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = ["CSV", "CSVSlice", "Text", "TextSlice", "partition_chunk_size", "partition_num_chunks"]

log = logging.getLogger(__name__)

_COUNT_CHUNK = 64 * 1024 * 1024
_CSV_SCAN_CHUNK = 16 * 1024 * 1024
_CSV_HEAD = 1 << 20
#: Record starts a CSV index keeps at most (a 128 KiB blob): slices are cut on a grid of ``data bytes / this``.
_CSV_CHECKPOINTS = 16384
_READ_BLOCK = 4 * 1024 * 1024

_T = TypeVar("_T")


@dataclass(frozen=True)
class TextSlice(DataSlice):
    """Lines whose first byte lies in ``[start, end)`` of the object."""

    url: str
    object_size: int
    start: int
    end: int
    newline: bytes = b"\n"
    access: StoreAccess = PROCESS_DEFAULTS  # the object's settings, without credentials when pickled

    def _part(self) -> ObjectPart:
        rng = (self.start, max(self.start, self.end - 1))
        return ObjectPart(self.url, 0, 1, rng, self.object_size, self.newline, access=self.access)

    def iter_chunks(self) -> Iterator[bytes]:
        if self.end <= self.start:
            return
        with self._part().data_stream as stream:
            while block := stream.read(_READ_BLOCK):
                yield block

    def lines(self) -> list[bytes]:
        """The lines this slice owns, without their delimiters (none if it owns no line start)."""
        data: bytes = self.get()
        if not data:
            return []
        lines = data.split(self.newline)
        return lines[:-1] if data.endswith(self.newline) else lines


@dataclass(frozen=True)
class CSVSlice(TextSlice):
    """Whole CSV records, bytes ``[start, end)`` cut at record starts; knows the file's header."""

    header: bytes = b""
    delimiter: str = ","
    quotechar: str = '"'

    def iter_chunks(self) -> Iterator[bytes]:
        # start and end are record starts found by preprocessing: read exactly them, no alignment
        store, key = self.access.open(self.url)
        for at in range(self.start, self.end, _READ_BLOCK):
            yield store.get_range(key, at, min(self.end, at + _READ_BLOCK))

    def _with_header(self) -> bytes:
        data: bytes = self.get()
        return self.header + b"\n" + data

    def rows(self) -> list[dict[str, str]]:
        """The slice's rows as dicts keyed by the header's column names (blank records skipped)."""
        text = io.StringIO(self._with_header().decode(), newline="")
        return list(csv.DictReader(text, delimiter=self.delimiter, quotechar=self.quotechar))

    def to_pandas(self) -> Any:
        """The slice as a ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise MissingDependency("CSVSlice.to_pandas needs pandas: pip install pandas") from exc
        return pd.read_csv(io.BytesIO(self._with_header()), sep=self.delimiter, quotechar=self.quotechar)

    def to_arrow(self) -> Any:
        """The slice as a ``pyarrow.Table`` (needs pyarrow)."""
        try:
            from pyarrow import csv as pacsv
        except ImportError as exc:
            raise MissingDependency("CSVSlice.to_arrow needs pyarrow: pip install pyarrow") from exc
        opts = pacsv.ParseOptions(delimiter=self.delimiter, quote_char=self.quotechar, newlines_in_values=True)
        return pacsv.read_csv(io.BytesIO(self._with_header()), parse_options=opts)


def count_newlines(url: str, start: int, end: int, newline: bytes, access: StoreAccess = PROCESS_DEFAULTS) -> int:
    """Map step of preprocessing: delimiters in ``[start, end)``."""
    store, key = access.open(url)
    return store.get_range(key, start, end).count(newline)


def _map_or_serial(executor: MapperLike | None, func: Callable[..., _T], args: list[tuple[Any, ...]]) -> list[_T]:
    """``func(*a)`` for each ``a`` on the executor when there is one and more than one task, else here."""
    return starmap(as_mapper(executor if len(args) > 1 else None), func, args)


class Text(Format):
    """Newline-delimited text. Options: ``newline`` (default ``"\\n"``)."""

    name = "text"
    index_version = 1

    def __init__(self, newline: str | bytes = "\n", **options: Any) -> None:
        nl = newline.encode() if isinstance(newline, str) else newline
        if not nl:
            raise ConfigError("newline must not be empty")
        super().__init__(newline=nl.decode(), **options)
        self.newline = nl

    def _count_lines(self, co: CloudObject, executor: MapperLike | None, start: int) -> int:
        ranges = [(a, min(co.size, a + _COUNT_CHUNK)) for a in range(start, co.size, _COUNT_CHUNK)]
        if len(self.newline) > 1:  # a delimiter could straddle chunks: count in one go
            ranges = [(start, co.size)] if co.size > start else []
        counts = _map_or_serial(executor, count_newlines, [(co.url, a, b, self.newline, co.access) for a, b in ranges])
        lines = sum(counts)
        if co.size > start:
            last = storage.get_range(co.url, co.size - len(self.newline), co.size, settings=co.settings)
            lines += last != self.newline  # a last line without a delimiter still counts
        return int(lines)

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        lines = self._count_lines(co, executor, 0)
        attrs = {"size": co.size, "num_lines": lines, "newline": self.newline.decode()}
        return Index(self.name, self.index_version, {}, attrs, {"data_start": 0})

    def make_slice(self, co: CloudObject, start: int, end: int) -> TextSlice:
        return TextSlice(co.url, co.size, start, end, self.newline, co.access)

    def slices(self, co: CloudObject, cuts: Sequence[int]) -> list[TextSlice]:
        """Slices between nominal ``cuts`` (ascending, the first at the data start) and the end."""
        bounds = [*cuts, co.size]
        return [self.make_slice(co, a, b) for a, b in itertools.pairwise(bounds) if b > a]


class CSV(Text):
    """CSV with a header record, read as Python's ``csv`` module reads it.

    Records end at ``\\n``, ``\\r\\n`` or ``\\r`` outside quoted fields, whatever
    ``newline`` says (``"\\n"``, ``"\\r\\n"`` or ``"\\r"``; kept for the line view of
    :class:`TextSlice`). Options: ``delimiter`` (default ``","``) and ``quotechar``
    (default ``\'"\'``, doubled inside a quoted field), one ASCII character each;
    otherwise Python's default dialect (no ``escapechar``, no ``skipinitialspace``).
    A quoted field left open at the end of the object is a :class:`MalformedRecord`.

    Example:
        >>> fmt = CSV(delimiter=";")
        >>> fmt.options["delimiter"], fmt.dialect
        (';', Dialect(delimiter=b';', quote=b\'"\'))
    """

    name = "csv"
    #: 2: quote-aware records and a blob of record starts (1 counted physical lines).
    index_version = 2

    def __init__(self, delimiter: str = ",", quotechar: str = '"', **options: Any) -> None:
        super().__init__(**options)
        if self.newline not in (b"\n", b"\r\n", b"\r"):
            raise ConfigError(f"CSV newline must be \\n, \\r\\n or \\r (csv records end there), got {self.newline!r}")
        self.dialect = Dialect.of(delimiter, quotechar)
        self.delimiter, self.quotechar = delimiter, quotechar
        self.options.update(delimiter=delimiter, quotechar=quotechar)

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        head = storage.get_range(co.url, 0, min(co.size, _CSV_HEAD + 1), settings=co.settings)
        first = first_record(head, self.dialect, whole=len(head) == co.size)
        if first is None:
            raise MalformedRecord(co.url, 0, "CSV header record longer than 1 MiB or missing", "uncompressed")
        header, data_start = first
        spacing = max(1, math.ceil((co.size - data_start) / _CSV_CHECKPOINTS))
        records = self._records(co, executor, data_start, spacing)
        columns = next(csv.reader([header.decode()], delimiter=self.delimiter, quotechar=self.quotechar), [])
        attrs = {
            "size": co.size,
            "num_rows": records.num_rows,
            "columns": columns,
            "header": header.decode(),
            "delimiter": self.delimiter,
            "quotechar": self.quotechar,
            "newline": self.newline.decode(),
        }
        data = {"data_start": data_start, "checkpoint_spacing": spacing, "checkpoints": len(records.starts)}
        blob = np.asarray(records.starts, dtype="<i8").tobytes()
        return Index(self.name, self.index_version, {}, attrs, data, blob)

    def _records(self, co: CloudObject, executor: MapperLike | None, data_start: int, spacing: int) -> RecordIndex:
        """Scan chunks, stitch them in order (or scan serially, exactly, if a chunk holds a stray quote).

        On an executor each chunk after the first is scanned for both start states (map);
        here, one after another, each chunk is scanned for the state the previous one ended in.
        """
        ranges = [(a, min(co.size, a + _CSV_SCAN_CHUNK)) for a in range(data_start, co.size, _CSV_SCAN_CHUNK)]
        common = (self.dialect, spacing, data_start)
        scans: list[ChunkScan] = []
        if executor is not None and len(ranges) > 1:
            args = [(co.url, co.size, a, b, *common, (False, a > data_start), co.access) for a, b in ranges]
            scans = _map_or_serial(executor, scan_chunk, args)
        else:
            inside = False
            for a, b in ranges:
                scans.append(scan_chunk(co.url, co.size, a, b, *common, (inside,), co.access))
                state = scans[-1].inside if inside else scans[-1].outside
                assert state is not None
                if state.stray_quote >= 0:
                    break
                inside = state.ends_inside
        records = stitch(scans, data_start, co.size, co.url)
        if records is None:
            log.info("%s: a quote inside an unquoted field; indexing records serially", co.url)
            records = exact_scan(co.url, co.size, data_start, self.dialect, spacing, co.access)
        return records

    def make_slice(self, co: CloudObject, start: int, end: int) -> CSVSlice:
        header = str(co.index.attributes["header"]).encode()
        return CSVSlice(
            co.url,
            co.size,
            start,
            end,
            self.newline,
            access=co.access,
            header=header,
            delimiter=self.delimiter,
            quotechar=self.quotechar,
        )

    def slices(self, co: CloudObject, cuts: Sequence[int]) -> list[TextSlice]:
        """Slices between record starts: each cut moves to the first indexed record start at or after it."""
        starts = np.frombuffer(co.index.blob, dtype="<i8")
        return super().slices(co, checkpoint_cuts(starts, cuts))


def partition_num_chunks(co: CloudObject, num_chunks: int) -> list[TextSlice]:
    """At most ``num_chunks`` slices of about equal bytes."""
    if num_chunks < 1:
        raise ConfigError("num_chunks must be >= 1")
    start = int(co.index.data.get("data_start", 0))
    step = max(1, math.ceil((co.size - start) / num_chunks))
    return partition_chunk_size(co, step)


def partition_chunk_size(co: CloudObject, chunk_size: int) -> list[TextSlice]:
    """Slices of about ``chunk_size`` bytes each."""
    if chunk_size < 1:
        raise ConfigError("chunk_size must be >= 1")
    fmt = co.format
    assert isinstance(fmt, Text)
    start = int(co.index.data.get("data_start", 0))
    return fmt.slices(co, range(start, co.size, chunk_size))


_STRATEGIES: dict[str, Strategy] = {"num_chunks": partition_num_chunks, "chunk_size": partition_chunk_size}
Text.strategies = _STRATEGIES
CSV.strategies = _STRATEGIES
