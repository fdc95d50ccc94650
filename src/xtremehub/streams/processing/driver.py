"""``StreamProcessor``: a processing job whose workers follow the input stream's segment count.

The driver (a thread in the calling process) keeps one worker per active segment of the input
stream (``workers_per_segment`` sets another ratio), as long-running tasks on a
:class:`~xtremehub.FunctionExecutor` (local processes, Ray, ...). The input stream scales by
itself (``ScalingPolicy.by_event_rate``): when a split adds segments the driver starts
workers at once, and when merges leave fewer it retires workers once the lower count has lasted
``scale_down_delay`` seconds. New readers join the reader group and the group rebalances the
segments; a retired worker leaves at a checkpoint marker.

Exactly-once, end to end: every ``checkpoint_interval`` the driver takes a reader-group
checkpoint. Workers write outputs into transactions and, at the checkpoint's marker, record
the transactions holding everything they read before it (see
:mod:`~xtremehub.streams.processing.worker`). Once the checkpoint is complete, and every reader
that took part has recorded, the driver commits those transactions in input order (commit is
idempotent, so a retry after a crash is harmless) and records the checkpoint as the last
committed one. When a worker fails, the driver moves the group back to the last committed
checkpoint (``reset_to_checkpoint``): live workers abort their uncommitted transactions and
join again, the failed worker's are aborted and a new worker replaces it, and everything after
that checkpoint is read and processed again, its earlier outputs never having been visible.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from xtremehub.compute.executor import FunctionExecutor
from xtremehub.compute.futures import ResponseFuture
from xtremehub.errors import CheckpointNotFound, InvalidStreamArgument, StreamError, TransactionFailed
from xtremehub.streams.client.manager import StreamManager
from xtremehub.streams.client.reader import ReaderGroup
from xtremehub.streams.controller.model import Checkpoint, StreamCut
from xtremehub.streams.kvtable import KeyValueTable
from xtremehub.streams.processing._state import COMMITTED, COMMITTING, commit_order, decode_records, key
from xtremehub.streams.processing.config import ProcessFn, ProcessorConfig, Source, open_manager
from xtremehub.streams.processing.worker import WorkerSpec, WorkerStats, run_worker

__all__ = ["ProcessorStatus", "Sample", "StreamProcessor"]

log = logging.getLogger(__name__)


#: A worker runs until retired. Its call has a time limit only because executors never queue a
#: call with a time limit behind a running one (a worker queued behind another worker would
#: never start); a worker running this long (20 days, below what ``poll()`` can wait) is stopped
#: and replaced like a failed one, losing nothing.
WORKER_TIME_LIMIT = 20 * 86400.0
#: Driver rounds kept in ``StreamProcessor.history`` (about 3 hours at the default poll interval).
HISTORY = 100_000


@dataclass(frozen=True, slots=True)
class Sample:
    """The job at one moment (``StreamProcessor.history``): seconds since start, active input
    segments, workers (not retiring), worker tasks running (with retiring ones), committed checkpoints."""

    time: float
    segments: int
    workers: int
    tasks: int
    checkpoints: int


@dataclass(frozen=True, slots=True)
class ProcessorStatus:
    """A snapshot of the job (``StreamProcessor.status()``)."""

    running: bool
    segments: int
    workers: tuple[str, ...]
    retiring: tuple[str, ...]
    checkpoints: int
    last_checkpoint: str | None
    failures: tuple[str, ...]
    finished: tuple[WorkerStats, ...]


@dataclass(eq=False)
class _Task:
    name: str
    future: ResponseFuture
    started: float
    retiring: bool = False


@dataclass
class _Failure:
    reason: str
    error: BaseException | None = None
    dead: list[str] = field(default_factory=list)


class StreamProcessor:
    """Process ``scope/input_stream`` into ``scope/output_stream`` with ``func``, exactly once.

    Args:
        source: where the store is: a server URL (``"tcp://host:9090"``) or a picklable
            function returning a :class:`StreamManager` connected to one (workers run in other
            processes, so not an embedded store).
        scope, input_stream, output_stream: the streams; both must exist. The input gets the
            job's auto-scaling policy; give the output a fixed policy (open transactions hold
            off its scaling).
        func: ``func(event) -> iterable of payloads or (payload, routing_key)``; a payload
            without a key keeps the input event's key. Picklable (closures travel by value).
        executor: a :class:`~xtremehub.FunctionExecutor` to run workers on, with room for
            ``max_workers`` long-running calls (not closed by the job); else one is made on
            ``backend`` (``"local"``, ``"ray"``, ...) and closed by :meth:`stop`.
        name: the job's name: its reader group and state table (``<name>-state``) in ``scope``;
            a job started again under its name resumes after its last committed checkpoint.
        start: where a new job starts reading (``"head"``, ``"tail"`` or a stream cut).
        config: a :class:`ProcessorConfig`; ``options`` replace some of its fields
            (``events_per_second_per_segment=``, ``scale_down_delay=``, ``workers_per_segment=`` ...).

    Example (``url`` of a running stream server; see ``docs/streams.md``)::

        def shout(event):
            return [event.data.upper()]

        with StreamProcessor(url, "lab", "words", "shouts", shout, backend="local",
                             events_per_second_per_segment=500, scale_down_delay=30) as job:
            ...  # outputs appear in lab/shouts once per checkpoint interval, each exactly once
            print(job.status().workers)
    """

    def __init__(
        self,
        source: Source,
        scope: str,
        input_stream: str,
        output_stream: str,
        func: ProcessFn,
        *,
        executor: FunctionExecutor | None = None,
        backend: str = "local",
        name: str | None = None,
        start: Literal["head", "tail"] | StreamCut = "head",
        config: ProcessorConfig | None = None,
        **options: Any,
    ) -> None:
        if not callable(func):
            raise InvalidStreamArgument(f"processing function {func!r:.80} is not callable")
        self.config = ProcessorConfig.with_options(config, **options)
        self.source, self.scope = source, scope
        self.input_stream, self.output_stream, self.func = input_stream, output_stream, func
        self.name = name or f"{input_stream}-to-{output_stream}"
        self.table_name = f"{self.name}-state"
        self._start = start
        self._executor, self._owns_executor, self._backend = executor, executor is None, backend
        self._session = uuid.uuid4().hex[:8]
        self._counter = 0
        self._cp_seq = 0
        self._tasks: dict[str, _Task] = {}
        self._finished: list[WorkerStats] = []
        self._failures: list[str] = []
        self._streak = 0  # failures since a checkpoint last committed outputs
        self._error: BaseException | None = None
        self._checkpoints = 0
        self._last_checkpoint: str | None = None
        self._segments = 0
        self._low_since: float | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._drain = True
        self._thread: threading.Thread | None = None
        self._manager: StreamManager | None = None
        self._table: KeyValueTable | None = None
        self._group: ReaderGroup | None = None
        self._t0 = 0.0
        #: Samples of segments and workers, one per driver round (for plots; the last ``HISTORY``).
        self.history: collections.deque[Sample] = collections.deque(maxlen=HISTORY)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> StreamProcessor:
        """Prepare the streams, group and state, resume after the last committed checkpoint, and
        run the driver in a background thread."""
        if self._thread is not None:
            raise InvalidStreamArgument(f"processing job {self.name} is already started")
        manager = self._manager = open_manager(self.source)
        try:
            manager.get_stream(self.scope, self.output_stream)  # StreamNotFound
            manager.update_stream(self.scope, self.input_stream, scaling_policy=self.config.scaling_policy())
            self._table = KeyValueTable(manager, self.scope, self.table_name)
            if self.name in manager.list_reader_groups(self.scope):
                self._group = manager.get_reader_group(self.name, self.scope)
            else:
                self._group = manager.create_reader_group(self.name, self.scope, [self.input_stream], self._start)
            self._resume()
            if self._executor is None:
                self._executor = FunctionExecutor(self._backend, max_workers=self.config.max_workers + 2, retries=0)
        except BaseException:
            manager.close()
            raise
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"xhub-processor-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, drain: bool = True, timeout: float = 60.0) -> None:
        """Stop the job. ``drain``: retire every worker at a last checkpoint and commit it (all
        input read so far is processed and visible); else workers abort what is not committed.
        Raises the error that stopped the job, if one did (too many worker failures)."""
        if self._thread is None:
            return
        self._drain = drain
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("processing job %s: the driver did not stop within %.0f s", self.name, timeout)
        self._thread = None
        if self._owns_executor and self._executor is not None:
            self._executor.close(wait=False)
            self._executor = None
        if self._manager is not None:
            self._manager.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> StreamProcessor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation ----------------------------------------------------------------------
    def status(self) -> ProcessorStatus:
        """Segments, workers, committed checkpoints and failures now."""
        with self._lock:
            return ProcessorStatus(
                running=self._thread is not None and self._thread.is_alive(),
                segments=self._segments,
                workers=tuple(n for n, t in self._tasks.items() if not t.retiring),
                retiring=tuple(n for n, t in self._tasks.items() if t.retiring),
                checkpoints=self._checkpoints,
                last_checkpoint=self._last_checkpoint,
                failures=tuple(self._failures),
                finished=tuple(self._finished),
            )

    def worker_processes(self) -> dict[str, tuple[str, int]]:
        """``{worker: (host, pid)}`` of the running workers that have started (to watch or kill them)."""
        assert self._table is not None
        found = {}
        for name in list(self._tasks):
            entry = self._table.get(key("worker", name))
            if entry is not None:
                where = json.loads(entry.value)
                found[name] = (str(where["host"]), int(where["pid"]))
        return found

    # -- the driver -----------------------------------------------------------------------
    @property
    def _mgr(self) -> StreamManager:
        assert self._manager is not None
        return self._manager

    @property
    def _kv(self) -> KeyValueTable:
        assert self._table is not None
        return self._table

    @property
    def _rg(self) -> ReaderGroup:
        assert self._group is not None
        return self._group

    def _resume(self) -> None:
        """Start from the last committed checkpoint (a new job: a first one, taken before any reader)."""
        committed = self._kv.get(COMMITTED)
        if committed is None:
            for reader in self._rg.state().readers:  # left by a job that never committed anything
                self._rg.reader_offline(reader)
            checkpoint = self._mgr.controller.initiate_checkpoint(
                self.scope, self.name, f"{self._session}-start", self.config.checkpoint_timeout
            )
            if not checkpoint.completed:
                raise InvalidStreamArgument(f"processing job {self.name}: readers joined its group while starting")
            self._kv.put(COMMITTED, checkpoint.name.encode())
            self._last_checkpoint = checkpoint.name
            return
        self._last_checkpoint = self._finish_commit() or committed.value.decode()
        self._rg.reset_to_checkpoint(self._last_checkpoint)
        for entry in self._kv.items():
            if entry.key.startswith("open/"):
                self._abort_listed(entry.key.removeprefix("open/"))
        log.info("processing job %s resumes after checkpoint %s", self.name, self._last_checkpoint)

    def _run(self) -> None:
        next_checkpoint = time.monotonic() + self.config.checkpoint_interval
        try:
            while not self._stopping.is_set():
                self._reap()
                self._scale(len(self._mgr.get_stream(self.scope, self.input_stream).active_segments))
                if time.monotonic() >= next_checkpoint:
                    self._checkpoint()
                    next_checkpoint = time.monotonic() + self.config.checkpoint_interval
                self._sample()
                self._stopping.wait(self.config.poll_interval)
            if self._drain:
                self._drain_all()
        except BaseException as exc:
            log.error("processing job %s stopped: %s", self.name, exc)
            self._error = exc
        finally:
            self._halt()

    def _sample(self) -> None:
        with self._lock:
            active = sum(not t.retiring for t in self._tasks.values())
            self.history.append(
                Sample(time.monotonic() - self._t0, self._segments, active, len(self._tasks), self._checkpoints)
            )

    def _launch(self) -> None:
        assert self._executor is not None
        name = f"{self._session}-w{self._counter}"
        self._counter += 1
        spec = WorkerSpec(
            self.source,
            self.scope,
            self.name,
            self.table_name,
            self.output_stream,
            name,
            self._session,
            self.func,
            self.config,
        )
        future = self._executor.call_async(run_worker, (spec,), retries=0, timeout=WORKER_TIME_LIMIT)
        with self._lock:
            self._tasks[name] = _Task(name, future, time.monotonic())
        log.info("processing job %s: started worker %s (%d segments)", self.name, name, self._segments)

    def _scale(self, segments: int) -> None:
        with self._lock:
            self._segments = segments
            active = [t for t in self._tasks.values() if not t.retiring]
        wanted = self.config.workers_for(segments)
        if wanted > len(active):
            self._low_since = None
            for _ in range(wanted - len(active)):
                self._launch()
        elif wanted < len(active):
            now = time.monotonic()
            if self._low_since is None:
                self._low_since = now
            elif now - self._low_since >= self.config.scale_down_delay:
                self._low_since = None
                for task in sorted(active, key=lambda t: t.started)[wanted:]:
                    self._kv.put(key("retire", task.name), b"1")
                    task.retiring = True
                    log.info("processing job %s: retiring worker %s (%d segments)", self.name, task.name, segments)
        else:
            self._low_since = None

    def _ended(self) -> list[_Task]:
        with self._lock:
            return [t for t in self._tasks.values() if t.future.done]

    def _reap(self) -> None:
        """Forget workers that ended; recover when one failed."""
        failure = _Failure("")
        for task in self._ended():
            with self._lock:
                del self._tasks[task.name]
            error = task.future.exception()
            if error is None and task.retiring:
                with self._lock:
                    self._finished.append(task.future.result())
                for kind in ("worker", "open", "retire"):
                    self._kv.remove(key(kind, task.name))
                continue
            failure.dead.append(task.name)
            failure.error = error
            failure.reason += f"worker {task.name} {'failed: ' + repr(error) if error else 'ended unasked'}; "
        if failure.dead:
            self._recover(failure)

    def _checkpoint(self) -> None:
        self._cp_seq += 1
        name = f"{self._session}-cp{self._cp_seq}"
        controller = self._mgr.controller
        checkpoint = controller.initiate_checkpoint(self.scope, self.name, name, self.config.checkpoint_timeout)
        participants = checkpoint.waiting
        deadline = time.monotonic() + self.config.checkpoint_timeout
        pause = 0.005
        while not checkpoint.completed:
            failed = any(t.future.done and t.future.exception() is not None for t in self._ended())
            given_up = failed or time.monotonic() >= deadline
            if given_up and controller.cancel_checkpoint(self.scope, self.name, name):
                self._forget_checkpoint(name, participants)
                if not failed:  # a reader stopped reading: start again from the last commit
                    self._recover(_Failure(f"checkpoint {name} timed out waiting for {checkpoint.waiting}; "))
                return  # a failed worker: _reap recovers
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)
            try:
                checkpoint = controller.get_checkpoint(self.scope, self.name, name)
            except CheckpointNotFound:
                self._forget_checkpoint(name, participants)
                return
        self._commit(checkpoint, participants)

    def _commit(self, checkpoint: Checkpoint, participants: tuple[str, ...]) -> None:
        records = []
        for reader in participants:
            entry = self._kv.get(key("rec", checkpoint.name, reader))
            if entry is None:  # it left without recording (dropped after reader_timeout): unusable
                self._forget_checkpoint(checkpoint.name, participants)
                self._recover(_Failure(f"reader {reader} did not record checkpoint {checkpoint.name}"))
                return
            records += decode_records(entry.value)
        log.debug("job %s: committing %s: %s", self.name, checkpoint.name, commit_order(records))
        txns = [record.txn_id for record in commit_order(records)]
        # recorded first: a driver stopping half-way through the commits finishes them on resume,
        # so a checkpoint's outputs become visible all together or (after a resume) all the same
        self._kv.put(COMMITTING, json.dumps({"checkpoint": checkpoint.name, "txns": txns}).encode())
        self._commit_all(txns)
        self._kv.put(COMMITTED, checkpoint.name.encode())
        self._kv.remove(COMMITTING)
        previous = self._last_checkpoint
        with self._lock:
            self._checkpoints += 1
            self._last_checkpoint = checkpoint.name
            if records:
                self._streak = 0
        for reader in participants:
            self._kv.remove(key("rec", checkpoint.name, reader))
        if previous is not None:
            self._rg.delete_checkpoint(previous)

    def _commit_all(self, txns: list[str]) -> None:
        """Commit ``txns`` in order (each idempotent), retrying a failing call a few times."""
        for txn_id in txns:
            for attempt in range(5):
                try:
                    self._mgr.controller.commit_transaction(txn_id)  # committed stays committed
                    break
                except TransactionFailed:
                    raise
                except StreamError:
                    if attempt == 4:
                        raise
                    time.sleep(0.2 * (attempt + 1))

    def _finish_commit(self) -> str | None:
        """Finish the commits a stopped driver left half-done; the checkpoint they belong to, if any."""
        entry = self._kv.get(COMMITTING)
        if entry is None:
            return None
        pending = json.loads(entry.value)
        self._commit_all(list(pending["txns"]))
        self._kv.put(COMMITTED, str(pending["checkpoint"]).encode())
        self._kv.remove(COMMITTING)
        for entry in self._kv.items():
            if entry.key.startswith(key("rec", str(pending["checkpoint"]), "")):
                self._kv.remove(entry.key)
        log.info("processing job %s finished the commits of checkpoint %s", self.name, pending["checkpoint"])
        return str(pending["checkpoint"])

    def _forget_checkpoint(self, name: str, participants: tuple[str, ...]) -> None:
        """Abort what readers recorded for a checkpoint that will not be committed."""
        for reader in participants:
            entry = self._kv.get(key("rec", name, reader))
            if entry is not None:
                for record in decode_records(entry.value):
                    with contextlib.suppress(TransactionFailed):
                        self._mgr.controller.abort_transaction(record.txn_id)
                self._kv.remove(key("rec", name, reader))
        with contextlib.suppress(StreamError):
            self._rg.delete_checkpoint(name)

    def _abort_listed(self, worker: str) -> None:
        """Abort the transactions a (dead) worker listed as not committed, and forget the worker."""
        entry = self._kv.get(key("open", worker))
        for txn_id in json.loads(entry.value) if entry is not None else []:
            with contextlib.suppress(TransactionFailed):
                self._mgr.controller.abort_transaction(str(txn_id))
        for kind in ("worker", "open", "retire"):
            self._kv.remove(key(kind, worker))

    def _recover(self, failure: _Failure) -> None:
        """Move the group back to the last committed checkpoint; failed workers are replaced."""
        with self._lock:
            self._failures.append(failure.reason.strip("; "))
            self._streak += 1
            too_many = self._streak > self.config.max_failures
        log.warning("job %s: %s; resuming at checkpoint %s", self.name, self._failures[-1], self._last_checkpoint)
        if too_many:
            raise failure.error or StreamError(f"processing job {self.name}: {failure.reason}")
        assert self._last_checkpoint is not None
        self._rg.reset_to_checkpoint(self._last_checkpoint)
        for worker in failure.dead:
            self._abort_listed(worker)

    def _drain_all(self) -> None:
        """Retire every worker at a checkpoint and commit it."""
        deadline = time.monotonic() + 60.0
        for task in list(self._tasks.values()):
            if not task.retiring:
                self._kv.put(key("retire", task.name), b"1")
                task.retiring = True
        time.sleep(self.config.control_interval * 2)  # let them see it before the marker
        while self._tasks and time.monotonic() < deadline:
            self._checkpoint()
            self._reap()
            time.sleep(self.config.poll_interval)

    def _halt(self) -> None:
        """Tell workers still running to stop, and wait a little for them."""
        if not self._tasks:
            return
        with contextlib.suppress(StreamError):
            self._kv.put(key("stop", self._session), b"1")
        deadline = time.monotonic() + 10.0
        while self._tasks and time.monotonic() < deadline:
            for task in self._ended():
                with self._lock:
                    del self._tasks[task.name]
            time.sleep(0.05)
