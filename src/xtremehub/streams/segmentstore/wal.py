"""The write-ahead log: append-only local files of checksummed records.

Every change to the store (create, append, seal, merge, truncate, delete, tiered) is one
record. A record is a 9-byte header ``crc32 | payload length | type`` followed by the
payload; the CRC covers length, type and payload, so a torn or partially written tail is
detected at recovery and cut off. Files are named ``wal-<id>.log``; each one starts with a
``CHECKPOINT`` record holding the full store state, so recovery replays only the newest file
(older files are still read for the appended bytes they hold until those are tiered).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> wal = WalFiles(Path(tempfile.mkdtemp()), fsync=False)
    >>> wal.roll({"segments": []})
    1
    >>> pieces, data_at = encode_append("s", 0, [(None, None, b"hel"), ("w1", 7, b"lo")])
    >>> start = wal.write(pieces)
    >>> wal.pread(1, start + data_at, 5)
    b'hello'
    >>> checkpoint, records = wal.recover()
    >>> checkpoint, [r.rtype for r in records]
    ({'segments': []}, [<RecordType.APPEND: 2>])
    >>> wal.close()
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xtremehub.errors import CorruptData

if TYPE_CHECKING:
    from xtremehub.streams.segmentstore.walcipher import WalCipher

__all__ = [
    "AppendRecord",
    "Record",
    "RecordType",
    "WalFiles",
    "decode_append",
    "encode_append",
    "encode_append_parts",
    "encode_control",
    "event_headers",
]

log = logging.getLogger(__name__)

HEADER = struct.Struct("<IIB")  # crc32, payload length, record type
LENGTH_TYPE = struct.Struct("<IB")
APPEND_FIXED = struct.Struct("<HIQ")  # name length, number of events, segment offset of the first byte
APPEND_EVENT = struct.Struct("<HqQ")  # writer id length, event number (-1: none), length
MAX_PAYLOAD = 1 << 30
IOV_MAX = 512


class RecordType(IntEnum):
    CHECKPOINT = 1
    APPEND = 2
    CREATE = 3
    SEAL = 4
    MERGE = 5
    TRUNCATE = 6
    DELETE = 7
    TIERED = 8


@dataclass(frozen=True, slots=True)
class Record:
    """One valid record found at recovery: ``payload`` excludes the header."""

    file_id: int
    pos: int
    rtype: RecordType
    payload: memoryview


@dataclass(frozen=True, slots=True)
class AppendRecord:
    """The appends of one group commit to one segment: one record, contiguous bytes."""

    name: str
    offset: int
    #: (writer id, event number, length) of each append, in order
    events: list[tuple[str | None, int | None, int]]
    #: Position of the appended bytes relative to the record start, and their total length.
    data_at: int
    length: int


def _crc(payload_len: int, rtype: int, pieces: Sequence[bytes | memoryview]) -> int:
    crc = zlib.crc32(LENGTH_TYPE.pack(payload_len, rtype))
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    return crc


def encode_append(
    name: str, offset: int, events: Sequence[tuple[str | None, int | None, bytes]]
) -> tuple[list[bytes | memoryview], int]:
    """The pieces of an ``APPEND`` record (written with writev) and where its data starts.

    ``events`` are ``(writer id, event number, data)``; their bytes follow each other in the
    record, so they become one contiguous run of the segment.
    """
    parts = [(event_headers(wid, number, [len(data)]), 1) for wid, number, data in events]
    data = b"".join(data for _, _, data in events)
    head, data_at = encode_append_parts(name, offset, parts, data)
    return [head, data], data_at


@functools.lru_cache(maxsize=64)
def _headers_of(writer_id: bytes) -> struct.Struct:
    """The per-event header of one writer's events: ``APPEND_EVENT`` followed by its id."""
    return struct.Struct(f"<HqQ{len(writer_id)}s")


def event_headers(writer_id: str | None, first: int | None, lengths: Sequence[int]) -> bytes:
    """The per-event headers of consecutive events of one writer (numbers from ``first``; None: none).

    Packed in C (``map`` over a precompiled struct): no Python loop per event.

    Example:
        >>> event_headers("w", 7, [3, 2]) == APPEND_EVENT.pack(1, 7, 3) + b"w" + APPEND_EVENT.pack(1, 8, 2) + b"w"
        True
    """
    count = len(lengths)
    if writer_id is None or first is None:
        return b"".join(map(APPEND_EVENT.pack, itertools.repeat(0, count), itertools.repeat(-1, count), lengths))
    bwid = writer_id.encode()
    pack = _headers_of(bwid).pack
    numbers = range(first, first + count)
    return b"".join(map(pack, itertools.repeat(len(bwid), count), numbers, lengths, itertools.repeat(bwid, count)))


