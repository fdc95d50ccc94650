"""Whole FASTQ records from a stream of text chunks, validated with NumPy (no per-line Python).

The newlines are found by :func:`~xtremehub.connectors.codecs.byte_positions.byte_positions`
(compiled ``memchr``, or NumPy), the records checked with NumPy on four positions each.

Records are the standard four lines: ``@header``, sequence, ``+[header]``, quality,
with sequence and quality of equal length (a ``\r`` before a newline, as in files
with Windows line endings, is not a base). A quality line may start with ``@``
and reads may differ in length; since a stream handed to :class:`FastqRecords`
always starts at a record start, counting lines in fours is exact, and every
record is checked, so a record missing its ``+`` line is reported, never
silently shifted.

Example:
    >>> blocks = FastqRecords("mem://x").feed(b"@r1\\nACGT\\n+\\n@@II\\n@r2\\nAC")
    >>> [b.data for b in blocks], [b.starts.tolist() for b in blocks]
    ([b'@r1\\nACGT\\n+\\n@@II\\n'], [[0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xtremehub.connectors.codecs.byte_positions import byte_positions
from xtremehub.errors import MalformedRecord, TruncatedData

__all__ = ["FastqRecords", "RecordBlock", "first_record_start", "header_name"]

_NONE = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class RecordBlock:
    """A run of whole records: their text, absolute start offsets, base count, first number."""

    data: bytes | memoryview  # a memoryview where the text was fed as one (the one pass's shared buffers)
    starts: np.ndarray  # absolute uncompressed offsets of the records' '@' lines
    bases: int
    first_record: int
    seq_lengths: np.ndarray  # bases of each record

    def __len__(self) -> int:
        """The number of records in the block."""
        return len(self.starts)


class FastqRecords:
    """Incremental splitter/validator: ``feed()`` chunks, get :class:`RecordBlock` s back."""

    def __init__(self, url: str, base_offset: int = 0, first_record: int = 0) -> None:
        self.url = url
        self.offset = base_offset  # absolute offset of the first byte of the carry
        self.records = first_record
        self.bases = 0
        self._carry = b""  # the start of an incomplete record
        self._carry_nl = _NONE  # newline positions in the carry (fewer than four)

    def feed(self, chunk: bytes | memoryview) -> list[RecordBlock]:
        """The whole records completed by ``chunk``, as one block (none if no record ends in it).

        The newlines are found in ``chunk`` itself; its bytes are copied once, into the
        block (together with the carried start of the first record), and not at all when
        the chunk holds whole records only. Nothing of ``chunk`` is kept past the call but
        the blocks returned (the incomplete record at its end is copied), so a caller may
        reuse a buffer it fed once it is done with those blocks.
        """
        carry, carry_nl = self._carry, self._carry_nl
        nl = byte_positions(chunk, 10)
        complete = (len(carry_nl) + len(nl)) // 4
        if complete == 0:
            self._carry = carry + chunk
            self._carry_nl = np.concatenate((carry_nl, nl + len(carry)))
            return []
        used = 4 * complete - len(carry_nl)  # newlines of this chunk that end whole records
        end = int(nl[used - 1]) + 1
        data: bytes | memoryview
        if carry:
            data = carry + memoryview(chunk)[:end]
            ends = np.concatenate((carry_nl, nl[:used] + len(carry)))
        else:
            data = chunk if end == len(chunk) else chunk[:end]
            ends = nl[:used]
        self._carry = bytes(chunk[end:])  # no copy of a bytes slice; a view's bytes may be reused
        self._carry_nl = nl[used:] - end
        return [self._take(data, ends)]

    def finish(self) -> list[RecordBlock]:
        """Handle the end of the stream: a last record without a final newline is accepted."""
        tail = self._carry
        if not tail.strip():
            self._carry, self._carry_nl = b"", _NONE
            return []
        if len(self._carry_nl) == 3 and not tail.endswith(b"\n"):
            ends = np.append(self._carry_nl, len(tail))
            self._carry, self._carry_nl = b"", _NONE
            return [self._take(tail + b"\n", ends)]
        raise TruncatedData(self.url, self.offset, f"the data ends inside FASTQ record {self.records}", "uncompressed")

    def _take(self, data: bytes | memoryview, ends: np.ndarray) -> RecordBlock:
        """Validate the records of ``data`` (``ends``: its newline positions, four per record).

        Per record, from the four newline positions alone (a handful of NumPy passes over
        arrays of one element per record, none over the text): the header starts with
        ``@``, the third line with ``+``, and sequence and quality have the same length,
        a ``\r`` before a newline not counted (an empty line's byte before its newline is
        the previous newline, so it never counts as one).
        """
        arr = np.frombuffer(data, dtype=np.uint8)
        e = ends.reshape(-1, 4)
        head = np.empty(len(e), dtype=ends.dtype)  # where each record's header line starts
        head[0] = 0
        head[1:] = e[:-1, 3] + 1
        seq_len = e[:, 1] - e[:, 0] - 1 - (arr[e[:, 1] - 1] == 13)
        qual_len = e[:, 3] - e[:, 2] - 1 - (arr[e[:, 3] - 1] == 13)
        bad = (arr[head] != ord("@")) | (arr[e[:, 1] + 1] != ord("+")) | (seq_len != qual_len)
        if bad.any():
            i = int(np.argmax(bad))
            self._raise(arr, int(head[i]), int(e[i, 1]) + 1, int(seq_len[i]), int(qual_len[i]), self.records + i)
        block = RecordBlock(data, self.offset + head, int(seq_len.sum()), self.records, seq_len)
        self.records += len(e)
        self.bases += block.bases
        self.offset += len(data)
        return block

    def _raise(self, arr: np.ndarray, head: int, plus: int, seq_len: int, qual_len: int, record: int) -> None:
        at = self.offset + head
        if arr[head] != ord("@"):
            detail = f"FASTQ record {record} does not start with '@'"
        elif arr[plus] != ord("+"):
            detail = f"FASTQ record {record} has no '+' separator line"
        else:
            detail = f"FASTQ record {record} has {seq_len} bases but {qual_len} quality values"
        raise MalformedRecord(self.url, at, detail, "uncompressed")


def header_name(data: bytes | memoryview) -> str:
    """The read name of the record at the start of ``data`` (its header up to the first space).

    Example:
        >>> header_name(memoryview(b"@r1 x=1\\r\\nAC\\n+\\nII\\n"))
        'r1'
    """
    text = data if isinstance(data, bytes) else bytes(data)
    return text[1 : text.index(b"\n")].rstrip(b"\r").split(b" ")[0].decode()


def first_record_start(data: bytes, after: int = 0) -> int:
    """Offset of the first FASTQ record starting at a line start > ``after`` in ``data``, or -1.

    A header is a line starting with ``@`` whose second next line starts with ``+``;
    a quality line starting with ``@`` is never taken for one, because two lines
    below it comes a sequence line, which cannot start with ``+``.

    Example:
        >>> first_record_start(b"II\\n@@@\\n@r2\\nAC\\n+\\nII\\n")   # '@@@' is a quality line
        7
    """
    pos = data.find(b"\n", after) + 1
    while 0 < pos < len(data):
        line2 = data.find(b"\n", pos)
        line3 = data.find(b"\n", line2 + 1) if line2 >= 0 else -1
        if line3 < 0 or line3 + 1 >= len(data):
            return -1
        if data[pos : pos + 1] == b"@" and data[line3 + 1 : line3 + 2] == b"+":
            return pos
        pos = line2 + 1
    return -1
