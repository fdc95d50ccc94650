"""What a segment store gives its tiering thread: untiered runs, their bytes, commits of chunks.

:class:`StoreTieringHost` implements :class:`~xtremehub.streams.segmentstore.tiering.TieringHost`
over the store's shared :class:`~xtremehub.streams.segmentstore.core.StoreCore`; chunk commits
go through the store's :class:`~xtremehub.streams.segmentstore.commit.CommitEngine` like every
other change.
"""

from __future__ import annotations

import itertools
from typing import Any

from xtremehub.streams.segmentstore.chunksum import ChunkSums
from xtremehub.streams.segmentstore.commit import CommitEngine
from xtremehub.streams.segmentstore.core import StoreCore
from xtremehub.streams.segmentstore.lts import ChunkStore
from xtremehub.streams.segmentstore.recovery import delete_unreferenced
from xtremehub.streams.segmentstore.state import Extent, Segment
from xtremehub.streams.segmentstore.wal import RecordType

__all__ = ["StoreTieringHost"]


class StoreTieringHost:
    """The tiering side of one store (see :class:`~xtremehub.streams.segmentstore.tiering.TieringHost`)."""

    def __init__(self, core: StoreCore, engine: CommitEngine, chunks: ChunkStore) -> None:
        self._core = core
        self._engine = engine
        self.chunks = chunks

    def untiered_heads(self) -> list[tuple[Segment, int, int]]:
        """``(segment, offset of its first WAL extent, its WAL bytes)`` for each segment with bytes to tier.

        Cheap enough for every pass (called up to ``1 / MIN_NUDGE_GAP`` times a second under
        the store lock): segments with nothing in the WAL are skipped on their byte count, the
        others walk their LTS prefix only (one extent per chunk), never their WAL extents.
        """
        heads = []
        with self._core.lock:
            for seg in self._core.state.segments.values():
                if seg.wal_bytes:
                    i = seg.first_wal()
                    if i < len(seg.extents):
                        heads.append((seg, seg.extents[i].offset, seg.wal_bytes))
        return heads

    def untiered_run(self, seg: Segment, max_bytes: int) -> list[Extent]:
        """The segment's first run of contiguous WAL extents (up to ``max_bytes``; empty when none)."""
        with self._core.lock:
            run: list[Extent] = []
            extents = seg.extents
            i = seg.first_wal()
            if i >= len(extents):
                return run
            run.append(extents[i])
            end, size = extents[i].end, extents[i].length
            for ext in itertools.islice(extents, i + 1, None):
                if not ext.in_wal or ext.offset != end or size + ext.length > max_bytes:
                    break
                run.append(ext)
                end, size = ext.end, size + ext.length
            return run

    def untiered_bytes(self) -> int:
        return self._core.state.untiered

    def run_bytes(self, seg: Segment, run: list[Extent]) -> list[bytes] | None:
        """The bytes of a run as pieces, or None when the run changed meanwhile (truncated, deleted, tiered).

        Pieces, not one joined ``bytes``: joining megabytes holds the GIL (and, under the store
        lock, would hold up group commits); the LTS writes the pieces as they are.
        """
        core = self._core
        with core.lock:
            current = core.state.segments.get(seg.name)
            if current is not seg or not run or seg.start > run[0].offset:
                return None
            parts = []
            for ext in run:
                if not ext.in_wal:
                    return None
                parts.append(ext.data if ext.data is not None else core.wal.pread(ext.file_id, ext.pos, ext.length))
            return parts

    def lts_chunks(self, seg: Segment) -> list[list[Any]]:
        with self._core.lock:
            return [[e.offset, e.length, e.key, e.sums] for e in seg.extents if not e.in_wal]

    def commit_tiered(self, seg: Segment, offset: int, length: int, key: str, sums: ChunkSums) -> bool:
        body = {"name": seg.name, "cid": seg.cid, "offset": offset, "length": length, "key": key}
        body["sums"] = sums.to_json()  # kept by the WAL and checkpoints: readers verify the chunk
        return bool(self._engine.control(RecordType.TIERED, body))

    def reclaim_wal(self) -> int:
        core = self._core
        deleted = delete_unreferenced(core.wal, core.state, core.lock, sync_first=self._engine.sync_durably)
        core.wal.prepare_next()  # so that the next roll does not wait for a directory fsync
        return deleted

    def lts_garbage(self) -> list[tuple[str, str, str]]:
        """LTS objects to delete: ``("key", key, "")``, ``("dir", name, cid)``, ``("meta", name, cid)``."""
        with self._core.lock:
            state = self._core.state
            return (
                [("key", key, "") for key in sorted(state.garbage_keys)]
                + [("dir", name, cid) for name, cid in sorted(state.dead_segments)]
                + [("meta", name, cid) for name, cid in sorted(state.merged_away)]
            )

    def lts_collected(self, kind: str, a: str, b: str) -> None:
        """One item of :meth:`lts_garbage` is deleted (the next checkpoint no longer lists it)."""
        with self._core.lock:
            state = self._core.state
            if kind == "key":
                state.garbage_keys.discard(a)
            elif kind == "dir":
                state.dead_segments.discard((a, b))
            else:
                state.merged_away.discard((a, b))

    def lts_changed(self) -> None:
        self._engine.wake_all()
