"""The store's state machine: segments, where their bytes live, and the writers' event numbers.

The same ``apply_*`` methods run live (after a record is durable) and at recovery (replaying
the WAL), so the state rebuilt after a crash is the state that was acknowledged. A segment's
bytes are a list of *extents*, each either in a WAL file (``file_id``, position) or in an LTS
chunk object (``key``, position); tiering replaces WAL extents by one LTS extent, merge moves
the source's extents to the end of the target.

Example:
    >>> state = StoreState()
    >>> state.apply_create("s", "c1")
    >>> ext = state.apply_append("s", 0, [("w", 1, 5)], file_id=1, pos=100)
    >>> seg = state.get("s")
    >>> seg.length, seg.writers, state.untiered, dict(state.refs)
    (5, {'w': [1, 0]}, 5, {1: 1})
    >>> state.apply_tiered("s", "c1", 0, 5, "segments/s/c1/0.chunk")
    (True, [Extent(0+5 wal=1@100)])
    >>> state.untiered, seg.tiered_length
    (0, 5)
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from xtremehub.errors import SegmentNotFound
from xtremehub.streams.segmentstore.chunksum import ChunkSums

__all__ = ["Extent", "Segment", "StoreState"]


class Extent:
    """A run of a segment's bytes: ``[offset, offset + length)``, in a WAL file or an LTS object."""

    __slots__ = ("data", "file_id", "key", "length", "offset", "pos", "sums")

    def __init__(
        self,
        offset: int,
        length: int,
        *,
        file_id: int = -1,
        pos: int = 0,
        key: str = "",
        data: bytes | None = None,
        sums: ChunkSums | None = None,
    ) -> None:
        self.offset = offset
        self.length = length
        #: WAL file id (-1 for an LTS extent) and position of the first byte in the file or object.
        self.file_id = file_id
        self.pos = pos
        #: LTS object key ("" for a WAL extent).
        self.key = key
        #: Cached bytes (tail cache) or None.
        self.data = data
        #: Checksums of the LTS object (None for a WAL extent, or a chunk written before them).
        self.sums = sums

    @property
    def in_wal(self) -> bool:
        return self.file_id >= 0

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_json(self) -> list[Any]:
        item = [self.offset, self.length, self.file_id, self.pos, self.key]
        return item if self.sums is None else [*item, self.sums.to_json()]

    @classmethod
    def from_json(cls, item: list[Any]) -> Extent:
        offset, length, file_id, pos, key = item[:5]
        sums = ChunkSums.from_json(item[5]) if len(item) > 5 else None  # none in older checkpoints
        return cls(int(offset), int(length), file_id=int(file_id), pos=int(pos), key=str(key), sums=sums)

    def __repr__(self) -> str:
        where = f"wal={self.file_id}@{self.pos}" if self.in_wal else f"lts={self.key}@{self.pos}"
        return f"Extent({self.offset}+{self.length} {where})"


