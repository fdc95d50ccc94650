"""The map and reduce steps of a parallel record scan: spans, their results, stitching.

A :class:`Span` is the text between two consecutive checkpoints. A format's
*record scanner* (any picklable ``scanner(span) -> SpanResult``) reports the
records whose start lies in ``(span.start, span.end]`` (``[0, end]`` for the
first span, see :meth:`Span.owns`): how many, where and with which key the
first one starts, and whether one starts exactly at ``end`` (then it is the next
checkpoint's first record too). :func:`stitch` turns the results into, per
checkpoint, the number, offset and key of the first record at or after it.

:func:`decoded` is the one way to read text from a checkpoint (gzip or plain),
closing the stream (and so stopping the fetches) however the reader stops.

Example:
    >>> from xtremehub.connectors.codecs.gzip_index import Checkpoint
    >>> points = [Checkpoint(0, 0), Checkpoint(80, 10)]
    >>> results = [SpanResult(None, 2, 0, ("a",), at_end=True, last_key=("b",)), SpanResult(None, 1, 10)]
    >>> stitch(points, results, 15)
    ([0, 1], [0, 10], [('a',), ('b',)])
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from xtremehub.connectors.codecs.gzip_index import Checkpoint, inflate_from
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

if TYPE_CHECKING:
    from xtremehub.config import Settings

__all__ = ["RecordKey", "Span", "SpanResult", "decoded", "lines_from", "stitch"]

#: A record's sort key as a format defines it (VCF: contig, position); JSON-able.
RecordKey = tuple[str | int, ...]
S = TypeVar("S")


@dataclass(frozen=True)
class Span:
    """The uncompressed text ``(start, end]`` between two checkpoints, to scan in the map step."""

    url: str
    object_size: int
    checkpoint: Checkpoint
    end: int  # uncompressed offset of the next checkpoint (the text size for the last span)
    planned_end: int  # compressed byte offset the span expects to need
    first: bool
    gz: bool
    access: StoreAccess = PROCESS_DEFAULTS  # the object's settings, without credentials when pickled

    @property
    def start(self) -> int:
        return self.checkpoint.uncompressed

    def owns(self, offset: int) -> bool:
        """Whether a record starting at uncompressed ``offset`` is this span's to report."""
        return (self.start <= offset if self.first else self.start < offset) and offset <= self.end

    def decoded(self) -> AbstractContextManager[Iterator[bytes]]:
        """Context manager: the text from the checkpoint on, as chunks (see :func:`decoded`)."""
        return decoded(
            self.url,
            self.object_size,
            self.checkpoint,
            self.planned_end,
            gz=self.gz,
            settings=self.access.settings_for(self.url),
        )


@dataclass(frozen=True)
class SpanResult(Generic[S]):
    """What a record scanner reports for one span; ``stats`` are the format's own."""

    stats: S
    count: int = 0
    first_start: int | None = None  # uncompressed offset of the span's first record
    first_key: RecordKey | None = None
    at_end: bool = False  # a record starts exactly at ``span.end``
    last_key: RecordKey | None = None  # ... and this is its key


@contextmanager
def decoded(
    url: str,
    object_size: int,
    point: Checkpoint,
    planned_end: int,
    *,
    gz: bool,
    settings: Settings | None = None,
    source: RangeSource | None = None,
) -> Generator[Iterator[bytes], None, None]:
    """The text of an object from ``point`` to its end, as chunks; closed on exit.

    ``gz``: inflate from the checkpoint; otherwise the bytes are the text. ``source``
    replaces the default :class:`RangeSource` (to count fetched bytes, for example).
    """
    src = source or RangeSource(url, object_size, point.byte_offset, planned_end, settings=settings)
    stream: Generator[bytes, None, None] = inflate_from(src, point) if gz else _plain(src)
    try:
        yield stream
    finally:
        stream.close()
        src.close()  # stop fetching ahead


def _plain(src: RangeSource) -> Generator[bytes, None, None]:
    while block := src.read():
        yield block


def lines_from(chunks: Iterator[bytes], skip_to: int, base: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` (no newline) for lines starting at or after ``skip_to``; ``chunks`` start at ``base``."""
    carry, pos = b"", base
    for chunk in chunks:
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


def stitch(
    points: Sequence[Checkpoint], results: Sequence[SpanResult[S]], text_size: int
) -> tuple[list[int], list[int], list[RecordKey | None]]:
    """Reduce step: per checkpoint, the number, start offset and key of the first record at or after it."""
    total = sum(r.count for r in results)
    numbers: list[int] = []
    starts: list[int] = []
    keys: list[RecordKey | None] = []
    cum = 0
    for k, point in enumerate(points):
        if k > 0 and results[k - 1].at_end:
            numbers.append(cum - 1)
            starts.append(point.uncompressed)
            keys.append(results[k - 1].last_key)
        else:
            later = next((r for r in results[k:] if r.count), None)
            numbers.append(cum if later is not None else total)
            starts.append(later.first_start if later is not None and later.first_start is not None else text_size)
            keys.append(later.first_key if later is not None else None)
        cum += results[k].count
    return numbers, starts, keys
