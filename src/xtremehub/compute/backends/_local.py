"""The embedded default backend: a pool of worker processes on this machine.

Workers start once per executor and are reused across jobs. One dispatcher
thread owns all bookkeeping: it feeds workers adaptive batches of calls
(large batches while much is pending, down to single calls near the end, as
guided self-scheduling does), collects outcomes, and watches each worker's
process sentinel, so a worker that dies (killed, crashed, out of memory) turns
its running call into a :class:`~xtremehub.errors.WorkerDied` error and is
replaced; the calls queued behind it are re-queued without penalty. A call that
runs past its job's time limit has its worker killed and is reported as
:class:`~xtremehub.errors.TaskTimeout`.

Wire protocol (parent → worker, pickled tuples over a pipe):
``("jobs", {job_id: cloudpickled_function})``, ``("calls", [(job_id, call_id)],
pickled_batch)``, ``("items", job_id, first_call_id, pickled_items, count)``,
``("forget", [job_id])``, ``("stop",)``; worker → parent: the outcomes of
consecutive calls as columns (a pickled list with one tuple per field of
:class:`~xtremehub.compute.task.Outcome`). A batch of calls travels as one pickle
of plain tuples ``(job_id, call_id, args, kwargs, attempt)``; the calls of a
``map`` whose items are each the one argument of their call travel as a slice of
the items list (``submit_items``: no per-call object on the parent's side, from
submission to the outcomes, which the executor keeps as the columns that came).
For calls of a few microseconds, pickling one object per call (or a named tuple,
whose pickling runs Python code per object) cost more than the calls themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from xtremehub.compute.backends import _pickling  # noqa: F401 - Pipe ends travel as arguments
from xtremehub.compute.backends._orphans import exit_with_owner
from xtremehub.compute.backends.base import Backend, Job, ReportFn, StartedFn
from xtremehub.compute.backends.outcomes import describe_exit, failed_outcome
from xtremehub.compute.batch import OutcomeBlock
from xtremehub.compute.task import Call, CallFields, Outcome, OutcomeFields, dumps, run_calls
from xtremehub.config import Settings, use_process_settings
from xtremehub.errors import ExecutorClosed, TaskTimeout, WorkerDied

__all__ = ["LocalBackend"]

log = logging.getLogger(__name__)

_PREFETCH_LIMIT = 64 * 1024  # never queue a large message behind a busy worker
_FLUSH_SECONDS = 0.005  # a worker batches outcomes of fast calls for at most this long
_MIN_BATCH_SECONDS = 0.002  # smallest amount of work worth one message to a worker


# ---------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------
def _worker_main(conn: mpc.Connection, settings: Settings, name: str, options: _WorkerOptions) -> None:
    """Entry point of a worker process: run calls until told to stop or the parent goes."""
    exit_with_owner(options.owner, kernel_signal=options.kernel_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    use_process_settings(settings)
    if options.initializer is not None:
        try:
            initializer, initargs = _load(*options.initializer)
            initializer(*initargs)
        except BaseException:  # as the standard library's pool: reported, and the worker goes on
            traceback.print_exc()
    funcs: dict[str, Callable[..., Any] | BaseException] = {}
    calls_left = options.max_calls
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # parent is gone
        kind = message[0]
        if kind in ("calls", "items"):
            ran = _run_batch(conn, funcs, message, name)
            if calls_left is not None:
                calls_left -= ran
                if calls_left <= 0:
                    _flush_and_exit()  # maxtasksperchild: the parent starts a fresh worker
        elif kind == "jobs":
            for job_id, blobs in message[1].items():
                try:
                    funcs[job_id] = _load(*blobs)
                except BaseException as exc:
                    funcs[job_id] = exc
        elif kind == "forget":
            for job_id in message[1]:
                funcs.pop(job_id, None)
        elif kind == "stop":
            _flush_and_exit()


def _flush_and_exit() -> None:
    # An idle worker has nothing to clean up; skipping interpreter teardown halves
    # executor close time. Flush what the user's functions printed first.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


@dataclass(frozen=True)
class _WorkerOptions:
    """What a worker needs besides its pipe: who owns it, and the pool options."""

    owner: int  # the process that started the worker: the worker ends when it is gone
    kernel_signal: bool  # arm PR_SET_PDEATHSIG (only when started from the owner's main thread)
    initializer: tuple[bytes | None, bytes] | None = None
    max_calls: int | None = None


def _dump(obj: Any) -> tuple[bytes | None, bytes]:
    """``obj`` pickled by reference where the standard pickler can (so a function of ``__main__``
    is the worker's own, with its globals, as with the standard library), and by value."""
    try:
        by_reference: bytes | None = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        by_reference = None
    return by_reference, bytes(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _load(by_reference: bytes | None, by_value: bytes) -> Any:
    if by_reference is not None:
        try:
            return pickle.loads(by_reference)
        except Exception:
            log.debug("falling back to the by-value pickle", exc_info=True)
    return cloudpickle.loads(by_value)


def _pack(outcomes: list[OutcomeFields]) -> bytes:
    """Outcomes (each the fields of an :class:`Outcome`) as one pickle of columns: the parent keeps them so."""
    return pickle.dumps(list(zip(*outcomes, strict=True)), protocol=pickle.HIGHEST_PROTOCOL)


def _run_batch(
    conn: mpc.Connection, funcs: dict[str, Callable[..., Any] | BaseException], message: tuple[Any, ...], name: str
) -> int:
    """Run the calls of a ``calls`` or ``items`` message, sending their outcomes; returns how many."""
    calls: Iterable[CallFields]
    if message[0] == "items":
        _, job_id, first, blob, count = message
        try:
            items = pickle.loads(blob)  # the calls' arguments, one each
        except BaseException as exc:
            return _unpickling_failed(conn, [(job_id, first + k) for k in range(count)], exc, name)
        calls = ((job_id, first + k, (item,), {}, 0) for k, item in enumerate(items))
    else:
        _, ids, blob = message
        try:
            calls = pickle.loads(blob)  # the batch: one pickle of plain tuples
        except BaseException as exc:
            return _unpickling_failed(conn, ids, exc, name)
        count = len(ids)
    pending: list[OutcomeFields] = []
    last_flush = time.monotonic()

    def function_of(job_id: str) -> Callable[..., Any] | tuple[BaseException, str]:
        func = funcs.get(job_id)
        if func is None:
            return KeyError(job_id), "unknown job"
        if isinstance(func, BaseException):
            return func, "the function could not be unpickled"
        return func

    def emit(outcomes: list[OutcomeFields]) -> None:
        # outcomes of fast calls go back together, at most _FLUSH_SECONDS after the first
        nonlocal pending, last_flush
        pending += outcomes
        now = time.monotonic()
        if now - last_flush >= _FLUSH_SECONDS:
            conn.send_bytes(_pack(pending))
            pending, last_flush = [], now

    run_calls(calls, function_of, name, emit)
    if pending:
        conn.send_bytes(_pack(pending))
    return int(count)


def _unpickling_failed(conn: mpc.Connection, ids: list[tuple[str, int]], exc: BaseException, name: str) -> int:
    reason = "arguments could not be unpickled"
    conn.send_bytes(_pack([tuple(failed_outcome(job_id, call_id, exc, reason, name)) for job_id, call_id in ids]))
    return len(ids)


def _dump_calls(calls: Sequence[Call]) -> bytes:
    """A batch of calls as one pickle of plain tuples (the standard pickler, else cloudpickle)."""
    return dumps([(c.job_id, c.call_id, c.args, c.kwargs, c.attempt) for c in calls])


_NUMBER_TYPES = frozenset({int, float, bool, type(None)})


def _numbers_only(calls: Sequence[Call]) -> bool:
    """Whether every call has one argument, a number (or ``None``), and no keywords.

    Example:
        >>> _numbers_only([Call("j", 0, (1,), {}), Call("j", 1, (2.5,), {})]), _numbers_only([Call("j", 0, ("a",), {})])
        (True, False)
    """
    return all(len(c.args) == 1 and not c.kwargs for c in calls) and {type(c.args[0]) for c in calls} <= _NUMBER_TYPES


# ---------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------
class _Span:
    """Calls ``start .. stop - 1`` of one job, call ``i`` on the one argument ``items[i]``.

    What ``submit_items`` queues, and what a worker is sent in one ``items`` message; while in
    flight, ``start`` moves past the calls answered. A :class:`Call` is made only when a call
    needs one (reported started, retried, failed, its worker died).

    Example:
        >>> span = _Span("j", ["a", "b", "c"], 0, 3)
        >>> piece = span.take(2)
        >>> (piece.start, piece.stop, len(span)), span.call(2)
        ((0, 2, 1), Call(job_id='j', call_id=2, args=('c',), kwargs={}, attempt=0))
    """

    __slots__ = ("items", "job_id", "start", "stop")

    def __init__(self, job_id: str, items: list[Any], start: int, stop: int) -> None:
        self.job_id, self.items, self.start, self.stop = job_id, items, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def call_id(self) -> int:
        """The first call not sent (queued) or not answered (in flight)."""
        return self.start

    def call(self, i: int) -> Call:
        return Call(self.job_id, i, (self.items[i],), {})

    def calls(self) -> list[Call]:
        return [self.call(i) for i in range(self.start, self.stop)]

    def take(self, n: int) -> _Span:
        """The first ``n`` calls, as a span of their own, taken off this one."""
        piece = _Span(self.job_id, self.items, self.start, min(self.start + n, self.stop))
        self.start = piece.stop
        return piece


def _head_call(entry: Call | _Span) -> Call:
    return entry if isinstance(entry, Call) else entry.call(entry.start)


def _expand(entries: Iterable[Call | _Span]) -> list[Call]:
    """Queued or in-flight entries as one :class:`Call` each (for the rare paths: deaths, shutdown)."""
    return [c for e in entries for c in ([e] if isinstance(e, Call) else e.calls())]


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing.process.BaseProcess
    conn: mpc.Connection
    name: str
    inflight: deque[Call | _Span] = field(default_factory=deque)
    jobs: set[str] = field(default_factory=set)
    head_since: float = 0.0
    last_batch: int = 1
    kill_reason: BaseException | None = None
    calls_left: int | None = None  # maxtasksperchild: calls it may still be sent


class LocalBackend(Backend):
    """Worker processes on this machine (the default backend).

    Args:
        workers: number of worker processes (default: CPU cores).
        start_method: ``fork`` (default on Linux, fastest), ``forkserver`` or ``spawn``.
        max_batch: largest number of calls sent to a worker in one message.
    """

    name = "local"
    enforces_timeouts = True
    supports_shared_state = True  # workers are our children: they reach a manager with our authkey

    def __init__(
        self,
        workers: int | None = None,
        start_method: str | None = None,
        max_batch: int = 256,
        *,
        initializer: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
        max_calls_per_worker: int | None = None,
    ) -> None:
        if max_calls_per_worker is not None and max_calls_per_worker < 1:
            raise ValueError(f"max_calls_per_worker must be >= 1, not {max_calls_per_worker}")
        self._n = workers or os.cpu_count() or 1
        self._initializer = None if initializer is None else _dump(initializer)
        self._max_calls = max_calls_per_worker
        self._start_method = start_method
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: deque[Call | _Span] = deque()  # pickled a batch at a time, as they are sent
        self._npending = 0  # calls in _pending (a span holds many)
        self._unsendable: list[tuple[Call, BaseException]] = []  # reported by the dispatcher thread
        self._jobs: dict[str, Job] = {}
        self._call_seconds: dict[str, float] = {}
        self._workers: list[_Worker] = []
        self._closing = False
        self._stopped = False
        self._drain = True
        self._thread: threading.Thread | None = None
        self._names = itertools.count()
        self._report: ReportFn | None = None
        self._started: StartedFn | None = None
        self._settings: Settings | None = None
        self._wake_r, self._wake_w = -1, -1
        #: set by the executor before ``start``: takes the outcomes of ``submit_items`` calls as columns
        self.report_block: Callable[[str, OutcomeBlock, Callable[[int], Call]], None] | None = None

    @property
    def workers(self) -> int:
        return self._n

    def start(self, settings: Settings, report: ReportFn, started: StartedFn) -> None:
        self._settings = settings
        self._report, self._started = report, started
        method = self._start_method or settings.executor.start_method
        self._ctx = mp.get_context(method)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        for _ in range(self._n):
            self._workers.append(self._spawn())
        self._thread = threading.Thread(target=self._loop, name="xhub-local-dispatcher", daemon=True)
        self._thread.start()
        # An executor the user never closed (or an exception unwinding past it) must not
        # leave the interpreter waiting at exit for workers that wait for work.
        atexit.register(self._at_exit)
        log.debug("local backend started %d %s workers", self._n, method)

    def _spawn(self) -> _Worker:
        assert self._settings is not None
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        index = next(self._names)
        options = _WorkerOptions(
            os.getpid(),
            threading.current_thread() is threading.main_thread() and self._ctx.get_start_method() != "forkserver",
            self._initializer,
            self._max_calls,
        )
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(child_conn, self._settings, f"local-{index}", options),
            name=f"xhub-worker-{index}",
        )
        process.start()
        # An implementation detail, not one of the user's processes (multiprocessing.active_children()).
        mp.process._children.discard(process)  # type: ignore[attr-defined]
        child_conn.close()
        return _Worker(process, parent_conn, f"local-{index}-pid{process.pid}", calls_left=self._max_calls)

    def submit(self, job: Job, calls: Sequence[Call]) -> None:
        # Pickled here once, in the caller's thread: an argument that cannot be pickled raises its
        # own error to the caller, and nothing of the submission is queued. (Batches are pickled
        # again as they are sent: one pickle of the whole submission costs less than one per call.)
        # Numbers always pickle: a submission of one number per call skips this first pickle.
        if not _numbers_only(calls):
            _dump_calls(calls)
        with self._lock:
            if self._closing:
                raise ExecutorClosed("the local backend is shut down")
            self._jobs[job.job_id] = job
            self._pending.extend(calls)
            self._npending += len(calls)
        # Hand idle workers their first batch from this thread: waiting for the dispatcher
        # thread would cost up to a GIL switch interval (5 ms) while the caller keeps running.
        self._dispatch()
        self._wake()

    def submit_items(self, job: Job, items: list[Any]) -> None:
        """Queue calls ``0 .. len(items) - 1`` of ``job``, call ``i`` on the one argument ``items[i]``.

        The same as :meth:`submit` of ``Call(job.job_id, i, (item,), {})`` for each item, without
        an object per call; their outcomes go to :attr:`report_block` (set by the executor), as
        the columns the workers send.
        """
        if self.report_block is None:
            self.submit(job, [Call(job.job_id, i, (item,), {}) for i, item in enumerate(items)])
            return
        if not _NUMBER_TYPES.issuperset(map(type, items)):
            dumps(items)  # an argument that cannot be pickled raises here (see submit)
        with self._lock:
            if self._closing:
                raise ExecutorClosed("the local backend is shut down")
            self._jobs[job.job_id] = job
            self._pending.append(_Span(job.job_id, items, 0, len(items)))
            self._npending += len(items)
        # No wake-up of the dispatcher thread (which submit does): a span has no time limit and
        # is never unsendable, so what is not sent here is sent when a worker answers.
        self._dispatch()

    def processes(self) -> list[Any]:
        """The worker processes (``multiprocessing`` process objects) right now."""
        with self._lock:
            return [w.process for w in self._workers]

    def forget(self, job_id: str) -> None:
        """Drop a finished job's function from the workers' caches."""
        with self._lock:
            self._jobs.pop(job_id, None)
            self._call_seconds.pop(job_id, None)
            for w in self._workers:
                w.jobs.discard(job_id)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _at_exit(self) -> None:
        self.shutdown(wait=False)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._drain = wait
        self._wake()
        if self._thread is not None:
            self._thread.join()
            atexit.unregister(self._at_exit)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the dispatcher thread ------------------------------------------------------------
    def _loop(self) -> None:
        # One poll object, registered again only when the workers change (a selector per wait,
        # as multiprocessing.connection.wait makes, cost more than receiving a message).
        poller, polled = select.poll(), list[_Worker]()
        handles: dict[int, tuple[str, _Worker | None]] = {}
        try:
            while True:
                with self._lock:
                    busy = bool(self._pending) or any(w.inflight for w in self._workers)
                    if self._closing and (not busy or not self._drain):
                        break
                self._dispatch()
                if self._unsendable:
                    with self._lock:
                        unsendable, self._unsendable = self._unsendable, []
                    assert self._report is not None
                    self._report(list(unsendable))
                if polled != self._workers:
                    poller, polled = select.poll(), list(self._workers)
                    handles = {self._wake_r: ("wake", None)}
                    for w in polled:  # (fds of workers gone may be reused: a fresh poll object each time)
                        handles[w.conn.fileno()] = ("conn", w)
                        handles[w.process.sentinel] = ("dead", w)
                    for fd in handles:
                        poller.register(fd, select.POLLIN)
                timeout = self._next_deadline()
                try:
                    ready = poller.poll(None if timeout is None else timeout * 1000)
                except InterruptedError:  # pragma: no cover - retried by Python itself since 3.5
                    ready = []
                for fd, _ in ready:
                    kind, worker = handles[fd]
                    if kind == "wake":
                        with contextlib.suppress(BlockingIOError, OSError):
                            while os.read(self._wake_r, 4096):
                                pass
                    elif worker is not None and worker in self._workers:
                        if kind == "conn":
                            self._receive(worker)
                        else:
                            self._on_death(worker)
                self._check_timeouts()
        except BaseException:  # pragma: no cover - a bug here must not hang users
            log.exception("local backend dispatcher crashed")
            raise
        finally:
            self._stop_workers()

    def _receive(self, w: _Worker) -> None:
        try:
            cols = pickle.loads(w.conn.recv_bytes())
        except (EOFError, OSError):
            self._on_death(w)
            return
        assert self._report is not None
        self._take(w, cols)
        w.head_since = time.monotonic()
        if w.inflight and self._started is not None:
            self._started(_head_call(w.inflight[0]))

    def _take(self, w: _Worker, cols: list[tuple[Any, ...]]) -> None:
        """Match a message of outcomes (columns) to ``w``'s calls in flight and report them."""
        if not cols:
            return
        call_ids = cols[1]
        n = len(call_ids)
        self._learn_duration(cols)
        head = w.inflight[0] if w.inflight else None
        if (
            type(head) is _Span
            and self.report_block is not None
            and call_ids[0] == head.start
            and len(head) >= n
            and call_ids[-1] == head.start + n - 1
            and cols[0].count(head.job_id) == n
        ):
            # the fast path: answers to the calls of an ``items`` message, in order (as workers run them)
            head.start += n
            if not len(head):
                w.inflight.popleft()
            self.report_block(head.job_id, OutcomeBlock(call_ids[0], cols), head.call)
            return
        assert self._report is not None
        reports: list[tuple[Call, Outcome | BaseException]] = []
        for fields in zip(*cols, strict=True):
            outcome = tuple.__new__(Outcome, fields)
            call = self._match(w, outcome)
            if call is None:
                log.error("unexpected outcome %s/%s from %s", outcome.job_id, outcome.call_id, w.name)
                continue
            reports.append((call, outcome))
        self._report(reports)

    @staticmethod
    def _match(w: _Worker, outcome: Outcome) -> Call | None:
        """Take the call in flight on ``w`` that ``outcome`` answers off its queue."""
        inflight = w.inflight
        job_id, call_id = outcome.job_id, outcome.call_id
        head = inflight[0] if inflight else None
        if head is not None and head.call_id == call_id and head.job_id == job_id:
            if isinstance(head, Call):  # the normal case: answers come in order
                inflight.popleft()
                return head
            call = head.call(call_id)
            head.start += 1
            if not len(head):
                inflight.popleft()
            return call
        # Defensive: never drop an answer (its future would wait forever).
        calls = _expand(inflight)
        match = next((c for c in calls if (c.job_id, c.call_id) == (job_id, call_id)), None)
        if match is not None:
            calls.remove(match)
            inflight.clear()
            inflight.extend(calls)
        return match

    def _learn_duration(self, cols: list[tuple[Any, ...]]) -> None:
        """Running mean of call durations per job, for batch sizing."""
        starts, ends = cols[7][:16], cols[8][:16]  # enough for a mean; this thread's time is the job's time
        mean = (sum(ends) - sum(starts)) / len(starts)
        job_id = cols[0][0]
        old = self._call_seconds.get(job_id)
        self._call_seconds[job_id] = mean if old is None else (old + mean) / 2

    def _on_death(self, w: _Worker) -> None:
        # Outcomes the worker sent before dying are still valid: take them first.
        assert self._report is not None
        reports: list[tuple[Call, Outcome | BaseException]] = []
        with contextlib.suppress(EOFError, OSError):
            while w.conn.poll():
                self._take(w, pickle.loads(w.conn.recv_bytes()))
        w.process.join(timeout=5)
        code = w.process.exitcode
        with self._lock:  # submitters dispatch too: take the worker out before looking at its calls
            self._workers.remove(w)
            w.conn.close()
            inflight = _expand(w.inflight)
            w.inflight.clear()
            # innocent bystanders go back first (they were pickled once already: they still can be)
            self._pending.extendleft(reversed(inflight[1:]))
            self._npending += len(inflight[1:])
        if inflight:
            culprit = inflight[0]
            error = w.kill_reason or WorkerDied(
                f"worker {w.name} died ({describe_exit(code)}) while running call "
                f"{culprit.job_id}/{culprit.call_id:05d}"
            )
            reports.append((culprit, error))
        if inflight or w.calls_left is None or w.calls_left > 0:
            log.warning("worker %s exited (%s)", w.name, describe_exit(code))
        if not self._closing or self._drain:
            replacement = self._spawn()
            with self._lock:
                self._workers.append(replacement)
        self._report(reports)

    def _next_deadline(self) -> float | None:
        deadlines = []
        now = time.monotonic()
        for w in self._workers:
            if w.inflight and w.kill_reason is None:
                job = self._jobs.get(w.inflight[0].job_id)
                if job is not None and job.timeout is not None:
                    deadlines.append(w.head_since + job.timeout - now)
        return max(0.0, min(deadlines)) + 0.01 if deadlines else None

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for w in self._workers:
            if not w.inflight or w.kill_reason is not None:
                continue
            call = w.inflight[0]
            job = self._jobs.get(call.job_id)
            if job is not None and job.timeout is not None and now - w.head_since > job.timeout:
                w.kill_reason = TaskTimeout(
                    f"call {call.job_id}/{call.call_id:05d} ran longer than its {job.timeout:g}s limit "
                    f"on {w.name}; the worker was stopped"
                )
                with contextlib.suppress(ProcessLookupError):
                    w.process.kill()

    def _dispatch(self) -> None:
        with self._lock:
            if self._stopped:
                return
            # Two passes: every idle worker gets a batch before any worker is sent a second one
            # (else two calls on two idle workers both went to the first and ran in series).
            for idle_only in (True, False):
                for w in self._workers:
                    while self._pending and w.kill_reason is None and self._accepts(w):
                        if idle_only and w.inflight:
                            break
                        head = self._pending[0]
                        head_job = self._jobs.get(head.job_id)
                        timed = head_job is not None and head_job.timeout is not None
                        size = 1 if timed else self._batch_size(head_job)
                        if w.calls_left is not None:
                            size = min(size, w.calls_left)
                        if type(head) is _Span:
                            piece = head.take(size)
                            if not len(head):
                                self._pending.popleft()
                            self._npending -= len(piece)
                            if not self._send_items(w, piece):
                                self._pending.appendleft(piece)
                                self._npending += len(piece)
                                break
                            continue
                        batch = self._take_calls(size)
                        if not self._send(w, batch):
                            self._pending.extendleft(reversed(batch))
                            self._npending += len(batch)
                            break

    def _take_calls(self, size: int) -> list[Call]:
        """Up to ``size`` queued calls, up to the next span (the caller holds the lock)."""
        pending = self._pending
        batch: list[Call] = []
        while pending and len(batch) < size and type(pending[0]) is Call:
            batch.append(pending.popleft())  # type: ignore[arg-type]
        self._npending -= len(batch)
        return batch

    def _accepts(self, w: _Worker) -> bool:
        """Keep about two batches queued at each worker so it never waits for the dispatcher."""
        if w.calls_left is not None and w.calls_left <= 0:
            return False  # maxtasksperchild reached: it exits after its last call
        if not w.inflight:
            return True
        head_job = self._jobs.get(self._pending[0].job_id)
        if head_job is not None and head_job.timeout is not None:
            return False  # a timed call is never queued behind another one
        return len(w.inflight) < 2 * w.last_batch  # a span in flight counts as one batch (last_batch 1)

    def _batch_size(self, job: Job | None) -> int:
        chunksize = job.extra.get("chunksize") if job is not None else None
        if chunksize:
            return int(chunksize)
        guided = math.ceil(self._npending / (len(self._workers) * 4))
        # Very short calls: a batch should hold ~_MIN_BATCH_SECONDS of work, or the
        # round trips to the dispatcher cost more than the calls themselves.
        mean = self._call_seconds.get(job.job_id) if job is not None else None
        floor = 1 if mean is None else int(_MIN_BATCH_SECONDS / max(mean, 1e-6))
        return max(1, min(self._max_batch, max(guided, floor)))

    def _send(self, w: _Worker, batch: list[Call]) -> bool:
        new_jobs = {c.job_id for c in batch} - w.jobs
        try:
            blob = _dump_calls(batch)
        except Exception as exc:  # pickled when submitted, but not now (an argument changed meanwhile)
            self._unsendable.extend((c, exc) for c in batch)
            return True  # handled: the dispatcher thread reports them
        if w.inflight and len(blob) > _PREFETCH_LIMIT:
            return False  # wait until the worker is idle rather than block on a full pipe
        # Record the calls as in flight *before* sending: the worker may answer before
        # this thread runs again, and the dispatcher thread matches answers to inflight.
        was_idle = not w.inflight
        w.inflight.extend(batch)
        w.last_batch = len(batch)
        if was_idle:
            w.head_since = time.monotonic()
        try:
            if new_jobs:
                jobs = {job_id: self._function_blobs(self._jobs[job_id]) for job_id in new_jobs}
                w.conn.send_bytes(pickle.dumps(("jobs", jobs), protocol=pickle.HIGHEST_PROTOCOL))
                w.jobs |= new_jobs
            ids = [(c.job_id, c.call_id) for c in batch]
            w.conn.send_bytes(pickle.dumps(("calls", ids, blob), protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, EOFError):
            for _ in batch:  # never delivered: the dying worker only answers for earlier calls
                w.inflight.pop()
            return False  # its sentinel will tell the dispatcher
        if w.calls_left is not None:
            w.calls_left -= len(batch)
        if was_idle and self._started is not None:
            self._started(batch[0])
        return True

    def _send_items(self, w: _Worker, piece: _Span) -> bool:
        """:meth:`_send` for the calls of a span: one ``items`` message with their arguments."""
        blob = dumps(piece.items[piece.start : piece.stop])  # pickled when submitted: they still can be
        if w.inflight and len(blob) > _PREFETCH_LIMIT:
            return False
        # Read before sending: once sent, the dispatcher thread moves ``piece.start`` as answers come.
        job_id, first, count = piece.job_id, piece.start, len(piece)
        was_idle = not w.inflight
        w.inflight.append(piece)
        w.last_batch = 1
        if was_idle:
            w.head_since = time.monotonic()
        try:
            if job_id not in w.jobs:
                jobs = {job_id: self._function_blobs(self._jobs[job_id])}
                w.conn.send_bytes(pickle.dumps(("jobs", jobs), protocol=pickle.HIGHEST_PROTOCOL))
                w.jobs.add(job_id)
            message = ("items", job_id, first, blob, count)
            w.conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, EOFError):
            w.inflight.pop()
            return False
        if w.calls_left is not None:
            w.calls_left -= count
        if was_idle and self._started is not None:
            self._started(piece.call(first))
        return True

    @staticmethod
    def _function_blobs(job: Job) -> tuple[bytes | None, bytes]:
        blobs = job.extra.get("_local_blobs")
        if blobs is None:
            by_reference = _dump(job.func)[0]
            if by_reference is not None and b"__main__" in by_reference:
                # Workers outlive jobs: a reference to ``__main__`` would find the worker's
                # copy from when it started, so a redefined function (a notebook cell run
                # again) would run its old body. Such functions go by value, as before.
                by_reference = None
            blobs = job.extra["_local_blobs"] = (by_reference, job.func_bytes)
        return blobs

    def _stop_workers(self) -> None:
        with self._lock:
            self._stopped = True  # from now on nobody dispatches
        for w in self._workers:
            if w.inflight and not self._drain:
                with contextlib.suppress(ProcessLookupError):
                    w.process.kill()  # terminate: busy workers stop now, as the standard library's pool's do
                continue
            with contextlib.suppress(OSError, EOFError):
                w.conn.send_bytes(pickle.dumps(("stop",)))
        deadline = time.monotonic() + 5
        for w in self._workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()
        with self._lock:
            leftovers = _expand(self._pending) + [c for w in self._workers for c in _expand(w.inflight)]
            unsendable, self._unsendable = self._unsendable, []
            self._pending.clear()
            self._npending = 0
            self._workers.clear()
        reports: list[tuple[Call, Outcome | BaseException]] = list(unsendable)
        reports += [
            (c, ExecutorClosed(f"call {c.job_id}/{c.call_id:05d} was not run: executor closed")) for c in leftovers
        ]
        if self._report is not None and reports:
            self._report(reports)