class Segment:
    """One segment's durable state."""

    __slots__ = ("cid", "extents", "length", "merged", "name", "sealed", "start", "starts", "wal_bytes", "writers")

    def __init__(self, name: str, cid: str) -> None:
        self.name = name
        #: Creation id: distinguishes a re-created segment's LTS objects from a deleted one's.
        self.cid = cid
        self.start = 0
        self.length = 0
        self.sealed = False
        #: writer id -> [last event number, offset of that event]
        self.writers: dict[str, list[int]] = {}
        #: source segment -> target offset, for idempotent merge retries
        self.merged: dict[str, int] = {}
        self.extents: list[Extent] = []
        self.starts: list[int] = []
        #: Bytes of this segment's extents that are in the WAL (kept by :class:`StoreState`), so
        #: that the tierer skips segments with nothing to tier without walking their extents.
        self.wal_bytes = 0

    def first_wal(self) -> int:
        """Index of the first extent in the WAL (``len(extents)`` when none): walks the LTS prefix only."""
        if not self.wal_bytes:
            return len(self.extents)
        for i, ext in enumerate(self.extents):
            if ext.in_wal:
                return i
        return len(self.extents)

    @property
    def tiered_length(self) -> int:
        """End of the leading run of bytes that are in LTS."""
        for ext in self.extents:
            if ext.in_wal:
                return ext.offset
        return self.length

    def add_extent(self, ext: Extent) -> None:
        self.extents.append(ext)
        self.starts.append(ext.offset)

    def find(self, offset: int) -> int:
        """Index of the extent holding ``offset`` (``len(extents)`` when past the end)."""
        i = bisect.bisect_right(self.starts, offset) - 1
        return max(i, 0) if self.extents and offset < self.length else len(self.extents)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cid": self.cid,
            "start": self.start,
            "length": self.length,
            "sealed": self.sealed,
            "writers": self.writers,
            "merged": self.merged,
            "extents": [e.to_json() for e in self.extents],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Segment:
        seg = cls(body["name"], body["cid"])
        seg.start, seg.length, seg.sealed = int(body["start"]), int(body["length"]), bool(body["sealed"])
        seg.writers = {k: [int(v[0]), int(v[1])] for k, v in body["writers"].items()}
        seg.merged = {k: int(v) for k, v in body["merged"].items()}
        for item in body["extents"]:
            seg.add_extent(Extent.from_json(item))
        return seg


