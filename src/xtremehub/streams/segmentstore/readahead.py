"""Read-ahead of LTS chunk parts for readers that read a segment in order (historical reads).

A segment's bytes in long-term storage (LTS) live in chunk objects; each object is read in
*parts*: ranges of ``part_size`` bytes aligned to the start of the object (the last part of
an extent is shorter). Once a reader reads a segment in order (a read starts where an earlier
one ended, or asks for at least a part), the store keeps the next ``depth`` parts of that
segment in flight (ranged GETs on a thread pool) while the reader works on what it has, and
serves each read from one part without copying when the read covers the whole part. All
parts held (in flight or fetched, not yet read) stay within ``budget`` bytes; a part is
dropped once a read reached its end, or after ``ttl`` seconds nobody asked for it.

A part carries its chunk's checksums (:mod:`.chunksum`); a fetched part is verified before
anyone reads it. A failed GET or check is not kept: the read that asks for the part fetches it again
and gets the typed error of that fetch (for example :class:`~xtremehub.errors.StorageUnavailable`,
:class:`~xtremehub.errors.ChecksumMismatch` or :class:`~xtremehub.errors.ObjectNotFound`),
never a failure of an earlier fetch ahead; the next read fetches it again.

Example:
    >>> from xtremehub.streams.segmentstore.lts import ChunkStore
    >>> lts = ChunkStore("mem://xhub-doc-ahead/p/", part_size=4)
    >>> sums = lts.put_chunk("p/c", [b"0123456789"])
    >>> ahead = ReadAhead(lts, depth=2, budget=100)
    >>> ahead.prefetch([Part("p/c", 4, 8, sums), Part("p/c", 8, 10, sums)])
    >>> ahead.get(Part("p/c", 0, 4, sums)), ahead.get(Part("p/c", 4, 8, sums)), ahead.held <= 100
    (b'0123', b'4567', True)
    >>> part_at(key="p/c", pos=0, length=10, at=5, part_size=4, sums=sums).end
    8
    >>> ahead.close(); lts.close()
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import NamedTuple

from xtremehub.errors import StoreClosed
from xtremehub.streams.segmentstore.chunksum import ChunkSums
from xtremehub.streams.segmentstore.lts import ChunkStore
from xtremehub.streams.segmentstore.state import Segment

__all__ = ["Part", "ReadAhead", "part_at", "parts_after"]

log = logging.getLogger(__name__)

#: How many reader positions (segment, next offset) are remembered to recognise reads in order.
_POSITIONS = 4096


class Part(NamedTuple):
    """Bytes ``[start, end)`` of the LTS object ``key`` (with ``sums``, its checksums, or None)."""

    key: str
    start: int
    end: int
    sums: ChunkSums | None = None


def part_at(*, key: str, pos: int, length: int, at: int, part_size: int, sums: ChunkSums | None = None) -> Part:
    """The part holding object byte ``at`` of the extent stored at ``[pos, pos + length)`` of ``key``."""
    aligned = at - at % part_size
    return Part(key, max(pos, aligned), min(pos + length, aligned + part_size), sums)


def parts_after(seg: Segment, offset: int, count: int, part_size: int) -> Iterator[tuple[int, Part]]:
    """Up to ``count`` parts of ``seg`` from segment ``offset`` on, with the segment offset of each
    part's first byte; stops at the first extent that is not in LTS (call with the state lock held)."""
    i = seg.find(offset)
    while count > 0 and i < len(seg.extents):
        ext = seg.extents[i]
        if ext.in_wal:
            return
        at = ext.pos + max(offset - ext.offset, 0)
        while count > 0 and at < ext.pos + ext.length:
            part = part_at(key=ext.key, pos=ext.pos, length=ext.length, at=at, part_size=part_size, sums=ext.sums)
            yield ext.offset + (part.start - ext.pos), part
            at, count = part.end, count - 1
        i += 1


def _failed(future: Future[bytes]) -> bool:
    """Whether ``future`` is a GET that completed with an error."""
    return future.done() and not future.cancelled() and future.exception() is not None


class _Held:
    __slots__ = ("future", "size", "touched")

    def __init__(self, future: Future[bytes], size: int) -> None:
        self.future, self.size, self.touched = future, size, time.monotonic()


