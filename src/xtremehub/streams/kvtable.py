"""Key-value tables on streams (after Pravega's KeyValueTables): versioned entries, conditional
updates, iteration, stored durably in the stream store like any stream.

A table is a stream with a fixed number of segments (its partitions); a key lives in the
segment that owns its hashed routing key. Each update is one event in that segment: a put
(the value) or a removal. An entry's **version** is the segment offset of the event that wrote
it, so versions of a key only grow, and a conditional update is a conditional append: the
client catches up with the segment, checks the key's version, and appends only if the segment
still ends where it read it (``expected_offset``); if another client got there first, it
catches up again and re-checks. Every client keeps the table's state by reading the segments
it touches (a table's log is not compacted yet: it suits tables of up to a few million updates).

It runs wherever the stream API runs: embedded or through a stream server.

Example:
    >>> import tempfile
    >>> from xtremehub.errors import ConditionalCheckFailed
    >>> with StreamManager.embedded(tempfile.mkdtemp()) as manager:
    ...     table = KeyValueTable(manager, "lab", "patients")
    ...     v1 = table.put("p-001", b"enrolled")
    ...     v2 = table.put("p-001", b"consented", version=v1)  # only if nobody changed it since
    ...     try:
    ...         table.put("p-001", b"withdrawn", version=v1)  # a stale version
    ...     except ConditionalCheckFailed as exc:
    ...         print(exc)
    ...     table.get("p-001").value, v2 > v1, table.keys()
    lab/patients: key 'p-001' is at Version(20), not Version(0)
    (b'consented', True, ['p-001'])
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from xtremehub.errors import ConditionalCheckFailed, InvalidStreamArgument
from xtremehub.streams.client._framing import EventDecoder, encode_event, key_point
from xtremehub.streams.client.manager import StreamManager
from xtremehub.streams.controller.model import ScalingPolicy

__all__ = ["ABSENT", "KeyValueTable", "TableEntry", "Version"]

_PUT, _REMOVE = b"P", b"R"
_READ = 1 << 20


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """Where an entry was written: its segment and the offset of its update (grows per key)."""

    segment: str
    offset: int

    def __repr__(self) -> str:
        return f"Version({self.offset})"


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


#: ``version=ABSENT``: the update applies only if the key does not exist.
ABSENT: Final = _Absent()


@dataclass(frozen=True, slots=True)
class TableEntry:
    """A key's current value and version."""

    key: str
    value: bytes
    version: Version


class KeyValueTable:
    """A durable, versioned key-value table in ``scope`` named ``name`` (created if missing).

    Args:
        manager: the stream manager (embedded or ``tcp://``).
        scope, name: where the table lives (its stream is ``name``).
        partitions: segments of a new table (an existing table keeps its own).
    """

    def __init__(self, manager: StreamManager, scope: str, name: str, *, partitions: int = 1) -> None:
        if partitions < 1:
            raise InvalidStreamArgument(f"a table needs at least 1 partition, not {partitions}")
        manager.create_scope(scope)
        manager.create_stream(scope, name, scaling_policy=ScalingPolicy.fixed(partitions))
        self.scope, self.name = scope, name
        self._store = manager.store
        self._segments = manager.controller.get_active_segments(scope, name)
        self._lock = threading.Lock()
        self._entries: dict[str, TableEntry] = {}
        self._read_to = {s.name: self._store.info(s.name).start_offset for s in self._segments}

    def _segment(self, key: str) -> str:
        point = key_point(key)
        return next(s.name for s in self._segments if s.owns(point))

    def _catch_up(self, segment: str) -> int:
        """Apply the updates of ``segment`` not seen yet; returns its end offset (lock held)."""
        decoder = EventDecoder(segment, self._read_to[segment])
        offset = self._read_to[segment]
        while (result := self._store.read(segment, offset, _READ)).data:
            offset += len(result.data)
            decoder.feed(result.data)
            while (event := decoder.next_event()) is not None:
                at, _, key, payload = event
                if key is None:
                    continue
                if payload[:1] == _PUT:
                    self._entries[key] = TableEntry(key, bytes(payload[1:]), Version(segment, at))
                elif payload[:1] == _REMOVE:
                    self._entries.pop(key, None)
        self._read_to[segment] = decoder.offset
        return offset

    def _update(self, key: str, body: bytes, expected: Version | _Absent | None) -> Version:
        if not isinstance(key, str) or not key:
            raise InvalidStreamArgument(f"table keys are non-empty strings, not {key!r}")
        segment = self._segment(key)
        event = encode_event(body, key)
        with self._lock:
            while True:
                end = self._catch_up(segment)
                current = self._entries.get(key)
                if expected is ABSENT and current is not None:
                    raise ConditionalCheckFailed(f"{self.scope}/{self.name}: key {key!r} exists ({current.version})")
                if isinstance(expected, Version) and (current is None or current.version != expected):
                    now = "is absent" if current is None else f"is at {current.version}"
                    raise ConditionalCheckFailed(f"{self.scope}/{self.name}: key {key!r} {now}, not {expected}")
                try:
                    result = self._store.append(segment, event, expected_offset=end)
                except ConditionalCheckFailed:
                    continue  # another client appended meanwhile: catch up and check again
                self._catch_up(segment)
                return Version(segment, result.offset)

    def put(self, key: str, value: bytes, *, version: Version | _Absent | None = None) -> Version:
        """Set ``key`` to ``value``; with ``version`` only if the key is at that version
        (``ABSENT``: only if it does not exist), else ``ConditionalCheckFailed``. Returns the new version."""
        return self._update(key, _PUT + bytes(value), version)

    def put_if_absent(self, key: str, value: bytes) -> Version:
        """Insert ``key`` only if it does not exist."""
        return self.put(key, value, version=ABSENT)

    def remove(self, key: str, *, version: Version | None = None) -> None:
        """Remove ``key`` (a missing key is fine unless ``version`` is given)."""
        self._update(key, _REMOVE, version)

    def get(self, key: str) -> TableEntry | None:
        """The key's entry, or None."""
        with self._lock:
            self._catch_up(self._segment(key))
            return self._entries.get(key)

    def _all(self) -> list[TableEntry]:
        with self._lock:
            for s in self._segments:
                self._catch_up(s.name)
            return sorted(self._entries.values(), key=lambda e: e.key)

    def keys(self) -> list[str]:
        """Every key, sorted."""
        return [e.key for e in self._all()]

    def items(self) -> Iterator[TableEntry]:
        """Every entry, sorted by key (a snapshot taken when called)."""
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None
