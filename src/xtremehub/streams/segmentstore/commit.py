"""The commit engine of a segment store: queued operations committed in order, appends in groups.

Changes are committed in order by one holder of a commit lock at a time. Operations are
queued with a future; the committer takes all queued appends (up to ``group_commit_bytes``),
validates them (sealed, conditional offset, writer dedup), writes their records with one
``writev`` and one ``fdatasync``, then applies them to the in-memory state and resolves the
futures: an acknowledged append is on disk. The committer is a background thread (for
``append_async``), or the caller of a synchronous operation itself (leader / follower group
commit): it waits for the running commit, if any, then commits what is still queued up to and
including its own operation, so a thread that is awake anyway does the work instead of waking
the commit thread. Control operations (create, seal, merge, truncate, delete, tiered, roll)
are committed one at a time in the same order.

A failed WAL write stops the store: anything written after a partial record would be cut at
recovery, so every later change is refused with :class:`~xtremehub.errors.StoreClosed`.
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
from typing import Any

from xtremehub.errors import (
    ConditionalCheckFailed,
    EventNumberGap,
    InvalidOffset,
    SegmentNotFound,
    SegmentSealed,
    StoreClosed,
)
from xtremehub.streams.segmentstore.admission import Admission
from xtremehub.streams.segmentstore.chunksum import ChunkSums
from xtremehub.streams.segmentstore.contract import AppendResult
from xtremehub.streams.segmentstore.core import StoreCore
from xtremehub.streams.segmentstore.ops import AppendOp, ControlOp, RunOp
from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.segmentstore.state import Extent
from xtremehub.streams.segmentstore.tiering import Tierer
from xtremehub.streams.segmentstore.wal import RecordType, encode_append_parts, encode_control, event_headers

__all__ = ["CommitEngine"]

log = logging.getLogger(__name__)

#: An accepted append: the op, its segment offset, how many events of a run are duplicates
#: (a prefix) and the offset they are reported at.
_Accepted = tuple[AppendOp | RunOp, int, int, int]
#: A settled append: the op and its outcome (an error, or its result).
_Done = tuple[AppendOp | RunOp, AppendResult | RunOutcome | BaseException]


class CommitEngine:
    """The operation queue, the commit lock and the commit thread of one store.

    ``tierer`` must be attached (the tiering thread is nudged after commits) before
    :meth:`start`.
    """

    def __init__(self, core: StoreCore, admission: Admission) -> None:
        self._core = core
        self._admission = admission
        self.tierer: Tierer | None = None
        # Queued operations, committed in order by whoever holds ``_commit_lock``: the commit
        # thread, or a caller of a synchronous operation that finds it free (it then commits its
        # own operation and everything queued before it, saving two thread hand-offs).
        self._pending: collections.deque[AppendOp | RunOp | ControlOp] = collections.deque()
        self._pending_cond = threading.Condition(threading.Lock())
        # Re-entrant: a future's done-callback, run by the committing thread, may append again.
        self.commit_lock = threading.RLock()
        self._stopping = False
        self._committer = threading.Thread(target=self._commit_loop, name="xhub-segstore-commit", daemon=True)

    @property
    def _tierer(self) -> Tierer:
        assert self.tierer is not None, "CommitEngine.tierer is attached before start()"
        return self.tierer

    def start(self) -> None:
        """Start the commit thread."""
        self._committer.start()

    def stop(self) -> None:
        """Commit what is queued, refuse new operations, end the commit thread."""
        with self._pending_cond:
            self._stopping = True
            self._pending_cond.notify_all()
        self._committer.join()

    def wake_all(self) -> None:
        """Wake tail readers and throttled writers (close, failure, LTS state change)."""
        with self._core.cond:
            self._core.cond.notify_all()
        self._admission.notify()

    # -- queueing -------------------------------------------------------------------------
    def control(self, kind: RecordType | str, body: dict[str, Any]) -> Any:
        """Commit one control operation (in this thread when no commit runs); its result."""
        with self._core.lock:
            self._core.check_open()
        op = ControlOp(kind, body)
        self.enqueue(op, lead=True)
        return op.future.result()

    def enqueue(self, op: AppendOp | ControlOp, *, lead: bool) -> None:
        """Queue ``op``; with ``lead``, commit it in this thread when no commit is running."""
        lead = lead and self._core.config.group_commit_delay == 0
        with self._pending_cond:
            if self._stopping:
                if isinstance(op, AppendOp):
                    self._admission.release(len(op.data))
                raise StoreClosed(f"segment store {self._core.config.data_dir} is closed")
            self._pending.append(op)
            if not lead and len(self._pending) == 1:  # the commit thread waits only on an empty queue
                self._pending_cond.notify()
        if lead and self.commit_lock.acquire(blocking=False):
            # No commit is running: commit what is queued up to our own operation in this thread,
            # instead of waking the commit thread. When one is running, do not wait for its lock:
            # it commits our operation too (or the commit thread does next), and the lock may be
            # held long after our operation is durable (by a stream of asynchronous appends).
            try:
                while not op.future.done() and self._drain_once():
                    pass
            finally:
                self.commit_lock.release()
        with self._pending_cond:  # whatever is left (ours if the lock was busy) goes to the commit thread
            if self._pending:
                self._pending_cond.notify()

    def enqueue_batch(self, ops: list[RunOp], size: int) -> None:
        """Queue the runs of one call together, for the commit thread (``size`` bytes admitted)."""
        with self._pending_cond:
            if self._stopping:
                self._admission.release(size)
                raise StoreClosed(f"segment store {self._core.config.data_dir} is closed")
            wake = not self._pending  # the commit thread waits only on an empty queue
            self._pending.extend(ops)
            if wake:
                self._pending_cond.notify()

    # -- the commit thread ----------------------------------------------------------------
    def _commit_loop(self) -> None:
        while True:
            with self._pending_cond:
                while not self._pending and not self._stopping:
                    self._pending_cond.wait()
                if not self._pending:
                    return  # stopping, and everything queued is committed
            if self._core.config.group_commit_delay > 0:
                time.sleep(self._core.config.group_commit_delay)
            with self.commit_lock:
                while self._drain_once():
                    pass

    def _drain_once(self) -> bool:
        """Commit the next batch of queued operations (caller holds ``commit_lock``); False when none."""
        with self._pending_cond:
            if not self._pending:
                return False
            first = self._pending.popleft()
            batch: list[AppendOp | RunOp] = []
            if not isinstance(first, ControlOp):
                batch.append(first)
                size = first.size
                limit = self._core.config.group_commit_bytes
                while self._pending and (size < limit or (isinstance(batch[-1], RunOp) and batch[-1].more)):
                    nxt = self._pending[0]
                    if isinstance(nxt, ControlOp):
                        break
                    self._pending.popleft()
                    batch.append(nxt)
                    size += nxt.size
        if isinstance(first, ControlOp):
            self._run(first.future, functools.partial(self._commit_control, first))
            return True
        try:
            self._commit_appends(batch)
        except BaseException as exc:  # a bug, not a disk error: do not leave callers waiting forever
            log.exception("segment store %s: group commit failed", self._core.config.data_dir)
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(exc)
            raise
        return True

    def _run(self, future: Future[Any], work: Callable[[], Any]) -> None:
        if self._core.failed is not None:
            future.set_exception(StoreClosed(f"segment store stopped after a disk error: {self._core.failed}"))
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
        log.error("segment store %s: WAL write failed, refusing further changes: %s", self._core.config.data_dir, exc)
        self._core.failed = exc
        self.wake_all()

    # -- appends --------------------------------------------------------------------------
    def _validate(self, batch: list[AppendOp | RunOp]) -> tuple[dict[str, list[_Accepted]], list[_Done]]:
        """Accepted appends per segment (with their offsets, in order) and the refused or duplicate ones.

        A run's duplicates are a prefix of it (its numbers are consecutive): the events whose
        number is not above the writer's last stored one; the rest is accepted or refused whole.
        """
        state = self._core.state  # only the holder of commit_lock mutates it: reads need no lock
        shadow_len: dict[str, int] = {}
        shadow_writers: dict[tuple[str, str], list[int]] = {}
        accepted: dict[str, list[_Accepted]] = {}
        done: list[_Done] = []
        for op in batch:
            seg = state.segments.get(op.segment)
            if isinstance(op, RunOp):
                count = len(op.events)
                if seg is None:
                    missing = SegmentNotFound(f"segment {op.segment!r} does not exist")
                    done.append((op, RunOutcome.refused(op.segment, op.lengths, missing)))
                    continue
                length = shadow_len.get(op.segment, seg.length)
                dups, at = 0, -1
                if op.writer_id is not None and op.first is not None:
                    last = shadow_writers.get((op.segment, op.writer_id)) or seg.writers.get(op.writer_id)
                    if last is not None and op.first <= last[0]:
                        dups, at = min(count, last[0] - op.first + 1), last[1]
                    if op.previous is not None and (last is None or last[0] < op.previous):
                        gap = _gap(op.segment, op.writer_id, op.first, op.previous, last)
                        done.append((op, RunOutcome.refused(op.segment, op.lengths, gap)))
                        continue
                if dups == count:
                    done.append((op, RunOutcome.contiguous(op.segment, length, op.lengths, dups, at)))
                    continue
                if seg.sealed:
                    sealed = SegmentSealed(f"segment {op.segment!r} is sealed")
                    done.append((op, RunOutcome.refused(op.segment, op.lengths, sealed, duplicates=dups, at=at)))
                    continue
                stored = op.size if not dups else sum(op.lengths[dups:])
                if op.writer_id is not None and op.first is not None:
                    last_at = length + stored - op.lengths[-1]
                    shadow_writers[(op.segment, op.writer_id)] = [op.first + count - 1, last_at]
                accepted.setdefault(op.segment, []).append((op, length, dups, at))
                shadow_len[op.segment] = length + stored
                continue
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
                if op.previous is not None and (last is None or last[0] < op.previous):
                    done.append((op, _gap(op.segment, op.writer_id, op.event_number, op.previous, last)))
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
            accepted.setdefault(op.segment, []).append((op, length, 0, -1))
            shadow_len[op.segment] = length + len(op.data)
        return accepted, done

    def _commit_appends(self, batch: list[AppendOp | RunOp]) -> None:
        """One group commit: one APPEND record per segment, one writev, one fdatasync."""
        core = self._core
        accepted, done = self._validate(batch)
        # segment, record start (relative), data position in the record, its bytes, its appends
        records: list[tuple[str, int, int, bytes, list[_Accepted]]] = []
        pieces: list[bytes | memoryview] = []
        rel = start = 0
        for segment, items in accepted.items():
            parts: list[tuple[bytes, int]] = []
            datas: list[bytes] = []
            for op, _, dups, _ in items:
                if isinstance(op, RunOp):
                    events = op.events[dups:] if dups else op.events
                    lengths = op.lengths[dups:] if dups else op.lengths
                    first = None if op.first is None else op.first + dups
                    parts.append((event_headers(op.writer_id, first, lengths), len(events)))
                    datas.extend(events)
                else:
                    parts.append((event_headers(op.writer_id, op.event_number, [len(op.data)]), 1))
                    datas.append(op.data)
            data = datas[0] if len(datas) == 1 else b"".join(datas)
            head, data_at = encode_append_parts(segment, items[0][1], parts, data)
            records.append((segment, rel, data_at, data, items))
            pieces.append(head)
            pieces.append(data)
            rel += data_at + len(data)
        if pieces:
            error: Exception | None = None
            if core.failed is not None:
                error = StoreClosed(f"segment store stopped after a disk error: {core.failed}")
            else:
                try:
                    start = core.wal.write(pieces)
                    core.wal.sync()
                except OSError as exc:
                    self._disk_failed(exc)
                    error = exc
            if error is not None:
                for *_, items in records:
                    for op, _, dups, at in items:
                        if isinstance(op, RunOp):
                            refused = RunOutcome.refused(op.segment, op.lengths, error, duplicates=dups, at=at)
                            done.append((op, refused))
                        else:
                            done.append((op, error))
                records = []
        state = core.state
        with core.cond:
            file_id = core.wal.current
            for segment, rel_pos, data_at, data, items in records:
                writers: dict[str, list[int]] = {}
                for op, offset, dups, at in items:
                    if isinstance(op, RunOp):
                        run = RunOutcome.contiguous(segment, offset, op.lengths, dups, at)
                        if op.writer_id is not None and op.first is not None:
                            writers[op.writer_id] = [op.first + len(op.events) - 1, run.offsets[-1]]
                        done.append((op, run))
                    else:
                        if op.writer_id is not None and op.event_number is not None:
                            writers[op.writer_id] = [op.event_number, offset]
                        done.append((op, AppendResult(segment, offset, len(op.data))))
                ext = state.apply_extent(
                    segment, items[0][1], len(data), writers, file_id=file_id, pos=start + rel_pos + data_at
                )
                core.cache.add(ext, data)
            core.cond.notify_all()
        if state.untiered * 2 >= core.config.lts_chunk_size:
            self._tierer.nudge()
        self._admission.release(sum(op.size for op in batch))
        for op, outcome in done:
            if isinstance(outcome, BaseException):
                op.future.set_exception(outcome)
            else:
                op.future.set_result(outcome)  # type: ignore[arg-type]
        if core.failed is None and core.wal.size >= core.config.wal_file_size:
            try:
                self._roll()
            except OSError as exc:
                self._disk_failed(exc)

    # -- control operations ---------------------------------------------------------------
    def _write_control(self, rtype: RecordType, body: dict[str, Any], *, sync: bool = True) -> None:
        self._core.wal.write([encode_control(rtype, body)])
        if sync:
            self._core.wal.sync()

    def sync_durably(self) -> None:
        """Make every written WAL record durable (takes the commit lock)."""
        with self.commit_lock:
            self._sync_if_dirty()

    def _sync_if_dirty(self) -> None:
        """Make every written WAL record durable (caller holds ``commit_lock``)."""
        core = self._core
        if core.wal.dirty:
            if core.failed is not None:
                raise StoreClosed(f"segment store stopped after a disk error: {core.failed}")
            try:
                core.wal.sync()
            except OSError as exc:
                self._disk_failed(exc)
                raise StoreClosed(f"segment store stopped after a disk error: {exc}") from exc

    def _commit_control(self, op: ControlOp) -> Any:
        core = self._core
        state, body = core.state, op.body
        if op.kind == RecordType.CREATE:
            if body["name"] in state.segments:
                return False
            body = {"name": body["name"], "cid": uuid.uuid4().hex[:12]}
            self._write_control(RecordType.CREATE, body)
            with core.cond:
                state.apply_create(body["name"], body["cid"])
            return True
        if op.kind == RecordType.SEAL:
            seg = state.get(body["name"])
            if not seg.sealed:
                self._write_control(RecordType.SEAL, body)
                with core.cond:
                    state.apply_seal(seg.name)
                    core.cond.notify_all()
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
                with core.cond:
                    dropped = state.apply_truncate(seg.name, offset)
                    self._forget(dropped)
            return None
        if op.kind == RecordType.DELETE:
            seg = state.get(body["name"])
            self._write_control(RecordType.DELETE, body)
            with core.cond:
                state.apply_delete(seg.name)
                self._forget(seg.extents)
                core.cond.notify_all()
            return None
        if op.kind == RecordType.TIERED:
            # No fsync of its own: the next group commit's makes it durable, and until then a
            # crash only means the chunk is tiered again (same key, same bytes). WAL files it
            # releases are deleted only after a sync (see ``recovery.delete_unreferenced``).
            self._write_control(RecordType.TIERED, body, sync=False)
            with core.cond:
                applied, replaced = state.apply_tiered(
                    body["name"],
                    body["cid"],
                    body["offset"],
                    body["length"],
                    body["key"],
                    ChunkSums.from_json(body.get("sums")),
                )
                for ext in replaced:
                    core.cache.drop(ext)
            self._admission.notify()  # the backlog shrank: throttled appends may go
            return applied
        raise ValueError(f"unknown control operation {op.kind!r}")

    def _commit_merge(self, target: str, source: str) -> int:
        core = self._core
        state = core.state
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
        with core.cond:
            state.apply_seal(source)
            offset = state.apply_merge(target, source)
            core.cond.notify_all()
        self._tierer.wake()  # the source's LTS metadata object goes
        return offset

    def _forget(self, extents: list[Extent]) -> None:
        """Drop cached bytes of removed extents; the tierer deletes what the state lists as LTS garbage."""
        for ext in extents:
            self._core.cache.drop(ext)
        self._tierer.wake()

    def _roll(self) -> None:
        self._core.wal.roll(self._core.state.checkpoint())
        self._tierer.wake()  # reclaims WAL files and prepares the next one, off the commit path


def _gap(segment: str, writer_id: str, first: int, previous: int, last: list[int] | None) -> EventNumberGap:
    """Why an append of ``writer_id`` (from event ``first``, sent after event ``previous``) is
    refused: the segment holds an earlier number of its writer than the one it follows."""
    held = "none" if last is None else str(last[0])
    return EventNumberGap(
        f"segment {segment!r}: writer {writer_id!r} sent event {first} after event {previous},"
        f" but the last event of it stored is {held}; nothing was written, re-send the earlier events first"
    )
