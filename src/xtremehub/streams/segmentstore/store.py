"""The embedded segment store: durable WAL with group commit, tail cache, tiering to LTS.

:class:`SegmentStore` is the public API; it composes one part per concern, all sharing one
:class:`~xtremehub.streams.segmentstore.core.StoreCore` (configuration, WAL, tail cache,
in-memory state and its lock):

- :mod:`~xtremehub.streams.segmentstore.recovery` rebuilds the state from the WAL at open;
- :class:`~xtremehub.streams.segmentstore.admission.Admission` holds appends back while the
  backlog budget is exhausted (LTS down or slow);
- :class:`~xtremehub.streams.segmentstore.commit.CommitEngine` commits queued operations in
  order, appends in groups (one ``writev`` and one ``fdatasync``), before they are acknowledged;
- :class:`~xtremehub.streams.segmentstore.tierhost.StoreTieringHost` is what the background
  :class:`~xtremehub.streams.segmentstore.tiering.Tierer` sees: it moves WAL bytes to LTS chunks,
  and WAL files whose bytes are all in LTS are deleted.

Example:
    >>> import tempfile
    >>> store = SegmentStore(SegmentStoreConfig(data_dir=tempfile.mkdtemp()))
    >>> store.create_segment("scope/stream/0")
    True
    >>> store.append("scope/stream/0", b"hello ", writer_id="w1", event_number=1)
    AppendResult(segment='scope/stream/0', offset=0, length=6, duplicate=False)
    >>> store.append("scope/stream/0", b"hello ", writer_id="w1", event_number=1).duplicate
    True
    >>> _ = store.append("scope/stream/0", b"world")
    >>> store.read("scope/stream/0", 0, 100).data
    b'hello world'
    >>> store.seal("scope/stream/0")
    11
    >>> store.close()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import NamedTuple

from xtremehub.errors import (
    ChecksumMismatch,
    EventTooLarge,
    InvalidOffset,
    ObjectNotFound,
    SegmentNotFound,
    SegmentTruncated,
)
from xtremehub.streams.segmentstore.admission import Admission
from xtremehub.streams.segmentstore.cache import TailCache
from xtremehub.streams.segmentstore.chunksum import ChunkSums
from xtremehub.streams.segmentstore.commit import CommitEngine
from xtremehub.streams.segmentstore.config import SegmentStoreConfig
from xtremehub.streams.segmentstore.contract import (
    AppendOutcome,
    AppendResult,
    ReadResult,
    SegmentBatch,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
    check_batches,
    when_all,
)
from xtremehub.streams.segmentstore.core import StoreCore
from xtremehub.streams.segmentstore.lock import DataDirLock
from xtremehub.streams.segmentstore.lts import ChunkStore
from xtremehub.streams.segmentstore.ops import AppendOp, RunOp
from xtremehub.streams.segmentstore.readahead import Part, ReadAhead, part_at, parts_after
from xtremehub.streams.segmentstore.recovery import recover
from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.segmentstore.state import Segment
from xtremehub.streams.segmentstore.tierhost import StoreTieringHost
from xtremehub.streams.segmentstore.tiering import Tierer
from xtremehub.streams.segmentstore.wal import RecordType, WalFiles
from xtremehub.streams.segmentstore.walcipher import WalCipher
from xtremehub.streams.sharedfuture import SharedConditionFuture

__all__ = ["SegmentStore"]

log = logging.getLogger(__name__)


class SegmentStore(SegmentStoreContract):
    """Named append-only segments in one data directory (see the module docstring).

    Raises :class:`~xtremehub.errors.DataDirLocked` when another process (or another store
    in this process) owns ``config.data_dir``.
    """

    def __init__(self, config: SegmentStoreConfig) -> None:
        self.config = config
        self._dirlock = DataDirLock.acquire(config.data_dir)
        try:
            cache = TailCache(config.memory_budget)
            wal = WalFiles(config.wal_dir, fsync=config.fsync, cipher=_wal_cipher(config))
            self._core = StoreCore(config, wal, cache, recover(wal, config.data_dir))
            self.chunks = ChunkStore(config.lts_store_url, config.lts_settings, part_size=config.lts_read_part_size)
            self._ahead = ReadAhead(self.chunks, depth=config.lts_read_ahead, budget=config.lts_read_ahead_budget)
        except BaseException:
            self._dirlock.release()
            raise
        self._admission = Admission(self._core)
        self._engine = CommitEngine(self._core, self._admission)
        self._tierer = Tierer(StoreTieringHost(self._core, self._engine, self.chunks), config)
        self._engine.tierer = self._tierer
        self._engine.start()
        self._tierer.start()

    # ------------------------------------------------------------------ public API
    def create_segment(self, name: str) -> bool:
        if not name:
            raise InvalidOffset("a segment name must not be empty")
        return bool(self._engine.control(RecordType.CREATE, {"name": name}))

    def append(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
    ) -> AppendResult:
        return self._submit_append(segment, data, writer_id, event_number, expected_offset, timeout, lead=True).result()

    def append_async(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
        previous_event_number: int | None = None,
    ) -> Future[AppendResult]:
        """Queue an append; the future resolves once it is durable.

        Returns at once unless the budgets are exhausted (LTS down): then it blocks like
        :meth:`append` and raises :class:`~xtremehub.errors.BackPressure` after ``timeout``
        (default ``config.backpressure_timeout``; ``0``: at once, without blocking). With
        ``previous_event_number`` the future fails with :class:`~xtremehub.errors.EventNumberGap`
        (nothing written) while the segment holds a lower number of the writer.
        """
        return self._submit_append(
            segment, data, writer_id, event_number, expected_offset, timeout, lead=False, previous=previous_event_number
        )

    def append_batches(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[list[AppendOutcome]]]:
        """Queue the events of several batches together: they are committed in one group commit.

        One WAL record per segment; per-event outcomes as :meth:`SegmentStoreContract.append_many`
        describes (a too large event is refused alone, numbers already stored are duplicates).
        Admission to the backlog budget is for all the events at once: under back pressure the
        call blocks, then raises :class:`~xtremehub.errors.BackPressure` after ``timeout``
        (default ``config.backpressure_timeout``; ``0``: at once, without blocking).
        """
        runs = self.append_runs(batches, writer_id=writer_id, timeout=timeout)
        return [when_all([run], lambda done: done[0].result().outcomes()) for run in runs]

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        """:meth:`append_batches` with one :class:`~.runs.RunOutcome` per batch (the hot path).

        Each batch is one queued operation; the group commit validates, writes and settles it
        as a whole (its duplicates are a prefix of it), without a Python object per event.
        """
        check_batches(batches, writer_id)
        results: list[Future[RunOutcome]] = []
        ops: list[RunOp] = []
        size = 0
        limit = self.config.max_append_size
        # The runs of one call are committed together: their futures share one condition.
        condition = threading.Condition() if len(batches) > 1 else None
        for batch in batches:
            # A snapshot: the caller may reuse its list (or change a bytearray) once we return,
            # but the events are joined later, on the commit thread. bytes are kept as they are.
            events = list(batch.events)
            if not all(type(e) is bytes for e in events):
                events = [bytes(e) for e in events]
            lengths = list(map(len, events))
            if max(lengths, default=0) > limit:  # refused alone: the events around it still go
                results.append(self._runs_around_large(batch, events, lengths, writer_id, ops))
            else:
                future: Future[RunOutcome] = Future() if condition is None else SharedConditionFuture(condition)
                number = batch.first_event_number
                op = RunOp(batch.segment, events, lengths, sum(lengths), writer_id, number, future, more=True)
                op.previous = batch.previous_event_number
                ops.append(op)
                results.append(op.future)
        if ops:
            size = sum(op.size for op in ops)
            ops[-1].more = False
            timeout = self.config.backpressure_timeout if timeout is None else timeout
            self._admission.admit(ops[0].segment, size, timeout)
            self._engine.enqueue_batch(ops, size)
        return results

    def _runs_around_large(
        self, batch: SegmentBatch, events: list[bytes], lengths: list[int], writer_id: str | None, ops: list[RunOp]
    ) -> Future[RunOutcome]:
        """A batch holding events over the size limit: runs of the others, each large one refused alone."""
        parts: list[Future[RunOutcome]] = []
        first = batch.first_event_number
        previous = batch.previous_event_number  # each run names the last event of the run before it
        i = 0
        while i < len(events):
            if lengths[i] > self.config.max_append_size:
                refused: Future[RunOutcome] = Future()
                too_large = self._too_large(batch.segment, lengths[i])
                refused.set_result(RunOutcome.refused(batch.segment, [lengths[i]], too_large))
                parts.append(refused)
                i += 1
                continue
            j = i
            while j < len(events) and lengths[j] <= self.config.max_append_size:
                j += 1
            number = None if first is None else first + i
            op = RunOp(batch.segment, events[i:j], lengths[i:j], sum(lengths[i:j]), writer_id, number, more=True)
            # The first run checks the previous batch, each later one the run before it (a refused
            # large event is never stored, so it is skipped): a run is never stored past a gap.
            op.previous = previous
            if number is not None:
                previous = number + (j - i) - 1
            ops.append(op)
            parts.append(op.future)
            i = j
        return when_all(parts, lambda done: RunOutcome.concat([f.result() for f in done]))

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> ReadResult:
        if max_length <= 0:
            raise InvalidOffset(f"segment {segment!r}: max_length must be > 0, not {max_length}")
        deadline = time.monotonic() + wait
        with self._core.cond:
            while True:
                self._core.check_open()
                seg = self._core.state.get(segment)
                if offset < seg.start:
                    raise self._truncated(segment, offset, seg.start)
                if offset > seg.length:
                    raise InvalidOffset(f"segment {segment!r}: offset {offset} is past its length {seg.length}")
                if offset < seg.length:
                    break
                if seg.sealed:
                    return ReadResult(segment, offset, b"", end_of_segment=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ReadResult(segment, offset, b"")
                self._core.cond.wait(remaining)
            if not seg.extents[seg.find(offset)].in_wal and self._ahead.in_order(segment, offset):
                plan = self._plan_in_order(seg, offset, max_length)
            else:
                plan = None
                pieces, lts_pieces, end = self._collect(seg, offset, min(seg.length, offset + max_length))
                at_end = seg.sealed and end == seg.length
                ahead = self._parts_after(seg, end) if lts_pieces and max_length >= self.chunks.part_size else []
            cid = seg.cid
        if plan is not None:
            return self._read_in_order(segment, offset, cid, plan)
        if lts_pieces:
            self._ahead.prefetch(ahead)
            with self._lts_errors(segment, offset, cid):
                data = self.chunks.read(lts_pieces)  # short when a part after the first failed
            self._ahead.read_to(segment, offset + len(data))
            return ReadResult(segment, offset, data, end_of_segment=at_end and offset + len(data) == end)
        return ReadResult(segment, offset, b"".join(pieces), end_of_segment=at_end)

    def _plan_in_order(self, seg: Segment, offset: int, max_length: int) -> _InOrder:
        """What a read in order at ``offset`` (in LTS) reads: from one part; and the parts after it."""
        ext = seg.extents[seg.find(offset)]
        at = ext.pos + offset - ext.offset
        part = part_at(
            key=ext.key, pos=ext.pos, length=ext.length, at=at, part_size=self.chunks.part_size, sums=ext.sums
        )
        n = min(part.end - at, max_length)
        ahead = self._parts_after(seg, offset + part.end - at)
        return _InOrder(part, at - part.start, n, seg.sealed and offset + n == seg.length, ahead)

    def _read_in_order(self, segment: str, offset: int, cid: str, plan: _InOrder) -> ReadResult:
        """Read ``plan``: the part's bytes without a copy when the read covers all of them."""
        self._ahead.prefetch(plan.ahead)
        part, skip, n = plan.part, plan.skip, plan.length
        with self._lts_errors(segment, offset, cid):
            data = self._ahead.get(part, last=part.start + skip + n == part.end)
        if skip or n != len(data):
            data = data[skip : skip + n]
        self._ahead.read_to(segment, offset + n)
        return ReadResult(segment, offset, data, end_of_segment=plan.at_end)

    def _parts_after(self, seg: Segment, offset: int) -> list[Part]:
        """The parts to fetch ahead of a reader in order that has read ``seg`` up to ``offset``."""
        return [part for _, part in parts_after(seg, offset, self._ahead.depth, self.chunks.part_size)]

    @contextlib.contextmanager
    def _lts_errors(self, segment: str, offset: int, cid: str) -> Iterator[None]:
        """LTS errors of a read at ``offset``, naming the segment: an object missing because the
        segment was deleted or truncated meanwhile, else missing from LTS; a chunk failing its
        checksums (with the segment offset of the bad bytes)."""
        try:
            yield
        except ObjectNotFound as exc:
            with self._core.lock:
                seg = self._core.state.get(segment)
                if seg.cid != cid:
                    raise SegmentNotFound(f"segment {segment!r} was deleted while reading") from None
                if offset < seg.start:
                    raise self._truncated(segment, offset, seg.start) from None
            raise ObjectNotFound(
                exc.url, f"LTS chunk of segment {segment!r} read at offset {offset} is missing ({exc.detail})"
            ) from exc
        except ChecksumMismatch as exc:
            at = self._segment_offset(segment, exc.url, exc.offset)
            where = f"segment {segment!r} offset {at if at >= 0 else offset}"
            raise ChecksumMismatch(
                f"{where}: {exc}", url=exc.url, offset=exc.offset, segment=segment, segment_offset=at
            ) from exc

    def _segment_offset(self, segment: str, url: str, at: int) -> int:
        """The offset in ``segment`` of byte ``at`` of the LTS object at ``url`` (-1 if it holds none)."""
        with self._core.lock:
            seg = self._core.state.segments.get(segment)
            for ext in seg.extents if seg is not None else ():
                if not ext.in_wal and ext.pos <= at <= ext.pos + ext.length and self.chunks.store.url(ext.key) == url:
                    return ext.offset + at - ext.pos
        return -1

    @staticmethod
    def _truncated(segment: str, offset: int, start: int) -> SegmentTruncated:
        return SegmentTruncated(f"segment {segment!r}: offset {offset} is below its start {start}")

    def _collect(
        self, seg: Segment, offset: int, end: int
    ) -> tuple[list[bytes], list[tuple[str, int, int, ChunkSums | None]], int]:
        """Bytes ``[offset, end)`` from cache/WAL, or the LTS pieces for them (never both); returns where it stopped."""
        local: list[bytes] = []
        remote: list[tuple[str, int, int, ChunkSums | None]] = []
        pos, i = offset, seg.find(offset)
        while pos < end and i < len(seg.extents):
            ext = seg.extents[i]
            skip, n = pos - ext.offset, min(ext.end, end) - pos
            if ext.in_wal:
                if remote:
                    break
                if ext.data is not None:
                    local.append(ext.data[skip : skip + n] if skip or n < ext.length else ext.data)
                else:
                    local.append(self._core.wal.pread(ext.file_id, ext.pos + skip, n))
            else:
                if local:
                    break
                remote.append((ext.key, ext.pos + skip, ext.pos + skip + n, ext.sums))
            pos += n
            i += 1
        return local, remote, pos

    def info(self, segment: str) -> SegmentInfo:
        with self._core.lock:
            self._core.check_open()
            seg = self._core.state.get(segment)
            return SegmentInfo(seg.name, seg.start, seg.length, seg.sealed, seg.tiered_length)

    def writer_event_number(self, segment: str, writer_id: str) -> int | None:
        with self._core.lock:
            self._core.check_open()
            last = self._core.state.get(segment).writers.get(writer_id)
            return None if last is None else last[0]

    def seal(self, segment: str) -> int:
        return int(self._engine.control(RecordType.SEAL, {"name": segment}))

    def merge(self, target: str, source: str) -> int:
        return int(self._engine.control(RecordType.MERGE, {"target": target, "source": source}))

    def truncate(self, segment: str, offset: int) -> None:
        self._engine.control(RecordType.TRUNCATE, {"name": segment, "offset": offset})

    def delete(self, segment: str) -> None:
        self._engine.control(RecordType.DELETE, {"name": segment})

    def list_segments(self, prefix: str = "") -> list[str]:
        with self._core.lock:
            self._core.check_open()
            return sorted(name for name in self._core.state.segments if name.startswith(prefix))

    def stats(self) -> StoreStats:
        core = self._core
        with core.lock:
            untiered = core.state.untiered
            cache = core.cache.bytes
            throttled = self._admission.throttled
        return StoreStats(
            cache_bytes=cache,
            spill_bytes=max(0, untiered - cache),
            wal_bytes=core.wal.total_bytes(),
            untiered_bytes=untiered,
            lts_available=self._tierer.lts_available,
            throttled=throttled,
        )

    def close(self) -> None:
        """Commit what is queued, stop tiering, release the data directory."""
        core = self._core
        with core.cond:
            if core.closed:
                return
            core.closed = True
        self._engine.wake_all()
        self._tierer.stop()
        self._engine.stop()
        self._ahead.close()
        self.chunks.close()
        with self._engine.commit_lock, core.lock:  # a caller may still be committing its own operation
            core.cache.clear()
            core.wal.close()
        self._dirlock.release()

    def __enter__(self) -> SegmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SegmentStore({str(self.config.data_dir)!r}, lts={self.config.lts_url!r})"

    # ------------------------------------------------------------------ submission
    def _submit_append(
        self,
        segment: str,
        data: bytes,
        writer_id: str | None,
        event_number: int | None,
        expected_offset: int | None,
        timeout: float | None,
        *,
        lead: bool,
        previous: int | None = None,
    ) -> Future[AppendResult]:
        data = bytes(data)
        if len(data) > self.config.max_append_size:
            raise self._too_large(segment, len(data))
        if (writer_id is None) != (event_number is None):
            raise InvalidOffset(f"segment {segment!r}: writer_id and event_number must be given together")
        if previous is not None and (event_number is None or not previous < event_number):
            raise InvalidOffset(
                f"segment {segment!r}: previous_event_number {previous} must be below the event number {event_number}"
            )
        self._admission.admit(segment, len(data), self.config.backpressure_timeout if timeout is None else timeout)
        future: Future[AppendResult] = Future()
        op = AppendOp(segment, data, writer_id, event_number, expected_offset, future, previous)
        self._engine.enqueue(op, lead=lead)
        return future

    def _too_large(self, segment: str, size: int) -> EventTooLarge:
        return EventTooLarge(
            f"segment {segment!r}: append of {size} bytes exceeds the maximum of {self.config.max_append_size}"
        )


class _InOrder(NamedTuple):
    """A read in order from LTS: ``length`` bytes from ``skip`` in ``part``; ``ahead`` to prefetch."""

    part: Part
    skip: int
    length: int
    at_end: bool
    ahead: list[Part]


def _wal_cipher(config: SegmentStoreConfig) -> WalCipher | None:
    """The WAL cipher of an encrypting store (keys opened from its key source), else None."""
    if config.encryption is None:
        return None
    from xtremehub.security.keyring import open_keys
    from xtremehub.storage.encrypted import key_source

    settings = config.lts_settings
    assert settings is not None
    keys = open_keys(key_source(settings))
    return WalCipher.open(config.wal_dir, keys, config.encryption.dataset)
