"""What the Ray, Dask and Lithops backends share: the worker entry point and the parent-side bookkeeping.

Worker side: :func:`run_remote` is the one function an engine runs. It receives
the job's cloudpickled function (unpickled once per job and process), a batch of
:class:`~xtremehub.compute.task.Call` objects and the executor's settings with
every secret stripped (:func:`ship_settings`); credentials are filled in from the
worker's own ``XHUB_*``/``AWS_*`` environment and config file
(:func:`worker_settings`), so ``s3://`` URLs resolve on the worker exactly as on
the client and no secret is ever pickled. Each call runs through
:func:`~xtremehub.compute.task.run_call`, so every backend reports the same
:class:`~xtremehub.compute.task.Outcome` (result or exception, remote traceback,
timings and resource use).

Parent side: :class:`EngineBackend` cuts submitted calls into engine tasks
(one call per task, or ``chunksize`` calls), keeps the in-flight table, watches
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
import logging
import os
import pickle
import threading
import time
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import cloudpickle

from xtremehub.compute.backends.base import Backend, Job, ReportFn, StartedFn
from xtremehub.compute.backends.outcomes import failed_outcome
from xtremehub.compute.task import Call, Outcome, dumps, run_call
from xtremehub.config import Settings, use_process_settings
from xtremehub.errors import ComputeError, ExecutorClosed, TaskTimeout, WorkerDied
from xtremehub.storage.access import complete

__all__ = ["EngineBackend", "run_remote", "ship_settings", "worker_settings"]

log = logging.getLogger(__name__)

_FUNCTION_CACHE = 16  # jobs whose unpickled function a worker process keeps


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

    ``calls`` may come pickled (:func:`~xtremehub.compute.task.dumps`): an engine whose
    scheduler keeps what it forwards (Dask) then never holds the caller's arguments as objects.

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
            calls = list(pickle.loads(calls))
        except Exception as exc:  # no call to report it on: the engine reports the task's error
            raise ComputeError(f"the worker could not unpickle a batch of job {job_id}: {exc}") from exc
    try:
        use_process_settings(worker_settings(settings))
        func = _function(job_id, func_bytes)
    except BaseException as exc:
        reason = "the worker could not load the function or its settings"
        return [failed_outcome(c.job_id, c.call_id, exc, reason, worker) for c in calls]
    outcomes = []
    usage = None
    for call in calls:
        outcome, usage = run_call(func, call, worker, usage)
        outcomes.append(outcome)
    return outcomes


# ---------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------
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
    def _launch(self, job: Job, batches: list[list[Call]], settings: Settings) -> list[Hashable]:
        """Hand batches to the engine (each runs :func:`run_remote`); one handle per batch."""

    @abstractmethod
    def _poll(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, list[Outcome] | BaseException]]:
        """Finished handles with their outcomes or the engine's error; waits at most ``timeout``."""

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
        assert self._shipped is not None, "start() first"
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
                    if self._closing and (not self._inflight or not self._drain):
                        break
                    handles = list(self._inflight)
                    deadlines = [f.deadline for f in self._inflight.values() if f.deadline is not None]
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

    def _deliver(self, finished: list[tuple[Hashable, list[Outcome] | BaseException]]) -> None:
        assert self._report is not None
        reports: list[tuple[Call, Outcome | BaseException]] = []
        with self._lock:
            flights = [(self._inflight.pop(h, None), result) for h, result in finished]
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
        if not leftovers:
            return
        with contextlib.suppress(Exception):
            self._cancel([h for h, _ in leftovers], force=False)
        if self._report is not None:
            self._report(
                [
                    (c, ExecutorClosed(f"call {c.job_id}/{c.call_id:05d} was not run: executor closed"))
                    for _, flight in leftovers
                    for c in flight.calls
                ]
            )
