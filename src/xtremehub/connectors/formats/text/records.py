"""Quote-aware CSV record boundaries, found in parallel and exactly as Python's ``csv`` module reads them.

A newline inside a quoted field (RFC 4180) does not end a record, so where records
end depends on everything before: a chunk of the file cannot be read on its own.
Each chunk is therefore scanned speculatively in both states it may start in,
*outside* quotes and *inside* a quoted field (:func:`scan_block`: a few NumPy passes
over the bytes, 1 MiB at a time, no Python loop per byte); :func:`stitch` then
walks the chunks in order, each time taking the scan of the state the previous
chunk ended in. The two scans of a chunk share all their passes over the bytes and
differ only in the parity of the quotes counted. Without an executor, chunks are
scanned one after another, each only for the state the previous one ended in.

Records end at ``\\n``, ``\\r\\n`` or a lone ``\\r`` outside quotes, as for a file
opened with ``newline=""``. Blank records (a terminator right after another) are
skipped, as ``csv.DictReader`` skips them, so ``num_rows`` is what it yields.

The parity model equals Python's parser as long as every quote that opens a quoted
field stands at the start of a field. Python reads any other quote literally (``5"
pipe``, or ``"a"b"c``, non-strict mode): a chunk that holds one reports it
(``stray_quote``), and :func:`exact_scan` then indexes the object serially with a
regular expression that follows Python's state machine, slower but still exact.

Example:
    >>> dialect = Dialect(b",", b'"')
    >>> data = b'1,"two\\nlines"\\n\\n3,4\\r\\n5,6'
    >>> scans = [scan_block(data, 0, 0, len(data), dialect, spacing=4, grid0=0)]
    >>> records = stitch(scans, 0, len(data), "mem://doc/r.csv")
    >>> records.num_rows, records.starts  # 14 starts the blank record, 20 the one after CRLF
    (3, (0, 14, 20))
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xtremehub.connectors.codecs.byte_positions import byte_positions
from xtremehub.errors import ConfigError, MalformedRecord
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

__all__ = [
    "ChunkScan",
    "Dialect",
    "RecordIndex",
    "StateScan",
    "checkpoint_cuts",
    "exact_scan",
    "first_record",
    "scan_block",
    "scan_chunk",
    "stitch",
]

_LF, _CR = ord("\n"), ord("\r")
_EXACT_BLOCK = 16 * 1024 * 1024
_NONE = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class Dialect:
    """The CSV dialect the scan needs: a one-byte ``delimiter`` and ``quote`` (doubled to escape)."""

    delimiter: bytes = b","
    quote: bytes = b'"'

    def __post_init__(self) -> None:
        for name, value in (("delimiter", self.delimiter), ("quotechar", self.quote)):
            if len(value) != 1 or value in (b"\r", b"\n"):
                raise ConfigError(f"CSV {name} must be one ASCII character other than CR or LF, got {value!r}")
        if self.delimiter == self.quote:
            raise ConfigError(f"CSV delimiter and quotechar must differ, both are {self.delimiter!r}")

    @classmethod
    def of(cls, delimiter: str, quotechar: str) -> Dialect:
        """The dialect of ``str`` options (``ConfigError`` unless both are one ASCII character)."""
        if not (delimiter.isascii() and quotechar.isascii()):
            raise ConfigError(f"CSV delimiter and quotechar must be ASCII, got {delimiter!r} and {quotechar!r}")
        return cls(delimiter.encode(), quotechar.encode())


@dataclass(frozen=True)
class StateScan:
    """What one chunk holds if it starts in one state (outside quotes, or inside a quoted field).

    Offsets are absolute in the object; ``-1`` means none.

    Attributes:
        terminators: record terminators outside quotes.
        empty: terminators, after the chunk's first, that end a blank record.
        first_begin: where the chunk's first terminator begins.
        last_end: just past the chunk's last terminator (where the next record starts).
        ends_inside: whether the chunk ends inside a quoted field.
        stray_quote: the first quote Python's ``csv`` reads as a literal character.
        starts: record starts sampled at the checkpoint grid (first record start at or after each mark).
    """

    terminators: int
    empty: int
    first_begin: int
    last_end: int
    ends_inside: bool
    stray_quote: int
    starts: tuple[int, ...]


@dataclass(frozen=True)
class ChunkScan:
    """The speculative scans of bytes ``[start, end)``: starting outside quotes, inside (``None``: not scanned)."""

    start: int
    end: int
    outside: StateScan | None
    inside: StateScan | None


@dataclass(frozen=True)
class RecordIndex:
    """The data records of a CSV object: their number and sorted record starts to cut slices at."""

    num_rows: int
    starts: tuple[int, ...]


def scan_block(
    buf: bytes,
    base: int,
    lo: int,
    hi: int,
    dialect: Dialect,
    *,
    spacing: int,
    grid0: int,
    states: tuple[bool, ...] = (False,),
) -> ChunkScan:
    """Scan bytes ``[lo, hi)`` of an object; ``buf`` holds its bytes from offset ``base``.

    ``buf`` should hold the byte before ``lo`` (unless ``lo`` is 0) and the byte after
    ``hi`` (unless ``hi`` is the end of the object): they tell whether a quote at ``lo``
    starts a field and whether a CR at ``hi - 1`` is the first half of a CRLF.
    Checkpoint marks lie at ``grid0 + k * spacing``. ``states`` are the start states
    to scan for (``False``: outside quotes, ``True``: inside a quoted field).
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    i0, i1 = lo - base, hi - base
    chunk = arr[i0:i1]
    has_quotes = buf.find(dialect.quote, i0, i1) >= 0
    quotes, ends, quotes_before = _quotes_and_newlines(chunk, dialect.quote[0] if has_quotes else None)
    begins = ends
    with_next = arr[i0 : min(len(arr), i1 + 1)]
    crs = int(np.count_nonzero(chunk == _CR))
    # A CR followed by LF begins a CRLF terminator (the LF ends it); any other CR ends a record.
    if crs and crs != np.count_nonzero((with_next[:-1] == _CR) & (with_next[1:] == _LF)):
        cr = byte_positions(chunk, _CR)
        after = np.minimum(cr + i0 + 1, len(arr) - 1)
        lone = (arr[after] != _LF) | (cr + i0 + 1 >= len(arr))
        ends = np.sort(np.concatenate([ends, cr[lone]]))
        quotes_before = np.searchsorted(quotes, ends)
    if crs or (i0 > 0 and arr[i0 - 1] == _CR):  # a terminator begins at the CR of its CRLF
        before = ends + i0 - 1
        crlf = (arr[np.maximum(before, 0)] == _CR) & (before >= 0) & (chunk[ends] == _LF)
        begins = ends - crlf
    # Quotes before each terminator: an even count means outside quotes if the chunk starts outside.
    parity = quotes_before & 1
    marks = np.arange(grid0 + -(-(lo - grid0) // spacing) * spacing, hi, spacing, dtype=np.int64)
    # A quote opens a field only at a field start: after a delimiter, a terminator or a closing quote.
    field_start = np.zeros(256, dtype=bool)
    field_start[[dialect.delimiter[0], _LF, _CR, dialect.quote[0]]] = True

    def state(inside: bool) -> StateScan:
        outside = parity == int(inside)
        t_end = ends[outside] + lo
        t_begin = begins[outside] + lo if begins is not ends else t_end
        opening = quotes[int(inside) :: 2] + i0
        ok = field_start[arr[np.maximum(opening - 1, 0)]] | (opening == 0)
        starts = t_end + 1
        picked = np.searchsorted(starts, marks)
        picked = picked[picked < len(starts)]
        picked = picked[np.concatenate(([True], picked[1:] != picked[:-1]))] if len(picked) else picked
        return StateScan(
            terminators=len(t_end),
            empty=int(np.count_nonzero(t_begin[1:] == starts[:-1])),
            first_begin=int(t_begin[0]) if len(t_begin) else -1,
            last_end=int(starts[-1]) if len(starts) else -1,
            ends_inside=inside != (len(quotes) % 2 == 1),
            stray_quote=-1 if ok.all() else int(opening[np.argmin(ok)]) - i0 + lo,
            starts=tuple(starts[picked].tolist()),
        )

    return ChunkScan(lo, hi, state(False) if False in states else None, state(True) if True in states else None)


def _quotes_and_newlines(
    arr: npt.NDArray[np.uint8], quote: int | None
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Positions of quotes and of LFs in ``arr``, and how many quotes precede each LF."""
    lf = byte_positions(arr, _LF)
    if quote is None:
        return _NONE, lf, np.zeros(len(lf), dtype=np.intp)
    quotes = byte_positions(arr, quote)
    return quotes, lf, np.searchsorted(quotes, lf)


def scan_chunk(
    url: str,
    size: int,
    lo: int,
    hi: int,
    dialect: Dialect,
    spacing: int,
    grid0: int,
    states: tuple[bool, ...],
    access: StoreAccess = PROCESS_DEFAULTS,
) -> ChunkScan:
    """Map step of CSV preprocessing: read ``[lo, hi)`` plus one byte each side, then :func:`scan_block`."""
    store, key = access.open(url)
    base = max(0, lo - 1)
    buf = store.get_range(key, base, min(size, hi + 1))
    return scan_block(buf, base, lo, hi, dialect, spacing=spacing, grid0=grid0, states=states)


def stitch(scans: Iterable[ChunkScan], data_start: int, size: int, url: str) -> RecordIndex | None:
    """Resolve the chunks' states in order into the records; ``None`` if a chunk holds a stray quote.

    Raises:
        MalformedRecord: the object ends inside a quoted field.
    """
    inside = False
    record_start = data_start  # where the record in progress starts
    rows = 0
    starts = [data_start]
    for chunk in scans:
        scan = chunk.inside if inside else chunk.outside
        if scan is None:
            state = "inside" if inside else "outside"
            raise ValueError(f"chunk [{chunk.start}, {chunk.end}) was not scanned for a start {state} quotes")
        if scan.stray_quote >= 0:
            return None
        if scan.terminators:
            rows += scan.terminators - scan.empty - (scan.first_begin == record_start)
            record_start = scan.last_end
        starts.extend(scan.starts)
        inside = scan.ends_inside
    if inside:
        raise _unclosed(url, record_start)
    rows += record_start < size
    return RecordIndex(rows, tuple(sorted({s for s in starts if s < size})))


def _unclosed(url: str, record_start: int) -> MalformedRecord:
    detail = f"a quoted field in the record starting at byte {record_start} is never closed"
    return MalformedRecord(url, record_start, detail, "uncompressed")


@functools.lru_cache(maxsize=16)
def _patterns(dialect: Dialect) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """Python's ``csv`` (non-strict) state machine as regular expressions, possessive so never backtracking.

    The first matches one record; its group 1 is the record without its terminator.
    The second fully matches a record whose last field is a quoted field left open.
    """
    d, q = re.escape(dialect.delimiter), re.escape(dialect.quote)
    body = rb"%s[^%s]*+(?:%s%s[^%s]*+)*+" % (q, q, q, q, q)  # an opening quote and what it quotes
    after = rb"(?:%s(?:[^%s%s\r\n][^%s\r\n]*+)?+)?+" % (q, q, d, d)  # the closing quote, then literal text
    field = rb"(?:%s%s|[^%s%s\r\n][^%s\r\n]*+)?+" % (body, after, q, d, d)
    record = re.compile(rb"(%s(?:%s%s)*+)(?:\r\n|\n|\r|\Z)" % (field, d, field))
    unclosed = re.compile(rb"(?:%s%s)*+%s" % (field, d, body))
    return record, unclosed


def first_record(head: bytes, dialect: Dialect, *, whole: bool) -> tuple[bytes, int] | None:
    """The first record of ``head`` (without its terminator) and where the next one starts.

    ``None`` if ``head``, the first bytes of a longer object (``whole`` false), may
    end before the record does; a terminator in its last byte counts as such too
    (it may be the CR of a CRLF).

    Example:
        >>> first_record(b'a,"b\\nc"\\r\\n1,2\\n', Dialect(), whole=False)
        (b'a,"b\\nc"', 9)
        >>> first_record(b'a,"b\\nc', Dialect(), whole=False) is None
        True
    """
    match = _patterns(dialect)[0].match(head)
    assert match is not None  # every field may be empty: the pattern always matches
    if not whole and match.end() >= len(head):
        return None
    return match.group(1), match.end()


def exact_scan(
    url: str, size: int, data_start: int, dialect: Dialect, spacing: int, access: StoreAccess = PROCESS_DEFAULTS
) -> RecordIndex:
    """Records of ``[data_start, size)`` by one serial pass that follows Python's ``csv`` state machine.

    For objects whose quotes :func:`scan_block` cannot resolve (quotes inside
    unquoted fields); reads the object in blocks of 16 MiB.

    Example:
        >>> from xtremehub import storage
        >>> info = storage.put("mem://doc/stray.csv", b'5" pipe,"a\\nb"\\n"x"y"z,1\\n')
        >>> exact_scan("mem://doc/stray.csv", info.size, 0, Dialect(), 8)
        RecordIndex(num_rows=2, starts=(0, 14))
    """
    pattern, unclosed = _patterns(dialect)
    store, key = access.open(url)
    rows, starts, mark = 0, [], data_start
    offset, carry = data_start, b""
    while True:
        block = store.get_range(key, offset, min(size, offset + _EXACT_BLOCK)) if offset < size else b""
        offset += len(block)
        buf, base = carry + block, offset - len(carry) - len(block)
        final = offset >= size
        pos = 0
        for match in pattern.finditer(buf):
            if not final and match.end() >= len(buf) - 1:  # may continue in the next block (or be CR of CRLF)
                break
            if match.start() == match.end():  # the empty match at the very end
                break
            pos = match.end()
            if base + match.start() >= mark:
                starts.append(base + match.start())
                mark = base + match.start() + spacing - (base + match.start() - data_start) % spacing
            if match.end(1) > match.start():
                rows += 1
                if final and match.end() == len(buf) and unclosed.fullmatch(match.group(1)):
                    raise _unclosed(url, base + match.start())
        carry = buf[pos:]
        if final:
            return RecordIndex(rows, tuple(s for s in starts if s < size))


def checkpoint_cuts(starts: Sequence[int] | npt.NDArray[np.int64], cuts: Iterable[int]) -> list[int]:
    """Each nominal cut moved to the first record start at or after it (duplicates dropped)."""
    arr = np.asarray(starts, dtype=np.int64)
    found: npt.NDArray[np.int64] = np.searchsorted(arr, np.asarray(list(cuts), dtype=np.int64))
    return sorted({int(arr[i]) for i in found if i < len(arr)})
