"""The embedded segment store: durable WAL with group commit, tail cache, tiering to LTS.

Changes are committed in order by one holder of a commit lock at a time. Operations are
queued with a future; the committer takes all queued appends (up to ``group_commit_bytes``),
validates them (sealed, conditional offset, writer dedup), writes their records with one
``writev`` and one ``fdatasync``, then applies them to the in-memory state and resolves the
futures: an acknowledged append is on disk. The committer is a background thread (for
``append_async``), or the caller of a synchronous operation itself (leader / follower group
commit): it waits for the running commit, if any, then commits what is still queued up to and
including its own operation, so a thread that is awake anyway does the work instead of waking
the commit thread. Control operations (create, seal, merge, truncate, delete,
tiered, roll) are committed one at a time in the same order. A background
:class:`~xtremehub.streams.segmentstore.tiering.Tierer` moves WAL bytes to LTS chunks; WAL
files whose bytes are all in LTS are deleted.

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

import collections
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from xtremehub.errors import (
    BackPressure,
    ConditionalCheckFailed,
    EventTooLarge,
    InvalidOffset,
    ObjectNotFound,
    SegmentNotFound,
    SegmentSealed,
    SegmentTruncated,
    StoreClosed,
)
from xtremehub.streams.segmentstore.cache import TailCache
from xtremehub.streams.segmentstore.config import SegmentStoreConfig
from xtremehub.streams.segmentstore.contract import (
    AppendResult,
    ReadResult,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
)
from xtremehub.streams.segmentstore.lock import DataDirLock
from xtremehub.streams.segmentstore.lts import ChunkStore
from xtremehub.streams.segmentstore.state import Extent, Segment, StoreState
from xtremehub.streams.segmentstore.tiering import Tierer
from xtremehub.streams.segmentstore.wal import (
    Record,
    RecordType,
    WalFiles,
    decode_append,
    decode_control,
    encode_append,
    encode_control,
)

__all__ = ["SegmentStore"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Append:
    segment: str
    data: bytes
    writer_id: str | None
    event_number: int | None
    expected_offset: int | None
    future: Future[AppendResult] = field(default_factory=Future)


@dataclass(slots=True)
class _Control:
    kind: RecordType | str
    body: dict[str, Any]
    future: Future[Any] = field(default_factory=Future)


class SegmentStore(SegmentStoreContract):
    """Named append-only segments in one data directory (see the module docstring).

    Raises :class:`~xtremehub.errors.DataDirLocked` when another process (or another store
    in this process) owns ``config.data_dir``.
    """

    def __init__(self, config: SegmentStoreConfig) -> None:
        self.config = config
        self._dirlock = DataDirLock.acquire(config.data_dir)
        try:
            self._lock = threading.RLock()
            self._cond = threading.Condition(self._lock)
            self._cache = TailCache(config.memory_budget)
            self._wal = WalFiles(config.wal_dir, fsync=config.fsync)
            self._state = self._recover()
            self.chunks = ChunkStore(config.lts_url, config.settings, part_size=config.lts_read_part_size)
        except BaseException:
            self._dirlock.release()
            raise
        # Queued operations, committed in order by whoever holds ``_commit_lock``: the commit
        # thread, or a caller of a synchronous operation that finds it free (it then commits its
        # own operation and everything queued before it, saving two thread hand-offs).
        self._pending: collections.deque[_Append | _Control] = collections.deque()
        self._pending_cond = threading.Condition(threading.Lock())
        # Re-entrant: a future's done-callback, run by the committing thread, may append again.
        self._commit_lock = threading.RLock()
        self._stopping = False
        # Back-pressure accounting has its own lock: admission must not wait behind a group commit.
        self._budget = threading.Condition(threading.Lock())
        self._reserved = 0  # bytes admitted but not yet committed
        self._throttled = 0  # appends waiting for budget now
        self._closed = False
        self._failed: BaseException | None = None
        self._committer = threading.Thread(target=self._commit_loop, name="xhub-segstore-commit", daemon=True)
        self._committer.start()
        self._tierer = Tierer(self, config)
        self._tierer.start()

    # ------------------------------------------------------------------ recovery
    def _recover(self) -> StoreState:
        checkpoint, records = self._wal.recover()
        state = StoreState() if checkpoint is None else StoreState.from_checkpoint(checkpoint)
        for record in records:
            self._replay(state, record)
        for file_id in state.refs:
            self._wal.check_complete(file_id)
        self._wal.roll(state.checkpoint())
        self._delete_unreferenced(state)  # no reader or writer runs yet
        log.info(
            "segment store %s: %d segments recovered from %d WAL records (%d bytes untiered)",
            self.config.data_dir,
            len(state.segments),
            len(records),
            state.untiered,
        )
        return state

    @staticmethod
    def _replay(state: StoreState, record: Record) -> None:
        if record.rtype == RecordType.APPEND:
            rec = decode_append(record.payload)
            state.apply_append(rec.name, rec.offset, rec.events, file_id=record.file_id, pos=record.pos + rec.data_at)
            return
        body = decode_control(record.payload)
        if record.rtype == RecordType.CREATE:
            state.apply_create(body["name"], body["cid"])
        elif record.rtype == RecordType.SEAL:
            state.apply_seal(body["name"])
        elif record.rtype == RecordType.MERGE:
            state.apply_seal(body["source"])
            state.apply_merge(body["target"], body["source"])
        elif record.rtype == RecordType.TRUNCATE:
            state.apply_truncate(body["name"], body["offset"])
        elif record.rtype == RecordType.DELETE:
            state.apply_delete(body["name"])
        elif record.rtype == RecordType.TIERED:
            state.apply_tiered(body["name"], body["cid"], body["offset"], body["length"], body["key"])

    def _delete_unreferenced(self, state: StoreState, *, durable_first: bool = False) -> int:
        """Remove WAL files before the current one that hold no untiered bytes; returns how many.

        No roll is needed first: recovery replays the current file's checkpoint and the records
        after it (including the TIERED records that released these files), and reads only the
        files the resulting state refers to. TIERED records are written without an fsync of
        their own (a lost one only means the chunk is written again), so with ``durable_first``
        the WAL is synced before any file they released is deleted.
        """
        with self._lock:
            current, refs = self._wal.current, set(state.refs)
            victims = [f for f in self._wal.file_ids() if f < current and f not in refs]
        if victims and durable_first:
            with self._commit_lock:
                self._sync_if_dirty()
        with self._lock:  # readers pread under this lock, only from referenced files
            for file_id in victims:
                self._wal.forget(file_id)
        for file_id in victims:  # removing a large file is slow: outside the lock
            self._wal.remove(file_id)
            log.debug("WAL file %d deleted (all its bytes are in LTS)", file_id)
        return len(victims)

    # ------------------------------------------------------------------ public API
    def create_segment(self, name: str) -> bool:
        if not name:
            raise InvalidOffset("a segment name must not be empty")
        return bool(self._control(RecordType.CREATE, {"name": name}))

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
        op = self._submit_append(segment, data, writer_id, event_number, expected_offset, timeout, lead=True)
        return op.future.result()

    def append_async(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
    ) -> Future[AppendResult]:
        """Queue an append; the future resolves once it is durable.

        Returns at once unless the budgets are exhausted (LTS down): then it blocks like
        :meth:`append` and raises :class:`~xtremehub.errors.BackPressure` after ``timeout``
        (default ``config.backpressure_timeout``; ``0``: at once, without blocking).
        """
        return self._submit_append(segment, data, writer_id, event_number, expected_offset, timeout, lead=False).future

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> ReadResult:
        if max_length <= 0:
            raise InvalidOffset(f"segment {segment!r}: max_length must be > 0, not {max_length}")
        deadline = time.monotonic() + wait
        lts_pieces: list[tuple[str, int, int]] = []
        with self._cond:
            while True:
                self._check_open()
                seg = self._state.get(segment)
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
                self._cond.wait(remaining)
            pieces, lts_pieces, end = self._collect(seg, offset, min(seg.length, offset + max_length))
            at_end = seg.sealed and end == seg.length
            cid = seg.cid
        if lts_pieces:
            try:
                data = self.chunks.read(lts_pieces)
            except ObjectNotFound:
                with self._lock:  # deleted or truncated while we read: say which
                    seg = self._state.get(segment)
                    if seg.cid != cid:
                        raise SegmentNotFound(f"segment {segment!r} was deleted while reading") from None
                    if offset < seg.start:
                        raise self._truncated(segment, offset, seg.start) from None
                raise
            return ReadResult(segment, offset, data, end_of_segment=at_end)
        return ReadResult(segment, offset, b"".join(pieces), end_of_segment=at_end)

    @staticmethod
    def _truncated(segment: str, offset: int, start: int) -> SegmentTruncated:
        return SegmentTruncated(f"segment {segment!r}: offset {offset} is below its start {start}")

    def _collect(self, seg: Segment, offset: int, end: int) -> tuple[list[bytes], list[tuple[str, int, int]], int]:
        """Bytes ``[offset, end)`` from cache/WAL, or the LTS pieces for them (never both); returns where it stopped."""
        local: list[bytes] = []
        remote: list[tuple[str, int, int]] = []
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
                    local.append(self._wal.pread(ext.file_id, ext.pos + skip, n))
            else:
                if local:
                    break
                remote.append((ext.key, ext.pos + skip, ext.pos + skip + n))
            pos += n
            i += 1
        return local, remote, pos

    def info(self, segment: str) -> SegmentInfo:
        with self._lock:
            self._check_open()
            seg = self._state.get(segment)
            return SegmentInfo(seg.name, seg.start, seg.length, seg.sealed, seg.tiered_length)

    def writer_event_number(self, segment: str, writer_id: str) -> int | None:
        with self._lock:
            self._check_open()
            last = self._state.get(segment).writers.get(writer_id)
            return None if last is None else last[0]

    def seal(self, segment: str) -> int:
        return int(self._control(RecordType.SEAL, {"name": segment}))

    def merge(self, target: str, source: str) -> int:
        return int(self._control(RecordType.MERGE, {"target": target, "source": source}))

    def truncate(self, segment: str, offset: int) -> None:
        self._control(RecordType.TRUNCATE, {"name": segment, "offset": offset})

    def delete(self, segment: str) -> None:
        self._control(RecordType.DELETE, {"name": segment})

    def list_segments(self, prefix: str = "") -> list[str]:
        with self._lock:
            self._check_open()
            return sorted(name for name in self._state.segments if name.startswith(prefix))

    def stats(self) -> StoreStats:
        with self._lock:
            untiered = self._state.untiered
            cache = self._cache.bytes
            throttled = self._throttled > 0
        return StoreStats(
            cache_bytes=cache,
            spill_bytes=max(0, untiered - cache),
            wal_bytes=self._wal.total_bytes(),
            untiered_bytes=untiered,
            lts_available=self._tierer.lts_available,
            throttled=throttled,
        )

    def close(self) -> None:
        """Commit what is queued, stop tiering, release the data directory."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._wake_all()
        self._tierer.stop()
        with self._pending_cond:
            self._stopping = True
            self._pending_cond.notify_all()
        self._committer.join()
        self.chunks.close()
        with self._commit_lock, self._lock:  # a caller may still be committing its own operation
            self._cache.clear()
            self._wal.close()
        self._dirlock.release()

    def __enter__(self) -> SegmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SegmentStore({str(self.config.data_dir)!r}, lts={self.config.lts_url!r})"

    # ------------------------------------------------------------------ submission
    def _check_open(self) -> None:
        if self._failed is not None:
            raise StoreClosed(f"segment store {self.config.data_dir} stopped after a disk error: {self._failed}")
        if self._closed:
            raise StoreClosed(f"segment store {self.config.data_dir} is closed")

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
    ) -> _Append:
        data = bytes(data)
        if len(data) > self.config.max_append_size:
            raise EventTooLarge(
                f"segment {segment!r}: append of {len(data)} bytes exceeds the maximum of {self.config.max_append_size}"
            )
        if (writer_id is None) != (event_number is None):
            raise InvalidOffset(f"segment {segment!r}: writer_id and event_number must be given together")
        self._admit(segment, len(data), self.config.backpressure_timeout if timeout is None else timeout)
        op = _Append(segment, data, writer_id, event_number, expected_offset)
        self._enqueue(op, lead=lead)
        return op

    def _admit(self, segment: str, size: int, timeout: float | None) -> None:
        """Reserve ``size`` bytes of the backlog budget, waiting while it is exhausted."""
        budget = self.config.backlog_budget
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._budget:
            self._check_open()
            while self._state.untiered + self._reserved + size > budget and self._state.untiered + self._reserved > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BackPressure(
                        f"segment {segment!r}: {self._state.untiered + self._reserved} bytes wait for LTS "
                        f"(budget {budget} = memory {self.config.memory_budget} + disk {self.config.disk_budget}); "
                        f"nothing was written, retry later"
                    )
                self._throttled += 1
                try:
                    self._budget.wait(0.5 if remaining is None else min(remaining, 0.5))
                finally:
                    self._throttled -= 1
                self._check_open()
            self._reserved += size

    def _release_budget(self, size: int) -> None:
        with self._budget:
            self._reserved -= size
            self._budget.notify_all()

    def _control(self, kind: RecordType | str, body: dict[str, Any]) -> Any:
        with self._lock:
            self._check_open()
        op = _Control(kind, body)
        self._enqueue(op, lead=True)
        return op.future.result()

    # ------------------------------------------------------------------ TieringHost
    def untiered_runs(self, max_bytes: int) -> list[tuple[Segment, list[Extent]]]:
        """For each segment, its first run of contiguous WAL extents (up to ``max_bytes``)."""
        runs = []
        with self._lock:
            for seg in self._state.segments.values():
                run: list[Extent] = []
                size = 0
                for ext in seg.extents:
                    if ext.in_wal and (not run or (ext.offset == run[-1].end and size + ext.length <= max_bytes)):
                        run.append(ext)
                        size += ext.length
                    elif run:
                        break
                if run:
                    runs.append((seg, run))
        return runs

    def untiered_bytes(self) -> int:
        return self._state.untiered

    def run_bytes(self, seg: Segment, run: list[Extent]) -> list[bytes] | None:
        """The bytes of a run as pieces, or None when the run changed meanwhile (truncated, deleted, tiered).

        Pieces, not one joined ``bytes``: joining megabytes holds the GIL (and, under the store
        lock, would hold up group commits); the LTS writes the pieces as they are.
        """
        with self._lock:
            current = self._state.segments.get(seg.name)
            if current is not seg or not run or seg.start > run[0].offset:
                return None
            parts = []
            for ext in run:
                if not ext.in_wal:
                    return None
                parts.append(ext.data if ext.data is not None else self._wal.pread(ext.file_id, ext.pos, ext.length))
            return parts

    def lts_chunks(self, seg: Segment) -> list[list[Any]]:
        with self._lock:
            return [[e.offset, e.length, e.key] for e in seg.extents if not e.in_wal]

    def commit_tiered(self, seg: Segment, offset: int, length: int, key: str) -> bool:
        body = {"name": seg.name, "cid": seg.cid, "offset": offset, "length": length, "key": key}
        return bool(self._control(RecordType.TIERED, body))

    def reclaim_wal(self) -> int:
        deleted = self._delete_unreferenced(self._state, durable_first=True)
        self._wal.prepare_next()  # so that the next roll does not wait for a directory fsync
        return deleted

    def lts_garbage(self) -> list[tuple[str, str, str]]:
        """LTS objects to delete: ``("key", key, "")``, ``("dir", name, cid)``, ``("meta", name, cid)``."""
        with self._lock:
            state = self._state
            return (
                [("key", key, "") for key in sorted(state.garbage_keys)]
                + [("dir", name, cid) for name, cid in sorted(state.dead_segments)]
                + [("meta", name, cid) for name, cid in sorted(state.merged_away)]
            )

    def lts_collected(self, kind: str, a: str, b: str) -> None:
        """One item of :meth:`lts_garbage` is deleted (the next checkpoint no longer lists it)."""
        with self._lock:
            state = self._state
            if kind == "key":
                state.garbage_keys.discard(a)
            elif kind == "dir":
                state.dead_segments.discard((a, b))
            else:
                state.merged_away.discard((a, b))

    def lts_changed(self) -> None:
        self._wake_all()

    def _wake_all(self) -> None:
        """Wake tail readers and throttled writers (close, failure, LTS state change)."""
        with self._cond:
            self._cond.notify_all()
        with self._budget:
            self._budget.notify_all()

    # ------------------------------------------------------------------ commit thread
    def _enqueue(self, op: _Append | _Control, *, lead: bool) -> None:
        """Queue ``op``; with ``lead``, commit it in this thread when no commit is running."""
        lead = lead and self.config.group_commit_delay == 0
        with self._pending_cond:
            if self._stopping:
                if isinstance(op, _Append):
                    self._release_budget(len(op.data))
                raise StoreClosed(f"segment store {self.config.data_dir} is closed")
            self._pending.append(op)
            if not lead and len(self._pending) == 1:  # the commit thread waits only on an empty queue
                self._pending_cond.notify()
        if lead and self._commit_lock.acquire(blocking=False):
            # No commit is running: commit what is queued up to our own operation in this thread,
            # instead of waking the commit thread. When one is running, do not wait for its lock:
            # it commits our operation too (or the commit thread does next), and the lock may be
            # held long after our operation is durable (by a stream of asynchronous appends).
            try:
                while not op.future.done() and self._drain_once():
                    pass
            finally:
                self._commit_lock.release()
        with self._pending_cond:  # whatever is left (ours if the lock was busy) goes to the commit thread
            if self._pending:
                self._pending_cond.notify()

    def _commit_loop(self) -> None:
        while True:
            with self._pending_cond:
                while not self._pending and not self._stopping:
                    self._pending_cond.wait()
                if not self._pending:
                    return  # stopping, and everything queued is committed
            if self.config.group_commit_delay > 0:
                time.sleep(self.config.group_commit_delay)
            with self._commit_lock:
                while self._drain_once():
                    pass

    def _drain_once(self) -> bool:
        """Commit the next batch of queued operations (caller holds ``_commit_lock``); False when none."""
        with self._pending_cond:
            if not self._pending:
                return False
            first = self._pending.popleft()
            batch: list[_Append] = []
            if isinstance(first, _Append):
                batch.append(first)
                size = len(first.data)
                while self._pending and size < self.config.group_commit_bytes:
                    nxt = self._pending[0]
                    if not isinstance(nxt, _Append):
                        break
                    self._pending.popleft()
                    batch.append(nxt)
                    size += len(nxt.data)
        if isinstance(first, _Control):
            self._run(first.future, functools.partial(self._commit_control, first))
            return True
        try:
            self._commit_appends(batch)
        except BaseException as exc:  # a bug, not a disk error: do not leave callers waiting forever
            log.exception("segment store %s: group commit failed", self.config.data_dir)
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(exc)
            raise
        return True

    def _run(self, future: Future[Any], work: Callable[[], Any]) -> None:
        if self._failed is not None:
            future.set_exception(StoreClosed(f"segment store stopped after a disk error: {self._failed}"))
            return
        try:
            result = work()
        except OSError as exc:
            self._disk_failed(exc)
            future.set_exception(exc)
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _disk_failed(self, exc: BaseException) -> None:
        # A failed write may have left part of a record in the WAL: anything written after it
        # would be cut at recovery, so the store must stop accepting changes.
        log.error("segment store %s: WAL write failed, refusing further changes: %s", self.config.data_dir, exc)
        self._failed = exc
        self._wake_all()

    def _validate(
        self, batch: list[_Append]
    ) -> tuple[dict[str, list[tuple[_Append, int]]], list[tuple[_Append, AppendResult | BaseException]]]:
        """Accepted appends per segment (with their offsets, in order) and the refused or duplicate ones."""
        state = self._state  # only the holder of _commit_lock mutates it: reads need no lock
        shadow_len: dict[str, int] = {}
        shadow_writers: dict[tuple[str, str], list[int]] = {}
        accepted: dict[str, list[tuple[_Append, int]]] = {}
        done: list[tuple[_Append, AppendResult | BaseException]] = []
        for op in batch:
            seg = state.segments.get(op.segment)
            if seg is None:
                done.append((op, SegmentNotFound(f"segment {op.segment!r} does not exist")))
                continue
            length = shadow_len.get(op.segment, seg.length)
            if op.writer_id is not None and op.event_number is not None:
                # Duplicates first: a re-sent event the segment holds is acknowledged as such also
                # once the segment is sealed (else the writer would re-route it: stored twice).
                last = shadow_writers.get((op.segment, op.writer_id)) or seg.writers.get(op.writer_id)
                if last is not None and op.event_number <= last[0]:
                    done.append((op, AppendResult(op.segment, last[1], len(op.data), duplicate=True)))
                    continue
            if seg.sealed:
                done.append((op, SegmentSealed(f"segment {op.segment!r} is sealed")))
                continue
            if op.expected_offset is not None and op.expected_offset != length:
                message = f"segment {op.segment!r}: expected offset {op.expected_offset}, length is {length}"
                done.append((op, ConditionalCheckFailed(message)))
                continue
            if op.writer_id is not None and op.event_number is not None:
                shadow_writers[(op.segment, op.writer_id)] = [op.event_number, length]
            accepted.setdefault(op.segment, []).append((op, length))
            shadow_len[op.segment] = length + len(op.data)
        return accepted, done

    def _commit_appends(self, batch: list[_Append]) -> None:
        """One group commit: one APPEND record per segment, one writev, one fdatasync."""
        accepted, done = self._validate(batch)
        records: list[tuple[str, int, int, list[tuple[_Append, int]]]] = []  # segment, start (relative), data_at, ops
        pieces: list[bytes | memoryview] = []
        rel = start = 0
        for segment, ops in accepted.items():
            record, data_at = encode_append(
                segment, ops[0][1], [(op.writer_id, op.event_number, op.data) for op, _ in ops]
            )
            records.append((segment, rel, data_at, ops))
            pieces.extend(record)
            rel += data_at + sum(len(op.data) for op, _ in ops)
        if pieces:
            error: BaseException | None = None
            if self._failed is not None:
                error = StoreClosed(f"segment store stopped after a disk error: {self._failed}")
            else:
                try:
                    start = self._wal.write(pieces)
                    self._wal.sync()
                except OSError as exc:
                    self._disk_failed(exc)
                    error = exc
            if error is not None:
                done.extend((op, error) for *_, ops in records for op, _ in ops)
                records = []
        state = self._state
        with self._cond:
            file_id = self._wal.current
            for segment, rel_pos, data_at, ops in records:
                events = [(op.writer_id, op.event_number, len(op.data)) for op, _ in ops]
                ext = state.apply_append(segment, ops[0][1], events, file_id=file_id, pos=start + rel_pos + data_at)
                self._cache.add(ext, ops[0][0].data if len(ops) == 1 else b"".join(op.data for op, _ in ops))
                done.extend((op, AppendResult(segment, offset, len(op.data))) for op, offset in ops)
            self._cond.notify_all()
        if state.untiered * 2 >= self.config.lts_chunk_size:
            self._tierer.nudge()
        self._release_budget(sum(len(op.data) for op in batch))
        for op, outcome in done:
            if isinstance(outcome, BaseException):
                op.future.set_exception(outcome)
            else:
                op.future.set_result(outcome)
        if self._failed is None and self._wal.size >= self.config.wal_file_size:
            try:
                self._roll()
            except OSError as exc:
                self._disk_failed(exc)

    def _write_control(self, rtype: RecordType, body: dict[str, Any], *, sync: bool = True) -> None:
        self._wal.write([encode_control(rtype, body)])
        if sync:
            self._wal.sync()

    def _sync_if_dirty(self) -> None:
        """Make every written WAL record durable (caller holds ``_commit_lock``)."""
        if self._wal.dirty:
            if self._failed is not None:
                raise StoreClosed(f"segment store stopped after a disk error: {self._failed}")
            try:
                self._wal.sync()
            except OSError as exc:
                self._disk_failed(exc)
                raise StoreClosed(f"segment store stopped after a disk error: {exc}") from exc

    def _commit_control(self, op: _Control) -> Any:
        state, body = self._state, op.body
        if op.kind == RecordType.CREATE:
            if body["name"] in state.segments:
                return False
            body = {"name": body["name"], "cid": uuid.uuid4().hex[:12]}
            self._write_control(RecordType.CREATE, body)
            with self._cond:
                state.apply_create(body["name"], body["cid"])
            return True
        if op.kind == RecordType.SEAL:
            seg = state.get(body["name"])
            if not seg.sealed:
                self._write_control(RecordType.SEAL, body)
                with self._cond:
                    state.apply_seal(seg.name)
                    self._cond.notify_all()
            return seg.length
        if op.kind == RecordType.MERGE:
            return self._commit_merge(body["target"], body["source"])
        if op.kind == RecordType.TRUNCATE:
            seg = state.get(body["name"])
            offset = int(body["offset"])
            if offset < 0 or offset > seg.length:
                raise InvalidOffset(f"segment {seg.name!r}: cannot truncate at {offset}, length is {seg.length}")
            if offset > seg.start:
                self._write_control(RecordType.TRUNCATE, {"name": seg.name, "offset": offset})
                with self._cond:
                    dropped = state.apply_truncate(seg.name, offset)
                    self._forget(dropped)
            return None
        if op.kind == RecordType.DELETE:
            seg = state.get(body["name"])
            self._write_control(RecordType.DELETE, body)
            with self._cond:
                state.apply_delete(seg.name)
                self._forget(seg.extents)
                self._cond.notify_all()
            return None
        if op.kind == RecordType.TIERED:
            # No fsync of its own: the next group commit's makes it durable, and until then a
            # crash only means the chunk is tiered again (same key, same bytes). WAL files it
            # releases are deleted only after a sync (see ``_delete_unreferenced``).
            self._write_control(RecordType.TIERED, body, sync=False)
            with self._cond:
                applied, replaced = state.apply_tiered(
                    body["name"], body["cid"], body["offset"], body["length"], body["key"]
                )
                for ext in replaced:
                    self._cache.drop(ext)
            with self._budget:
                self._budget.notify_all()  # the backlog shrank: throttled appends may go
            return applied
        raise ValueError(f"unknown control operation {op.kind!r}")

    def _commit_merge(self, target: str, source: str) -> int:
        state = self._state
        tgt = state.get(target)
        if source not in state.segments:
            if source in tgt.merged:
                return tgt.merged[source]  # a retry after the merge committed
            raise SegmentNotFound(f"merge source segment {source!r} does not exist")
        if tgt.sealed:
            raise SegmentSealed(f"merge target segment {target!r} is sealed")
        if source == target:
            raise InvalidOffset(f"cannot merge segment {target!r} into itself")
        src = state.segments[source]
        if src.start > 0:
            raise InvalidOffset(f"merge source segment {source!r} was truncated (start {src.start}): cannot merge it")
        self._write_control(RecordType.MERGE, {"target": target, "source": source})
        with self._cond:
            state.apply_seal(source)
            offset = state.apply_merge(target, source)
            self._cond.notify_all()
        self._tierer.wake()  # the source's LTS metadata object goes
        return offset

    def _forget(self, extents: list[Extent]) -> None:
        """Drop cached bytes of removed extents; the tierer deletes what the state lists as LTS garbage."""
        for ext in extents:
            self._cache.drop(ext)
        self._tierer.wake()

    def _roll(self) -> None:
        self._wal.roll(self._state.checkpoint())
        self._tierer.wake()  # reclaims WAL files and prepares the next one, off the commit path