class ReadAhead:
    """Parts of LTS objects fetched ahead of in-order readers (thread-safe; see the module docstring)."""

    def __init__(
        self,
        chunks: ChunkStore,
        *,
        depth: int,
        budget: int,
        threads: int | None = None,
        ttl: float = 30.0,
    ) -> None:
        self.chunks, self.depth, self.budget, self.ttl = chunks, depth, budget, ttl
        self.part_size = chunks.part_size
        workers = threads or max(1, min(chunks.store.max_concurrency, budget // max(self.part_size, 1), 64))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="xhub-lts-ahead")
        self._lock = threading.Lock()
        self._parts: collections.OrderedDict[Part, _Held] = collections.OrderedDict()  # least recently asked first
        self._positions: collections.OrderedDict[tuple[str, int], bool] = collections.OrderedDict()
        #: Bytes of the parts held (in flight or fetched and not yet read).
        self.held = 0
        self._closed = False

    # -- readers in order -------------------------------------------------------------------
    def in_order(self, segment: str, offset: int) -> bool:
        """Whether a read of ``segment`` at ``offset`` continues an earlier read (forgets that read)."""
        with self._lock:
            return self._positions.pop((segment, offset), False)

    def read_to(self, segment: str, offset: int) -> None:
        """A read of ``segment`` ended at ``offset``: a read starting there is a read in order."""
        with self._lock:
            self._positions[(segment, offset)] = True
            if len(self._positions) > _POSITIONS:
                self._positions.popitem(last=False)

    # -- parts ------------------------------------------------------------------------------
    def get(self, part: Part, *, last: bool = True) -> bytes:
        """The bytes of ``part``: held ones at once (or when their GET completes), else fetched now.

        ``last``: the reader reads up to the part's end, so it is not held any longer.
        """
        while True:
            with self._lock:
                self._check_open()
                held = self._parts.get(part)
                if held is not None and _failed(held.future):  # a stale failure: LTS may be back, or repaired
                    self._release(part)
                    held = None
                # not held, or its GET still queued behind others: fetch it now, in this thread
                mine = held is None or held.future.cancel()
                if mine:
                    if held is not None:
                        self._release(part)
                    held = _Held(Future(), part.end - part.start)
                    held.future.set_running_or_notify_cancel()
                    self._hold(part, held)
                else:
                    assert held is not None
                    held.touched = time.monotonic()
                    self._parts.move_to_end(part)
            if mine:
                self._fetch(part, held.future)
            try:
                data = held.future.result()
                break
            except CancelledError:  # taken over by another reader (or the store is closing): look again
                continue
            except BaseException:
                self._drop(part, held)  # the next read fetches it again
                raise
        if last:
            self._drop(part, held)
        else:
            self._keep_within_budget(part, held)
        return data

    def prefetch(self, parts: Iterable[Part]) -> None:
        """Start GETs of the ``parts`` not held yet, in order, while the budget allows."""
        started: list[tuple[Part, _Held]] = []
        with self._lock:
            if self._closed:
                return
            self._expire()
            for part in parts:
                if part in self._parts:
                    continue
                size = part.end - part.start
                if self.held + size > self.budget:
                    break
                held = _Held(Future(), size)
                self._hold(part, held)
                started.append((part, held))
        for part, held in started:
            self._pool.submit(self._run, part, held.future)

    def close(self) -> None:
        """Stop: GETs not started are cancelled, waiting readers get ``StoreClosed``."""
        with self._lock:
            self._closed = True
            parts, self._parts, self.held = list(self._parts.values()), collections.OrderedDict(), 0
        self._pool.shutdown(wait=False, cancel_futures=True)
        for held in parts:
            held.future.cancel()

    # -- internals ----------------------------------------------------------------------------
    def _run(self, part: Part, future: Future[bytes]) -> None:
        if future.set_running_or_notify_cancel():
            self._fetch(part, future)

    def _fetch(self, part: Part, future: Future[bytes]) -> None:
        try:
            data = self.chunks.get_part(part.key, part.start, part.end, part.sums)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(data)

    def _hold(self, part: Part, held: _Held) -> None:
        self._parts[part] = held
        self.held += held.size

    def _drop(self, part: Part, held: _Held) -> None:
        with self._lock:
            if self._parts.get(part) is held:
                self._release(part)

    def _release(self, part: Part) -> None:
        self.held -= self._parts.pop(part).size

    def _keep_within_budget(self, part: Part, held: _Held) -> None:
        """After a read that stops inside ``part``: keep it only within the budget, dropping the
        fetched parts asked for least recently first (a reader that went away), then ``part``."""
        with self._lock:
            self._expire()
            while self.held > self.budget:
                victim = next((p for p, h in self._parts.items() if h.future.done() and p != part), None)
                if victim is None:
                    if self._parts.get(part) is held:
                        self._release(part)  # the next read fetches it again
                    return
                self._release(victim)

    def _expire(self) -> None:
        """Drop fetched parts nobody asked for in ``ttl`` seconds (a reader that went away)."""
        cutoff = time.monotonic() - self.ttl
        while self._parts:
            part, held = next(iter(self._parts.items()))
            if held.touched > cutoff or not held.future.done():
                return
            self._release(part)
            log.debug("read-ahead of %s [%d, %d) expired unread", part.key, part.start, part.end)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"LTS reads of {self.chunks.url} stopped: the store is closed")