class StoreState:
    """All segments, WAL file reference counts and the untiered byte count."""

    def __init__(self) -> None:
        self.segments: dict[str, Segment] = {}
        #: WAL file id -> number of extents whose bytes are in it
        self.refs: Counter[int] = Counter()
        #: bytes appended but not yet in LTS
        self.untiered = 0
        #: LTS objects to delete, kept in checkpoints until they are deleted (so that a crash
        #: does not leak them): chunk keys no extent refers to any more, segments whose whole
        #: LTS directory goes (deleted), and segments whose metadata object goes (merged away).
        self.garbage_keys: set[str] = set()
        self.dead_segments: set[tuple[str, str]] = set()
        self.merged_away: set[tuple[str, str]] = set()

    def get(self, name: str) -> Segment:
        seg = self.segments.get(name)
        if seg is None:
            raise SegmentNotFound(f"segment {name!r} does not exist")
        return seg

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            "segments": [seg.to_json() for seg in self.segments.values()],
            "garbage": {
                "keys": sorted(self.garbage_keys),
                "dead": sorted(self.dead_segments),
                "merged": sorted(self.merged_away),
            },
        }

    @classmethod
    def from_checkpoint(cls, body: dict[str, Any]) -> StoreState:
        state = cls()
        garbage = body.get("garbage", {})  # absent in checkpoints of older versions
        state.garbage_keys = set(garbage.get("keys", ()))
        state.dead_segments = {(str(n), str(c)) for n, c in garbage.get("dead", ())}
        state.merged_away = {(str(n), str(c)) for n, c in garbage.get("merged", ())}
        for item in body["segments"]:
            seg = Segment.from_json(item)
            state.segments[seg.name] = seg
            for ext in seg.extents:
                state._count(seg, ext, +1)
        return state

    def _count(self, seg: Segment, ext: Extent, sign: int) -> None:
        if ext.in_wal:
            self.refs[ext.file_id] += sign
            if self.refs[ext.file_id] <= 0:
                del self.refs[ext.file_id]
            self.untiered += sign * ext.length
            seg.wal_bytes += sign * ext.length

    # -- transitions ----------------------------------------------------------------------
    def apply_create(self, name: str, cid: str) -> None:
        self.segments[name] = Segment(name, cid)

    def apply_append(
        self,
        name: str,
        offset: int,
        events: list[tuple[str | None, int | None, int]],
        *,
        file_id: int,
        pos: int,
    ) -> Extent:
        """Appends of one record: ``(writer id, event number, length)`` each, contiguous from ``offset``."""
        seg = self.get(name)
        assert offset == seg.length, f"append to {name} at {offset}, length is {seg.length}"
        at = offset
        for writer_id, event_number, length in events:
            if writer_id is not None and event_number is not None:
                seg.writers[writer_id] = [event_number, at]
            at += length
        ext = Extent(offset, at - offset, file_id=file_id, pos=pos)
        if ext.length:
            seg.add_extent(ext)
            self._count(seg, ext, +1)
        seg.length = at
        return ext

    def apply_extent(
        self, name: str, offset: int, length: int, writers: dict[str, list[int]], *, file_id: int, pos: int
    ) -> Extent:
        """A committed record's ``length`` bytes from ``offset``; ``writers`` maps each writer in it
        to ``[last event number, offset of that event]`` (what :meth:`apply_append` leaves)."""
        seg = self.get(name)
        assert offset == seg.length, f"append to {name} at {offset}, length is {seg.length}"
        seg.writers.update(writers)
        ext = Extent(offset, length, file_id=file_id, pos=pos)
        if length:
            seg.add_extent(ext)
            self._count(seg, ext, +1)
        seg.length = offset + length
        return ext

    def apply_seal(self, name: str) -> int:
        seg = self.get(name)
        seg.sealed = True
        return seg.length

    def apply_merge(self, target: str, source: str) -> int:
        """Move the source's bytes to the end of the target; returns their target offset."""
        tgt, src = self.get(target), self.get(source)
        delta = tgt.length - src.start
        for ext in src.extents:
            ext.offset += delta  # the extent objects move (cached bytes stay attached)
            tgt.add_extent(ext)
        tgt.wal_bytes += src.wal_bytes
        at = tgt.length
        tgt.length += src.length - src.start
        tgt.merged[source] = at
        del self.segments[source]
        self.merged_away.add((source, src.cid))
        return at

    def apply_truncate(self, name: str, offset: int) -> list[Extent]:
        """Drop extents wholly below ``offset``; returns them."""
        seg = self.get(name)
        if offset <= seg.start:
            return []
        seg.start = offset
        keep = 0
        while keep < len(seg.extents) and seg.extents[keep].end <= offset:
            keep += 1
        dropped = seg.extents[:keep]
        del seg.extents[:keep], seg.starts[:keep]
        for ext in dropped:
            self._count(seg, ext, -1)
        self.garbage_keys.update(ext.key for ext in dropped if not ext.in_wal)
        return dropped

    def apply_delete(self, name: str) -> Segment:
        seg = self.segments.pop(name)
        for ext in seg.extents:
            self._count(seg, ext, -1)
        # Its own directory, and the chunks of merged sources it holds (in their directories).
        self.dead_segments.add((name, seg.cid))
        self.garbage_keys.update(ext.key for ext in seg.extents if not ext.in_wal)
        return seg

    def apply_tiered(
        self, name: str, cid: str, offset: int, length: int, key: str, sums: ChunkSums | None = None
    ) -> tuple[bool, list[Extent]]:
        """Replace the WAL extents ``[offset, offset + length)`` by one LTS extent (``sums``: its checksums).

        A no-op (returns ``(False, [])``) when the segment was deleted, re-created, merged away
        or truncated into that range since the chunk was written.
        """
        seg = self.segments.get(name)
        if seg is None or seg.cid != cid or seg.start > offset:
            return False, []
        i = seg.find(offset)
        j, covered = i, offset
        while j < len(seg.extents) and covered < offset + length:
            ext = seg.extents[j]
            if not ext.in_wal or ext.offset != covered:
                return False, []
            covered = ext.end
            j += 1
        if covered != offset + length or i >= len(seg.extents) or seg.extents[i].offset != offset:
            return False, []
        replaced = seg.extents[i:j]
        seg.extents[i:j] = [Extent(offset, length, key=key, pos=0, sums=sums)]
        seg.starts[i:j] = [offset]
        for ext in replaced:
            self._count(seg, ext, -1)
        return True, replaced
