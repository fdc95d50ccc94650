"""Line-record formats on the record engine: one record per line (VCF, SAM text, GFF, BED...).

A line format is a :class:`LineSlice` subclass that says which lines are comments
(``comment``, skipped everywhere) and what a record's key is (:meth:`LineSlice.key`,
which also validates the line); :class:`LineScanner` built from that class is the
record scanner, and :func:`index_lines` the whole preprocessing. Its statistics are
the record count per first key field (per contig for VCF).

Example:
    >>> from xtremehub import storage
    >>> class Bed(LineSlice):
    ...     @staticmethod
    ...     def key(url: str, offset: int, line: bytes) -> RecordKey:
    ...         chrom, start, _ = line.split(b"\\t", 2)
    ...         return chrom.decode(), int(start)
    >>> _ = storage.put("mem://lr/x.bed", b"#c\\ts\\te\\nchr1\\t5\\t9\\nchr2\\t1\\t4\\n")
    >>> index, per = index_lines("mem://lr/x.bed", 25, Bed, None, spacing=65536)
    >>> index.num_records, per
    (2, {'chr1': 1, 'chr2': 1})
    >>> [Bed.planned("mem://lr/x.bed", 25, p, gz=False, settings=None).get() for p in index.plans([0, 1, 2], 25)]
    [b'chr1\\t5\\t9\\n', b'chr2\\t1\\t4\\n']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from xtremehub.connectors.codecs.record_index import RecordIndex, index_records
from xtremehub.connectors.codecs.record_slice import RecordSlice
from xtremehub.connectors.codecs.spans import RecordKey, Span, SpanResult, lines_from

if TYPE_CHECKING:
    from xtremehub.config import Settings
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = ["LineScanner", "LineSlice", "index_lines"]


@dataclass(frozen=True, kw_only=True)
class LineSlice(RecordSlice):
    """Whole lines ``[first, first + count)`` among the record lines of an object."""

    #: lines starting with this (and empty lines) are not records
    comment: ClassVar[bytes] = b"#"

    @staticmethod
    def key(url: str, offset: int, line: bytes) -> RecordKey:
        """The record's key; raise :class:`~xtremehub.errors.MalformedRecord` for a bad line."""
        raise NotImplementedError

    @classmethod
    def is_record(cls, line: bytes) -> bool:
        return bool(line) and not line.startswith(cls.comment)

    def record_lines(self) -> Iterator[bytes]:
        """The slice's record lines, without their newline, streaming."""
        with self.text() as chunks:
            lines = (
                line for _, line in lines_from(chunks, self.record_start, self.record_start) if self.is_record(line)
            )
            yield from itertools.islice(lines, self.skip, self.skip + self.count)

    def iter_chunks(self) -> Iterator[bytes]:
        for line in self.record_lines():
            yield line + b"\n"


@dataclass(frozen=True)
class LineScanner:
    """The record scanner of a :class:`LineSlice` class: counts and keys record lines per span."""

    slice_class: type[LineSlice]

    def __call__(self, span: Span) -> SpanResult[Mapping[str, int]]:
        cls = self.slice_class
        per: dict[str, int] = {}
        count, first_start, first_key, last_key = 0, None, None, None
        with span.decoded() as chunks:
            for offset, line in lines_from(chunks, span.start, span.start):
                if offset > span.end:
                    break
                if not span.owns(offset) or not cls.is_record(line):
                    continue
                key = cls.key(span.url, offset, line)
                if first_start is None:
                    first_start, first_key = offset, key
                per[str(key[0])] = per.get(str(key[0]), 0) + 1
                count += 1
                if offset == span.end:  # also the next checkpoint's first record
                    last_key = key
        return SpanResult(per, count, first_start, first_key, last_key is not None, last_key)


def index_lines(
    url: str,
    size: int,
    slice_class: type[LineSlice],
    executor: MapperLike | None,
    *,
    spacing: int,
    settings: Settings | None = None,
) -> tuple[RecordIndex, dict[str, int]]:
    """Index a line format: the record index and the record count per first key field."""
    index, results = index_records(url, size, LineScanner(slice_class), executor, spacing=spacing, settings=settings)
    per: dict[str, int] = {}
    for r in results:
        for group, n in r.stats.items():
            per[group] = per.get(group, 0) + n
    return index, per
