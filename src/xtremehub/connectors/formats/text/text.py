"""Plain text and CSV: newline-aligned byte partitions; CSV slices carry the header.

Preprocessing counts lines in parallel over byte chunks (map) and, for CSV, reads
the header. Partitioning is pure arithmetic on the size; each slice aligns its
nominal byte range to line starts when read (every line in exactly one slice).

Example:
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> _ = storage.put("mem://doc/t.csv", b"a,b\\n1,2\\n3,4\\n5,6\\n")
    >>> co = CloudObject.from_path(CSV, "mem://doc/t.csv", metadata_url="mem://doc/t.idx").preprocess()
    >>> co["num_rows"], co["columns"]
    (3, ['a', 'b'])
    >>> [s.rows() for s in co.partition(partition_num_chunks, num_chunks=2)]
    [[{'a': '1', 'b': '2'}, {'a': '3', 'b': '4'}], [{'a': '5', 'b': '6'}]]
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtremehub import storage
from xtremehub.compute.partitioner import ObjectPart
from xtremehub.connectors.base import DataSlice, Format, Index, Strategy
from xtremehub.errors import ConfigError, MalformedRecord, MissingDependency

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = ["CSV", "CSVSlice", "Text", "TextSlice", "partition_chunk_size", "partition_num_chunks"]

_COUNT_CHUNK = 64 * 1024 * 1024


@dataclass(frozen=True)
class TextSlice(DataSlice):
    """Lines whose first byte lies in ``[start, end)`` of the object."""

    url: str
    object_size: int
    start: int
    end: int
    newline: bytes = b"\n"

    def _part(self) -> ObjectPart:
        return ObjectPart(self.url, 0, 1, (self.start, max(self.start, self.end - 1)), self.object_size, self.newline)

    def iter_chunks(self) -> Iterator[bytes]:
        if self.end <= self.start:
            return
        with self._part().data_stream as stream:
            while block := stream.read(4 * 1024 * 1024):
                yield block

    def lines(self) -> list[bytes]:
        data: bytes = self.get()
        return data.split(self.newline)[:-1] if data.endswith(self.newline) else data.split(self.newline)


@dataclass(frozen=True)
class CSVSlice(TextSlice):
    """A :class:`TextSlice` of CSV rows that knows the file's header."""

    header: bytes = b""
    delimiter: str = ","

    def rows(self) -> list[dict[str, str]]:
        """The slice's rows as dicts keyed by the header's column names."""
        text = (self.header + self.newline + self.get()).decode()
        return list(csv.DictReader(io.StringIO(text), delimiter=self.delimiter))

    def to_pandas(self) -> Any:
        """The slice as a ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise MissingDependency("CSVSlice.to_pandas needs pandas: pip install pandas") from exc
        return pd.read_csv(io.BytesIO(self.header + self.newline + self.get()), sep=self.delimiter)

    def to_arrow(self) -> Any:
        """The slice as a ``pyarrow.Table`` (needs pyarrow)."""
        try:
            from pyarrow import csv as pacsv
        except ImportError as exc:
            raise MissingDependency("CSVSlice.to_arrow needs pyarrow: pip install pyarrow") from exc
        opts = pacsv.ParseOptions(delimiter=self.delimiter)
        return pacsv.read_csv(io.BytesIO(self.header + self.newline + self.get()), parse_options=opts)


def count_newlines(url: str, start: int, end: int, newline: bytes) -> int:
    """Map step of preprocessing: delimiters in ``[start, end)``."""
    store, key = storage.open_store(url)
    return store.get_range(key, start, end).count(newline)


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

    def _count_lines(self, co: CloudObject, executor: FunctionExecutor | None, start: int) -> int:
        ranges = [(a, min(co.size, a + _COUNT_CHUNK)) for a in range(start, co.size, _COUNT_CHUNK)]
        if len(self.newline) > 1:  # a delimiter could straddle chunks: count in one go
            ranges = [(start, co.size)] if co.size > start else []
        args = [(co.url, a, b, self.newline) for a, b in ranges]
        if executor is not None and len(args) > 1:
            counts = executor.get_result(executor.map(count_newlines, args))
        else:
            counts = [count_newlines(*a) for a in args]
        lines = sum(counts)
        if co.size > start:
            last = storage.get_range(co.url, co.size - len(self.newline), co.size, settings=co.settings)
            lines += last != self.newline  # a last line without a delimiter still counts
        return int(lines)

    def build_index(self, co: CloudObject, executor: FunctionExecutor | None) -> Index:
        lines = self._count_lines(co, executor, 0)
        attrs = {"size": co.size, "num_lines": lines, "newline": self.newline.decode()}
        return Index(self.name, self.index_version, {}, attrs, {"data_start": 0})

    def make_slice(self, co: CloudObject, start: int, end: int) -> TextSlice:
        return TextSlice(co.url, co.size, start, end, self.newline)


class CSV(Text):
    """CSV with a header line. Options: ``delimiter`` (default ``","``), ``newline``."""

    name = "csv"

    def __init__(self, delimiter: str = ",", **options: Any) -> None:
        super().__init__(**options)
        self.delimiter = delimiter
        self.options["delimiter"] = delimiter

    def build_index(self, co: CloudObject, executor: FunctionExecutor | None) -> Index:
        head = storage.get_range(co.url, 0, min(co.size, 1 << 20), settings=co.settings)
        at = head.find(self.newline)
        if at < 0 and co.size > len(head):
            raise MalformedRecord(co.url, 0, "CSV header line longer than 1 MiB or missing", "uncompressed")
        header = head if at < 0 else head[:at]
        data_start = len(header) + (len(self.newline) if at >= 0 else 0)
        columns = next(csv.reader([header.decode()], delimiter=self.delimiter), [])
        rows = self._count_lines(co, executor, data_start) if data_start < co.size else 0
        attrs = {
            "size": co.size,
            "num_rows": rows,
            "columns": columns,
            "header": header.decode(),
            "delimiter": self.delimiter,
            "newline": self.newline.decode(),
        }
        return Index(self.name, self.index_version, {}, attrs, {"data_start": data_start})

    def make_slice(self, co: CloudObject, start: int, end: int) -> CSVSlice:
        header = str(co.index.attributes["header"]).encode()
        return CSVSlice(co.url, co.size, start, end, self.newline, header, self.delimiter)


def partition_num_chunks(co: CloudObject, num_chunks: int) -> list[TextSlice]:
    """``num_chunks`` slices of about equal bytes (empty ones dropped)."""
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
    return [fmt.make_slice(co, a, min(co.size, a + chunk_size)) for a in range(start, co.size, chunk_size)]


_STRATEGIES: dict[str, Strategy] = {"num_chunks": partition_num_chunks, "chunk_size": partition_chunk_size}
Text.strategies = _STRATEGIES
CSV.strategies = _STRATEGIES
