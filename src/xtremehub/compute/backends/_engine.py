"""What the Ray, Dask and Lithops backends share: the worker entry point and the parent-side bookkeeping.

Worker side: :func:`run_remote` is the one function an engine runs. It receives
the job's cloudpickled function (unpickled once per job and process), a batch of
:class:`~xtremehub.compute.task.Call` objects and the executor's settings with
every secret stripped (:func:`ship_settings`); credentials are filled in from the
worker's own ``XHUB_*``/``AWS_*`` environment and config file
(:func:`worker_settings`), so ``s3://`` URLs resolve on the worker exactly as on
the client and no secret is ever pickled. Each call runs through
:func:`~xtremehub.compute.task.run_calls`, so every backend reports the same
:class:`~xtremehub.compute.task.Outcome` (result or exception, remote traceback,
timings and resource use).

Parent side: :class:`EngineBackend` cuts submitted calls into engine tasks
(``chunksize`` calls per task when given; otherwise, on engines whose tasks cost
milliseconds (Ray, Dask), sized from the call durations observed so far, see
:meth:`EngineBackend.submit`), keeps the in-flight table, watches
per-call time limits, and runs one collector thread that asks the engine which
tasks finished and reports every call exactly once. A concrete backend only
says how to connect, launch a batch, poll for finished tasks, cancel one, and
translate the engine's own errors.

Example:
    >>> from xtremehub.config import S3Settings, Settings
    >>> s = Settings(s3=S3Settings(endpoint_url="http://s3:8333", access_key_id="k", secret_access_key="x"))
    >>> shipped = ship_settings(s)
    >>> shipped.s3.endpoint_url, shipped.s3.access_key_id, shipped.s3.secret_access_key
    ('http://s3:8333', None, None)
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import logging
import math
import os
import pickle
import threading
import time
from abc import abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import cloudpickle

from xtremehub.compute.backends.base import Backend, Job, ReportFn, StartedFn
from xtremehub.compute.backends.outcomes import failed_outcome, pack_outcomes, unpack_outcomes
from xtremehub.compute.task import Call, Outcome, dumps, run_calls
from xtremehub.config import Settings, use_process_settings
from xtremehub.errors import ComputeError, ExecutorClosed, TaskTimeout, WorkerDied
from xtremehub.storage.access import complete

__all__ = ["EngineBackend", "run_remote", "run_remote_packed", "ship_settings", "worker_settings"]

log = logging.getLogger(__name__)

#: What :meth:`EngineBackend._poll` returns: finished handles with their outcomes (packed or not) or an error.
Polled = list[tuple[Hashable, "list[Outcome] | bytes | BaseException"]]

_FUNCTION_CACHE = 16  # jobs whose unpickled function a worker process keeps
#: Automatic chunks: the work one engine task should hold once call durations are known
#: (an engine task costs about a millisecond on Ray and Dask, so this keeps their share small).
_TASK_SECONDS = 0.03
_MAX_CHUNK = 1024  # calls per engine task at most (automatic chunks)
_TASKS_PER_WORKER = 2  # automatic chunks: engine tasks in flight per worker (one runs, one waits)


# ---------------------------------------------------------------------------------------
# settings: shipped without secrets, completed on the worker
# ---------------------------------------------------------------------------------------
def ship_settings(settings: Settings) -> Settings:
    """``settings`` without any S3 credential: what travels to remote workers."""
    return settings.without_secrets()


@functools.lru_cache(maxsize=8)
def worker_settings(shipped: Settings) -> Settings:
    """The shipped settings completed with this process's own credentials (env and config file).

    The global ``[s3]`` table and each per-bucket table are completed by
    :func:`xtremehub.storage.access.complete`: a credential is only taken for the same endpoint.

    Example:
        >>> from xtremehub.config import Settings
        >>> worker_settings(Settings()).s3.endpoint_url is None
        True
    """
    local = Settings.load()
    completed = complete(shipped, None, local)
    for bucket in shipped.buckets:
        completed = complete(completed, bucket, local)
    return completed


# ---------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------
_functions: OrderedDict[str, Callable[..., Any]] = OrderedDict()
_functions_lock = threading.Lock()  # Dask runs several tasks per process in threads


def _function(job_id: str, func_bytes: bytes) -> Callable[..., Any]:
    with _functions_lock:
        func = _functions.get(job_id)
        if func is None:
            func = cloudpickle.loads(func_bytes)
            _functions[job_id] = func
            while len(_functions) > _FUNCTION_CACHE:
                _functions.popitem(last=False)
        return func


def run_remote(
    engine: str, settings: Settings, job_id: str, func_bytes: bytes, calls: list[Call] | bytes
) -> list[Outcome]:
    """Run a batch of calls on an engine's worker; failures become error outcomes (only a pickled batch
    that cannot be loaded raises, as the engine would for its own arguments).

    ``calls`` may come pickled (:func:`~xtremehub.compute.task.dumps` of the list, or the
    back-to-back call pickles of :func:`pickle_calls`): an engine whose scheduler keeps what it
    forwards (Dask) then never holds the caller's arguments as objects.

    Example:
        >>> import cloudpickle
        >>> from xtremehub.config import Settings
        >>> [o.ok for o in run_remote("doc", Settings(), "j", cloudpickle.dumps(abs), [Call("j", 0, (-2,), {})])]
        [True]
        >>> pickled_batch = dumps([Call("j", 1, (-3,), {})])
        >>> [pickle.loads(o.payload) for o in run_remote("doc", Settings(), "j", cloudpickle.dumps(abs), pickled_batch)]
        [3]
    """
    worker = f"{engine}-pid{os.getpid()}"
    if isinstance(calls, bytes):
        try:
            calls = _load_calls(calls)
        except Exception as exc:  # no call to report it on: the engine reports the task's error
            raise ComputeError(f"the worker could not unpickle a batch of job {job_id}: {exc}") from exc
    try:
        use_process_settings(worker_settings(settings))
        func = _function(job_id, func_bytes)
    except BaseException as exc:
        reason = "the worker could not load the function or its settings"
        return [failed_outcome(c.job_id, c.call_id, exc, reason, worker) for c in calls]
    got: list[tuple[Any, ...]] = []
    fields = ((c.job_id, c.call_id, c.args, c.kwargs, c.attempt) for c in calls)
    run_calls(fields, lambda _: func, worker, got.extend)
    return [Outcome._make(o) for o in got]


def pickle_calls(calls: Sequence[Call]) -> list[bytes]:
    """Each call pickled on its own (a plain tuple; cloudpickle where the standard pickler
    refuses), so that any run of them joined is a batch :func:`run_remote` reads: calls are
    pickled once, when submitted, whatever batches they later travel in.

    Example:
        >>> pieces = pickle_calls([Call("j", 0, (1,), {}), Call("j", 1, (2,), {})])
        >>> [c.args for c in _load_calls(b"".join(pieces))]
        [(1,), (2,)]
    """
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pieces = []
    for c in calls:
        fields = (c.job_id, c.call_id, c.args, c.kwargs, c.attempt)
        try:
            pickler.dump(fields)
            pieces.append(buf.getvalue())
        except (pickle.PicklingError, TypeError, AttributeError):
            pieces.append(dumps(fields))  # cloudpickle (lambdas, closures); raises if that fails too
        pickler.clear_memo()  # each piece stands alone
        buf.seek(0)
        buf.truncate()
    return pieces


def _load_calls(blob: bytes) -> list[Call]:
    """A pickled batch: one pickled list of calls, or back-to-back pickles of call tuples."""
    buf = io.BytesIO(blob)
    unpickler = pickle.Unpickler(buf)
    first = unpickler.load()
    if isinstance(first, list):
        return first
    calls = [Call(*first)]
    while buf.tell() < len(blob):
        calls.append(Call(*unpickler.load()))
    return calls


def run_remote_packed(
    engine: str, settings: Settings, job_id: str, func_bytes: bytes, calls: list[Call] | bytes
) -> bytes:
    """:func:`run_remote` with the outcomes packed (:func:`~xtremehub.compute.backends.outcomes.pack_outcomes`):
    the engine then moves bytes, not objects it would pickle one named tuple at a time.

    Example:
        >>> import cloudpickle
        >>> from xtremehub.config import Settings
        >>> packed = run_remote_packed("doc", Settings(), "j", cloudpickle.dumps(abs), [Call("j", 0, (-2,), {})])
        >>> [pickle.loads(o.payload) for o in unpack_outcomes(packed)]
        [2]
    """
    return pack_outcomes(run_remote(engine, settings, job_id, func_bytes, calls))


# ---------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------
def _function_key(job: Job) -> str:
    """What jobs of the same function share, for the call durations a next job starts from."""
    return f"function:{hash(job.func_bytes)}"


def _original_error(calls: Sequence[Call]) -> BaseException | None:
    """Why the engine could not take ``calls``, if an argument cannot be pickled: that argument's
    own error (the standard library raises it too), not the engine's wrapper around it."""
    for call in calls:
        try:
            dumps(call)
        except Exception as exc:
            return exc
    return None


