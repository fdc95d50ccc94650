"""Tiering: a background thread moves WAL bytes to LTS chunk objects.

Each pass takes, for every segment, its first run of untiered (WAL) bytes up to
``lts_chunk_size`` (once it fills half a chunk, is ``lts_flush_delay`` old, the segment is
sealed, or the backlog presses on the memory budget), writes it as one chunk object (several
segments upload concurrently), rewrites the segment's LTS metadata
object, and commits a ``TIERED`` WAL record that points the segment at the chunk. WAL files
that no longer hold untiered bytes are deleted (and the next WAL file is created ahead of
time, so that a roll does not wait for a directory fsync). LTS failures (unreachable store,
timeouts) are retried with exponential backoff; meanwhile appends keep landing in memory and
the WAL, within the store's budgets.

A crash between writing a chunk and committing its ``TIERED`` record leaves the bytes in the
WAL; the next pass writes the same chunk key again (same bytes), so tiering is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from xtremehub.errors import StorageError, StoreClosed
from xtremehub.streams.segmentstore.chunksum import ChunkSums
from xtremehub.streams.segmentstore.config import SegmentStoreConfig
from xtremehub.streams.segmentstore.lts import ChunkStore
from xtremehub.streams.segmentstore.state import Extent, Segment

__all__ = ["Tierer", "TieringHost"]

log = logging.getLogger(__name__)

#: Shortest time between two tiering passes started by new appends (see :meth:`Tierer.nudge`).
MIN_NUDGE_GAP = 0.05


class TieringHost(Protocol):
    """What the tierer needs from the store."""

    chunks: ChunkStore

    def untiered_heads(self) -> list[tuple[Segment, int, int]]: ...

    def untiered_run(self, seg: Segment, max_bytes: int) -> list[Extent]: ...

    def untiered_bytes(self) -> int: ...

    def run_bytes(self, seg: Segment, run: list[Extent]) -> list[bytes] | None: ...

    def lts_chunks(self, seg: Segment) -> list[list[Any]]: ...

    def commit_tiered(self, seg: Segment, offset: int, length: int, key: str, sums: ChunkSums) -> bool: ...

    def reclaim_wal(self) -> int: ...

    def lts_garbage(self) -> list[tuple[str, str, str]]: ...

    def lts_collected(self, kind: str, a: str, b: str) -> None: ...

    def lts_changed(self) -> None: ...


class Tierer:
    """The tiering thread of one store."""

    def __init__(self, host: TieringHost, config: SegmentStoreConfig) -> None:
        self.host = host
        self.config = config
        self.lts_available = True
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._deletes: list[str] = []
        self._deletes_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="xhub-segstore-tier", daemon=True)
        self._uploads = ThreadPoolExecutor(host.chunks.upload_concurrency, thread_name_prefix="xhub-segstore-upload")
        #: (segment, creation id, run offset) -> when that untiered run was first seen
        self._first_seen: dict[tuple[str, str, int], float] = {}
        self._last_nudge = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._uploads.shutdown(wait=True)

    def wake(self) -> None:
        self._wake.set()

    def nudge(self) -> None:
        """Wake the tierer for new appends, at most every ``MIN_NUDGE_GAP`` seconds.

        Called after group commits: a pass looks at every segment under the store lock, so it
        must not run once per commit.
        """
        now = time.monotonic()
        if now - self._last_nudge >= MIN_NUDGE_GAP:
            self._last_nudge = now
            self._wake.set()

    def delete_later(self, keys: Iterable[str]) -> None:
        """Delete LTS objects in the background (retried while LTS is down)."""
        with self._deletes_lock:
            self._deletes.extend(keys)
        self._wake.set()

    def _loop(self) -> None:
        backoff = self.config.lts_retry_initial
        while not self._stop.is_set():
            self._wake.wait(self.config.tiering_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tier_once()
            except (StorageError, OSError) as exc:  # LTS unreachable or failing: keep the backlog, retry
                if self.lts_available:
                    log.warning("LTS %s unavailable, buffering locally: %s", self.config.lts_url, exc)
                self.lts_available = False
                self.host.lts_changed()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.lts_retry_max)
                continue
            except StoreClosed:
                return
            if not self.lts_available:
                log.warning("LTS %s reachable again", self.config.lts_url)
            self.lts_available = True
            backoff = self.config.lts_retry_initial

    def tier_once(self) -> int:
        """One pass: tier every segment's backlog and reclaim WAL files; returns bytes tiered."""
        self.host.reclaim_wal()  # local work first: it must go on while LTS is down
        self._run_deletes()
        total = 0
        while not self._stop.is_set():
            runs = self._due(self.host.untiered_heads())
            if not runs:
                break
            moved = sum(self._uploads.map(lambda r: self._tier_run(*r), runs))  # segments upload concurrently
            if moved == 0:
                break
            total += moved
        self.host.reclaim_wal()
        return total

    def _due(self, heads: list[tuple[Segment, int, int]]) -> list[tuple[Segment, list[Extent]]]:
        """The runs to tier now (see ``SegmentStoreConfig.lts_flush_delay``).

        Decided on each segment's WAL byte count (a run is at most that long), so that only
        the runs that go now are walked extent by extent.
        """
        now = time.monotonic()
        pressure = self.host.untiered_bytes() * 2 >= self.config.memory_budget
        seen, due = {}, []
        chunk = self.config.lts_chunk_size
        for seg, offset, wal_bytes in heads:
            key = (seg.name, seg.cid, offset)
            seen[key] = self._first_seen.get(key, now)
            if (
                pressure
                or seg.sealed
                or min(wal_bytes, chunk) * 2 >= chunk
                or now - seen[key] >= self.config.lts_flush_delay
            ):
                run = self.host.untiered_run(seg, chunk)
                if run:
                    due.append((seg, run))
        self._first_seen = seen
        return due

    def _tier_run(self, seg: Segment, run: list[Extent]) -> int:
        pieces = self.host.run_bytes(seg, run)
        if pieces is None:
            return 0
        offset, length = run[0].offset, sum(len(p) for p in pieces)
        key = self.host.chunks.chunk_key(seg.name, seg.cid, offset)
        sums = self.host.chunks.put_chunk(key, pieces)
        chunks = [c for c in self.host.lts_chunks(seg) if c[0] != offset] + [[offset, length, key, sums]]
        self.host.chunks.put_metadata(seg.name, seg.cid, sorted(chunks, key=lambda c: c[0]))
        if not self.host.commit_tiered(seg, offset, length, key, sums):
            self.delete_later([key])  # the segment was deleted, merged or truncated meanwhile
            return 0
        return length

    def _run_deletes(self) -> None:
        with self._deletes_lock:
            keys, self._deletes = self._deletes, []
        for i, key in enumerate(keys):
            try:
                self.host.chunks.delete(key)
            except BaseException:
                with self._deletes_lock:
                    self._deletes.extend(keys[i:])
                raise
        chunks = self.host.chunks
        for kind, a, b in self.host.lts_garbage():  # durable: listed in checkpoints until done
            if kind == "key":
                chunks.delete(a)
            elif kind == "dir":
                chunks.delete_segment(a, b)
            else:
                chunks.delete(chunks.metadata_key(a, b))
            self.host.lts_collected(kind, a, b)