def encode_append_parts(name: str, offset: int, parts: Sequence[tuple[bytes, int]], data: bytes) -> tuple[bytes, int]:
    """The head of an ``APPEND`` record (header, name, the events' headers) and where ``data`` starts.

    ``parts`` are ``(event headers, event count)`` (from :func:`event_headers`) in order;
    ``data`` is all the events' bytes, written right after the head.
    """
    bname = name.encode()
    count = sum(n for _, n in parts)
    prefix = b"".join([APPEND_FIXED.pack(len(bname), count, offset), bname, *(h for h, _ in parts)])
    payload_len = len(prefix) + len(data)
    header = HEADER.pack(_crc(payload_len, RecordType.APPEND, (prefix, data)), payload_len, RecordType.APPEND)
    return header + prefix, HEADER.size + len(prefix)


def decode_append(payload: memoryview) -> AppendRecord:
    name_len, count, offset = APPEND_FIXED.unpack_from(payload)
    at = APPEND_FIXED.size
    name = bytes(payload[at : at + name_len]).decode()
    at += name_len
    events: list[tuple[str | None, int | None, int]] = []
    for _ in range(count):
        wid_len, event_number, length = APPEND_EVENT.unpack_from(payload, at)
        at += APPEND_EVENT.size
        writer_id = bytes(payload[at : at + wid_len]).decode() if wid_len else None
        at += wid_len
        events.append((writer_id, None if event_number < 0 else event_number, length))
    return AppendRecord(name, offset, events, HEADER.size + at, len(payload) - at)