@dataclass(eq=False, slots=True)
class _Flight:
    job: Job
    calls: list[Call]
    deadline: float | None


class EngineBackend(Backend):
    """Parent-side machinery shared by the distributed-engine backends.

    Subclasses implement :meth:`_connect`, :meth:`_launch`, :meth:`_poll`,
    :meth:`_cancel` and :meth:`_disconnect`, and declare which of their engine's errors
    mean a dead worker or a cancelled task (or override :meth:`_engine_error`).
    """

    #: The engine's name in messages ("Ray", "Dask", ...).
    label: str = ""
    #: Engine errors that mean the worker running the task died.
    died_errors: tuple[type[BaseException], ...] = ()
    #: Engine errors that mean the task was cancelled.
    cancelled_errors: tuple[type[BaseException], ...] = ()

    #: Longest a collector poll blocks, in seconds (bounds how late a deadline is noticed).
    poll_seconds: float = 0.05
    #: Extra seconds past a call's limit before the parent gives up on the engine's own enforcement.
    timeout_grace: float = 0.0
    #: Size engine tasks from observed call durations when the job gives no ``chunksize``
    #: (else one call per task, or :meth:`_batch_size`).
    adaptive_chunks: bool = False

    def __init__(self, workers: int | None = None) -> None:
        self._n = workers or 0
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, _Flight] = {}
        self._closing = False
        self._drain = True
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._report: ReportFn | None = None
        self._shipped: Settings | None = None
        # automatic chunks: calls not handed to the engine yet, each with its pickle
        self._held: deque[tuple[Job, Call, bytes]] = deque()
        self._unlaunched: list[tuple[Call, BaseException]] = []  # held calls the engine refused
        self._seconds: dict[str, float] = {}  # mean call duration by job id, then by function

    @property
    def workers(self) -> int:
        return self._n or 1

    def _batch_size(self, calls: int) -> int:
        """Calls per engine task when the user gave no ``chunksize`` (engines with costly tasks batch)."""
        return 1

    # -- what a concrete engine provides ---------------------------------------------------
    @abstractmethod
    def _connect(self, settings: Settings) -> int:
        """Start or attach to the engine; returns how many calls it runs at once."""

    @abstractmethod
    def _launch(
        self, job: Job, batches: list[list[Call]], settings: Settings, packed: list[bytes] | None = None
    ) -> list[Hashable]:
        """Hand batches to the engine (each runs :func:`run_remote`); one handle per batch.

        ``packed``: the batches already pickled (:func:`pickle_calls` pieces joined), when they are.
        """

    @abstractmethod
    def _poll(
        self, handles: list[Hashable], timeout: float
    ) -> list[tuple[Hashable, list[Outcome] | bytes | BaseException]]:
        """Finished handles with their outcomes (packed or not) or the engine's error; waits at most ``timeout``."""

    @abstractmethod
    def _cancel(self, handles: list[Hashable], force: bool) -> None:
        """Stop tasks if the engine can (``force``: even running ones)."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Release what :meth:`_connect` acquired (never a cluster the user brought)."""

    def _engine_error(self, exc: BaseException, key: str, job: Job) -> BaseException | None:
        """XtremeHub's error for an engine error it recognises, else None (a generic ComputeError)."""
        if isinstance(exc, self.died_errors):
            return WorkerDied(f"the {self.label} worker running call {key} died ({exc})")
        if isinstance(exc, self.cancelled_errors):
            return ExecutorClosed(f"call {key} was cancelled on {self.label}")
        return None

    def _translate(self, exc: BaseException, call: Call, job: Job) -> BaseException:
        """The engine's error for a whole task, as XtremeHub's error for one of its calls."""
        key = f"{call.job_id}/{call.call_id:05d}"
        error = self._engine_error(exc, key, job)
        if error is None:
            error = ComputeError(f"{self.label} could not run call {key}: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    # -- the Backend contract ----------------------------------------------------------------
    def start(self, settings: Settings, report: ReportFn, started: StartedFn) -> None:
        self._report = report
        self._shipped = ship_settings(settings)
        self._n = self._connect(settings) or self._n
        self._thread = threading.Thread(target=self._loop, name=f"xhub-{self.name}-collector", daemon=True)
        self._thread.start()
        log.debug("%s backend started (%d workers)", self.name, self.workers)

    def submit(self, job: Job, calls: Sequence[Call]) -> None:
        """Hand calls to the engine.

        With ``adaptive_chunks`` and neither a ``chunksize`` nor a time limit, the first
        calls go as single-call tasks (about two per worker) and the rest are held here
        until one of them reports its duration; then the rest go at once, in chunks holding
        about ``_TASK_SECONDS`` of work (at most an even share of what is left, as guided
        self-scheduling does, so the last tasks stay short). Calls of a few microseconds
        then cost one engine task per few hundred calls instead of one each. A later job of
        the same function starts from the durations already seen.
        """
        assert self._shipped is not None, "start() first"
        if self.adaptive_chunks and job.timeout is None and not job.extra.get("chunksize"):
            self._submit_held(job, calls)
            return
        size = 1 if job.timeout is not None else max(1, int(job.extra.get("chunksize") or self._batch_size(len(calls))))
        batches = [list(calls[i : i + size]) for i in range(0, len(calls), size)]
        deadline = None if job.timeout is None else time.monotonic() + job.timeout + self.timeout_grace
        with self._lock:
            if self._closing:
                raise ExecutorClosed(f"the {self.name} backend is shut down")
            # Launch under the lock: the collector must not see a handle before its calls.
            try:
                handles = self._launch(job, batches, self._shipped)
            except Exception as exc:
                raise _original_error(calls) or exc from None
            for handle, batch in zip(handles, batches, strict=True):
                self._inflight[handle] = _Flight(job, batch, deadline)
        self._wake.set()

    def _submit_held(self, job: Job, calls: Sequence[Call]) -> None:
        # Pickled here, once, each call on its own: an argument that cannot be pickled fails the
        # submission in the caller's thread, with its own error, before any call is queued, and
        # the batches the calls later travel in are these pieces joined.
        pieces = pickle_calls(calls)
        keys = {(c.job_id, c.call_id) for c in calls}
        with self._lock:
            if self._closing:
                raise ExecutorClosed(f"the {self.name} backend is shut down")
            self._held.extend(zip(itertools.repeat(job), calls, pieces))
            before = len(self._unlaunched)
            self._launch_held()
            mine = [e for c, e in self._unlaunched[before:] if (c.job_id, c.call_id) in keys]
            if mine:  # the engine refused the first tasks: nothing of this submission stays queued
                self._unlaunched[before:] = [
                    (c, e) for c, e in self._unlaunched[before:] if (c.job_id, c.call_id) not in keys
                ]
                self._held = deque(h for h in self._held if (h[1].job_id, h[1].call_id) not in keys)
                raise mine[0]
        self._wake.set()

    def _mean_seconds(self, job: Job) -> float | None:
        """The mean call duration seen for ``job`` (else for an earlier job of its function)."""
        mean = self._seconds.get(job.job_id)
        return self._seconds.get(_function_key(job)) if mean is None else mean

    def _chunk_size(self, job: Job) -> int:
        mean = self._mean_seconds(job)
        if mean is None:
            return 1  # nothing known yet: single calls, whose durations tell the size
        guided = math.ceil(len(self._held) / (self.workers * _TASKS_PER_WORKER))
        return max(1, min(_MAX_CHUNK, guided, int(_TASK_SECONDS / max(mean, 1e-6))))

    def _launch_held(self) -> None:
        """Hand held calls to the engine (caller holds the lock).

        Calls of a job whose call duration is not known yet go as single calls, at most
        ``_TASKS_PER_WORKER`` tasks per worker in flight; once a duration is known, all of
        the job's held calls go at once, in chunks of about ``_TASK_SECONDS`` of work that
        shrink to an even share of what is left (guided self-scheduling), so the engine
        queues them without a round trip to this process between tasks and the last tasks
        stay short. Calls the engine refused go to ``_unlaunched``, which the collector reports.
        """
        assert self._shipped is not None
        room = self.workers * _TASKS_PER_WORKER - len(self._inflight)
        held = self._held
        while held:
            job = held[0][0]
            known = self._mean_seconds(job) is not None
            if not known and room <= 0:
                break
            batches: list[list[Call]] = []
            packed: list[bytes] = []
            while held and held[0][0] is job and (known or room > 0):
                size = self._chunk_size(job)
                batch: list[Call] = []
                pieces: list[bytes] = []
                while held and len(batch) < size and held[0][0] is job:
                    _, call, piece = held.popleft()
                    batch.append(call)
                    pieces.append(piece)
                batches.append(batch)
                packed.append(b"".join(pieces))
                room -= 1
            try:
                handles = self._launch(job, batches, self._shipped, packed)
            except Exception as exc:
                error = _original_error([c for b in batches for c in b]) or exc
                self._unlaunched += [(c, error) for b in batches for c in b]
                continue
            for handle, batch in zip(handles, batches, strict=True):
                self._inflight[handle] = _Flight(job, batch, None)

    def _observe(self, flight: _Flight, outcomes: list[Outcome]) -> None:
        """Note the calls' durations (a running mean per job, also kept per function for the next job)."""
        if not outcomes or not self.adaptive_chunks:
            return
        mean = sum(o.end - o.start for o in outcomes) / len(outcomes)
        old = self._seconds.get(flight.job.job_id)
        mean = mean if old is None else (old + mean) / 2
        self._seconds[flight.job.job_id] = mean
        self._seconds[_function_key(flight.job)] = mean

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._drain = wait
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._disconnect()

    # -- the collector thread ----------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closing and ((not self._inflight and not self._held) or not self._drain):
                        break
                    if self._held and not self._inflight:
                        self._launch_held()
                    unlaunched, self._unlaunched = self._unlaunched, []
                    handles = list(self._inflight)
                    deadlines = [f.deadline for f in self._inflight.values() if f.deadline is not None]
                if unlaunched:
                    assert self._report is not None
                    self._report(list(unlaunched))
                if not handles:
                    self._wake.wait(self.poll_seconds)
                    self._wake.clear()
                    continue
                wait = self.poll_seconds
                if deadlines:
                    wait = max(0.0, min(wait, min(deadlines) - time.monotonic()))
                self._deliver(self._poll(handles, wait))
                self._expire()
        except BaseException:  # pragma: no cover - a bug here must not hang users
            log.exception("%s backend collector crashed", self.name)
            raise
        finally:
            self._abandon()

    def _deliver(self, finished: list[tuple[Hashable, list[Outcome] | bytes | BaseException]]) -> None:
        assert self._report is not None
        reports: list[tuple[Call, Outcome | BaseException]] = []
        unpacked = [(h, unpack_outcomes(r) if isinstance(r, bytes) else r) for h, r in finished]
        with self._lock:
            flights = [(self._inflight.pop(h, None), result) for h, result in unpacked]
            for flight, result in flights:
                if flight is not None and not isinstance(result, BaseException):
                    self._observe(flight, result)
            if self._held:  # the engine has room again: hand it the next chunks before reporting
                self._launch_held()
            reports += self._unlaunched
            self._unlaunched = []
        for flight, result in flights:
            if flight is None:
                continue  # already reported (its deadline passed)
            if isinstance(result, BaseException):
                reports += [(call, self._translate(result, call, flight.job)) for call in flight.calls]
            else:
                reports += list(zip(flight.calls, result, strict=True))
        if reports:
            self._report(reports)

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [h for h, f in self._inflight.items() if f.deadline is not None and now >= f.deadline]
            flights = [self._inflight.pop(h) for h in late]
        if not late:
            return
        assert self._report is not None
        self._cancel(late, force=True)
        verb = "was stopped" if self.enforces_timeouts else f"was abandoned ({self.name} cannot stop a running task)"
        self._report(
            [
                (
                    call,
                    TaskTimeout(
                        f"call {call.job_id}/{call.call_id:05d} ran longer than its {f.job.timeout:g}s limit; it {verb}"
                    ),
                )
                for f in flights
                for call in f.calls
            ]
        )

    def _abandon(self) -> None:
        with self._lock:
            leftovers = list(self._inflight.items())
            self._inflight.clear()
            held = [h[1] for h in self._held]
            self._held.clear()
            unlaunched, self._unlaunched = self._unlaunched, []
        if not leftovers and not held and not unlaunched:
            return
        if leftovers:
            with contextlib.suppress(Exception):
                self._cancel([h for h, _ in leftovers], force=False)
        if self._report is not None:
            self._report(
                [
                    *unlaunched,
                    *(
                        (c, ExecutorClosed(f"call {c.job_id}/{c.call_id:05d} was not run: executor closed"))
                        for c in [*(c for _, flight in leftovers for c in flight.calls), *held]
                    ),
                ]
            )