def encode_control(rtype: RecordType, body: dict[str, Any]) -> bytes:
    """A control record (everything but appends) with a JSON payload."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    return HEADER.pack(_crc(len(payload), rtype, (payload,)), len(payload), rtype) + payload


def decode_control(payload: memoryview) -> dict[str, Any]:
    body = json.loads(bytes(payload))
    assert isinstance(body, dict)
    return body


def _scan(file_id: int, data: bytes) -> tuple[list[Record], int]:
    """Valid records from the start of ``data`` and the end of the last valid one."""
    view = memoryview(data)
    records: list[Record] = []
    pos = 0
    while pos + HEADER.size <= len(data):
        crc, length, rtype = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if length > MAX_PAYLOAD or end > len(data) or rtype not in RecordType._value2member_map_:
            break
        payload = view[pos + HEADER.size : end]
        if _crc(length, rtype, (payload,)) != crc:
            break
        records.append(Record(file_id, pos, RecordType(rtype), payload))
        pos = end
    return records, pos


class WalFiles:
    """The WAL directory: the current file (appended to) and older files (read by position).

    Not thread-safe: the store's commit thread writes; reads happen under the store lock.

    With a ``cipher`` (:class:`~.walcipher.WalCipher`) every file is encrypted at rest: it
    starts with the cipher's header and its bytes are encrypted at their positions; positions
    (``pread``, ``size``, record positions) stay those of the plaintext records.
    """

    def __init__(self, directory: Path, *, fsync: bool = True, cipher: WalCipher | None = None) -> None:
        self.directory = directory
        self.fsync = fsync
        self.cipher = cipher
        self._base = 0 if cipher is None else cipher.HEADER  # file offset of plaintext position 0
        self._ivs: dict[int, int] = {}
        directory.mkdir(parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}
        self._prepared = 0  # id of a next file already created with a durable directory entry
        self.current = 0
        self.size = 0
        #: Records were written since the last sync (only the current file can be dirty: a roll syncs).
        self.dirty = False

    def path(self, file_id: int) -> Path:
        return self.directory / f"wal-{file_id:08d}.log"

    def file_ids(self) -> list[int]:
        ids = []
        for entry in self.directory.iterdir():
            name = entry.name
            if name.startswith("wal-") and name.endswith(".log") and name[4:-4].isdigit():
                ids.append(int(name[4:-4]))
        return sorted(ids)

    def total_bytes(self) -> int:
        """Bytes of all WAL files on disk."""
        total = 0
        for file_id in self.file_ids():
            with contextlib.suppress(FileNotFoundError):  # deleted since listed
                total += self.path(file_id).stat().st_size
        return total

    # -- recovery -------------------------------------------------------------------------
    def recover(self) -> tuple[dict[str, Any] | None, list[Record]]:
        """The newest checkpoint and the records after it; cuts a torn tail off the newest file.

        A newest file without a valid checkpoint is an interrupted roll: it is removed and the
        previous file (complete, since a roll happens after its last fsync) is used.
        """
        ids = self.file_ids()
        while ids:
            file_id = ids[-1]
            path = self.path(file_id)
            data = self._plaintext(file_id, path.read_bytes())
            records, good_end = _scan(file_id, data)
            if not records or records[0].rtype != RecordType.CHECKPOINT:
                # A roll interrupted before its checkpoint was durable: the previous file is complete.
                if data:
                    log.warning("WAL %s has no valid checkpoint (interrupted roll): removed", path)
                path.unlink()
                ids.pop()
                continue
            if good_end < len(data):
                log.warning("WAL %s: torn tail of %d bytes at offset %d cut off", path, len(data) - good_end, good_end)
                with open(path, "r+b") as fh:
                    fh.truncate(self._base + good_end)
                    fh.flush()
                    os.fsync(fh.fileno())
            self.current, self.size = file_id, good_end
            return decode_control(records[0].payload), records[1:]
        return None, []

    def check_complete(self, file_id: int) -> None:
        """Raise :class:`CorruptData` when an older WAL file is missing (its data is referenced)."""
        if not self.path(file_id).exists():
            raise CorruptData(str(self.path(file_id)), 0, "WAL file referenced by the checkpoint is missing")

    # -- writing --------------------------------------------------------------------------
    def roll(self, checkpoint: dict[str, Any]) -> int:
        """Start a new file whose first record is ``checkpoint``; returns its id."""
        new_id = self.current + 1
        path = self.path(new_id)
        record = encode_control(RecordType.CHECKPOINT, checkpoint)
        entry_durable = self._prepared == new_id
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            if self.cipher is None:
                os.write(fd, record)
            else:
                header = self.cipher.new_header()
                self._ivs[new_id] = self.cipher.iv_of(header, str(path))
                os.write(fd, header + self.cipher.apply(self._ivs[new_id], 0, record))
            if self.fsync:
                os.fsync(fd)
                if not entry_durable:
                    self._sync_dir()
            self.dirty = False
        except BaseException:
            os.close(fd)
            raise
        # The previous file's descriptor stays open for readers (closed when the file is deleted,
        # under the store lock): closing it here could pull it from under a concurrent pread.
        self._fds[new_id] = fd
        self.current, self.size = new_id, len(record)
        return new_id

    def write(self, pieces: Sequence[bytes | memoryview]) -> int:
        """Append records to the current file (not yet durable: call :meth:`sync`); returns their start."""
        fd = self._fds[self.current]
        start = self.size
        if self.cipher is not None:
            pieces = [self.cipher.apply(self._ivs[self.current], start, b"".join(pieces))]
        for i in range(0, len(pieces), IOV_MAX):
            chunk = pieces[i : i + IOV_MAX]
            want = sum(len(p) for p in chunk)
            written = os.writev(fd, chunk)
            if written != want:  # short write (disk full, signal): finish it piece by piece
                rest = b"".join(bytes(p) for p in chunk)[written:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
        self.size = start + sum(len(p) for p in pieces)
        self.dirty = True
        return start

    def sync(self) -> None:
        if self.fsync:
            os.fdatasync(self._fds[self.current])
        self.dirty = False

    def _sync_dir(self) -> None:
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # -- reading and removal --------------------------------------------------------------
    def pread(self, file_id: int, pos: int, length: int) -> bytes:
        fd = self._fds.get(file_id)
        if fd is None:
            fd = self._fds[file_id] = os.open(self.path(file_id), os.O_RDONLY)
        data = os.pread(fd, length, self._base + pos)
        if len(data) != length:
            raise CorruptData(str(self.path(file_id)), pos, f"WAL file ends before {length} appended bytes")
        if self.cipher is not None:
            iv = self._ivs.get(file_id)
            if iv is None:
                iv = self._ivs[file_id] = self.cipher.iv_of(
                    os.pread(fd, self.cipher.HEADER, 0), str(self.path(file_id))
                )
            data = self.cipher.apply(iv, pos, data)
        return data

    def _plaintext(self, file_id: int, data: bytes) -> bytes:
        """A whole file's records as plaintext (decrypted when the WAL is encrypted)."""
        if self.cipher is None:
            if data.startswith(b"XHWALENC"):
                raise CorruptData(str(self.path(file_id)), 0, "encrypted WAL file, but no encryption is configured")
            return data
        if not data:
            return data  # an interrupted roll: recovery removes it
        iv = self._ivs[file_id] = self.cipher.iv_of(data[: self.cipher.HEADER], str(self.path(file_id)))
        return self.cipher.apply(iv, 0, memoryview(data)[self.cipher.HEADER :])

    def forget(self, file_id: int) -> None:
        """Close an older file before it is deleted (the caller unlinks it)."""
        if file_id == self.current:
            raise ValueError("the current WAL file cannot be deleted")
        fd = self._fds.pop(file_id, None)
        self._ivs.pop(file_id, None)
        if fd is not None:
            os.close(fd)

    def remove(self, file_id: int, *, step: int = 4 * 1024 * 1024) -> None:
        """Delete a file released by :meth:`forget`, shrinking it ``step`` bytes at a time first.

        Unlinking a 64 MiB file frees all its blocks in one filesystem journal transaction,
        which stalls a concurrent fdatasync of the current file for tens of milliseconds;
        freeing them in small steps spreads that work between group commits.
        """
        path = self.path(file_id)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            size = os.fstat(fd).st_size
            while size > step:
                size -= step
                os.ftruncate(fd, size)
                time.sleep(0.001)  # let a waiting group commit's fdatasync go first
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)

    def prepare_next(self) -> None:
        """Create the next file, empty, and make its directory entry durable ahead of the roll.

        Safe from another thread than the writer's. An empty newest file is what an
        interrupted roll leaves, so recovery removes it like one.
        """
        next_id = self.current + 1
        if self._prepared == next_id:
            return
        fd = os.open(self.path(next_id), os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
        if self.fsync:
            self._sync_dir()
        self._prepared = next_id

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
