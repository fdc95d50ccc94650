"""``FunctionExecutor``: the API a Lithops user already knows, on any backend.

Example:
    >>> from xtremehub import FunctionExecutor
    >>> def double(x):
    ...     return 2 * x
    >>> with FunctionExecutor(max_workers=2) as fexec:
    ...     futures = fexec.map(double, [1, 2, 3])
    ...     fexec.get_result(futures)
    [2, 4, 6]

As in Lithops, ``get_result`` of one future (or of a ``call_async``/``map_reduce``
giving one result) is that result, not a list of one; an item of ``iterdata`` is
unpacked only when it is a tuple (positional) or a dict (keywords).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import inspect
import itertools
import logging
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from xtremehub.compute.backends import Backend, Job, create_backend
from xtremehub.compute.batch import BatchTelemetry, CallBatch, OutcomeBlock
from xtremehub.compute.futures import (
    ALL_COMPLETED,
    ALWAYS,
    UNSET,
    FuturesList,
    ResponseFuture,
    Signal,
    load_values,
    nested_futures,
    return_when_code,
    settle_many,
    telemetry_record,
)
from xtremehub.compute.lineage import lineage_tracer
from xtremehub.compute.partitioner import ObjectPart, partition_objects
from xtremehub.compute.progress import progress_bar, wants_progress
from xtremehub.compute.summary import JobSummary
from xtremehub.compute.task import Call, Outcome, WithEnv, expand_args
from xtremehub.compute.telemetry import TelemetryWriter
from xtremehub.config import Settings, default_settings
from xtremehub.ephemeral.autostart import autostart as ephemeral_autostart
from xtremehub.errors import ConfigError, ExecutorClosed, StorageError

if TYPE_CHECKING:
    from xtremehub.security.identity import TokenSource
    from xtremehub.security.jobcreds import JobCredentials

__all__ = ["FunctionExecutor"]

log = logging.getLogger(__name__)


class _Tracked:
    """Bookkeeping of one submitted call: its future and its job (for retries)."""

    __slots__ = ("attempts", "call", "future", "job")

    def __init__(self, job: Job, call: Call, future: ResponseFuture) -> None:
        self.job, self.call, self.future, self.attempts = job, call, future, 0


class FunctionExecutor:
    """Run Python functions in parallel on a compute backend.

    Args:
        backend: a registered name (``"local"``, the default, ``"ray"``, ``"dask"``,
            ``"lithops"``), a :class:`~xtremehub.compute.backends.Backend` instance, or an
            engine's client object (a ``distributed.Client``, a ``lithops.FunctionExecutor``).
        max_workers: worker count for backends that take one (default: settings, then CPU
            cores); ``workers`` is the same, under XtremeHub's older name.
        retries: how many times a failed call is retried (default: ``settings.executor.retries``).
        settings: explicit settings (default: ``XHUB_*`` environment and config file).
        progress: show progress bars (``None``: only on a TTY).
        token: the submitter's access token (string, provider or callable): each job's calls get
            a job token derived from it by the key service of ``settings.encryption.keys``, bound
            to the executor's job id (``XHUB_JOB_TOKEN`` in their environment). The submitter's
            own token never reaches a worker.
        credentials: the same with the key service, datasets and purpose named explicitly
            (:class:`xtremehub.security.jobcreds.JobCredentials`).
        catalog: record the lineage of every job (what it read, which objects it wrote) in this
            catalog, or any :class:`~xtremehub.compute.lineage.LineageSink`; without it,
            ``[catalog] lineage = true`` (``XHUB_CATALOG_LINEAGE=1``) records to the configured catalog.
        owner: who runs the jobs, for lineage (default: the login name).
        backend_options: passed to the backend's constructor.

    The executor keeps the futures whose results were not read yet (``futures``);
    once a result has been delivered (``get_result`` or ``future.result()``) the
    executor drops its reference, so a long-lived executor does not keep results
    its caller has dropped.
    """

    #: Created on first use when ``settings.telemetry.dir`` is set.
    _telemetry_writer: TelemetryWriter | None = None
    #: An ephemeral node service this (local) executor started for ``xhub-eph://`` inputs.
    _eph_service: Any = None

    def __init__(
        self,
        backend: str | Backend | object | None = None,
        *,
        max_workers: int | None = None,
        workers: int | None = None,
        retries: int | None = None,
        settings: Settings | None = None,
        progress: bool | None = None,
        token: TokenSource | None = None,
        credentials: JobCredentials | None = None,
        catalog: object | None = None,
        owner: str | None = None,
        **backend_options: Any,
    ) -> None:
        if max_workers is not None and workers is not None and max_workers != workers:
            raise ConfigError(f"max_workers={max_workers} and workers={workers} disagree; give one")
        workers = max_workers if max_workers is not None else workers
        self.settings = settings or default_settings()
        ex = self.settings.executor
        self.retries = ex.retries if retries is None else retries
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, not {self.retries}")
        self.progress = wants_progress(ex.progress if progress is None else progress)
        if token is not None and credentials is not None:
            raise ConfigError("give token= or credentials=, not both")
        if token is not None:
            from xtremehub.security.jobcreds import JobCredentials

            credentials = JobCredentials.from_settings(token, self.settings)
        self._credentials = credentials
        name = backend if backend is not None else ex.backend
        if isinstance(name, str) and name == "local":
            backend_options.setdefault("workers", workers or ex.workers)
            start = backend_options.setdefault("start_method", ex.start_method)
            if credentials is not None and start == "fork":
                # forked workers would inherit the submitter's token in memory: a fresh forkserver
                # process, started before any token is read, forks them instead
                backend_options["start_method"] = "forkserver"
        elif workers is not None:
            backend_options.setdefault("workers", workers)
        self._backend = create_backend(name, **backend_options)
        self.executor_id = uuid.uuid4().hex[:6]
        self._job_counter = itertools.count()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._tracked: dict[tuple[str, int], _Tracked] = {}
        # the jobs whose calls are settled into a CallBatch's slots, by job id, until all are settled
        self._batches: dict[str, CallBatch] = {}
        # futures not yet delivered, in submission order (by id: removal is O(1)); a CallBatch
        # stands for its futures until they are made
        self._futures: dict[int, ResponseFuture | CallBatch] = {}
        # what job_summary() keeps of dropped futures: the sources of their telemetry records,
        # built only when asked for (one per delivered result; most are never looked at)
        self._delivered_telemetry: list[Any] = []
        self._signal = Signal()
        self._errors = 0  # failed calls so far; lets waiters skip scanning for exceptions
        #: lineage of finished jobs goes to a catalog (``None``: not recorded)
        self.lineage = lineage_tracer(catalog, owner, self.settings)
        self.last_call: str | None = None  # as in Lithops: decides get_result's shape for one result
        self._storage: Any = None

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def futures(self) -> list[ResponseFuture]:
        """The futures of this executor whose results have not been delivered yet."""
        return self._select(None)

    @property
    def config(self) -> dict[str, Any]:
        """A Lithops-shaped view of this executor's configuration."""
        return {
            "lithops": {
                "backend": self._backend.name,
                "mode": "localhost" if self._backend.name == "local" else self._backend.name,
                "storage": "localhost",
                "retries": self.retries,
            },
            self._backend.name: {"max_workers": self._backend.workers if self._started else None},
        }

    def _ensure_started(self) -> None:
        if self._closed:
            raise ExecutorClosed("this FunctionExecutor is closed")
        if not self._started:
            with self._lock:
                if not self._started:
                    if hasattr(self._backend, "submit_items"):  # the local backend's fast path (see map)
                        self._backend.report_block = self._on_report_block  # type: ignore[attr-defined]
                    self._backend.start(self.settings, self._on_report, self._on_started)
                    self._started = True

    def close(self, wait: bool = True) -> None:
        """Stop the backend; with ``wait`` (default) queued calls finish first."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._backend.shutdown(wait=wait)
        if self.lineage is not None:
            self.lineage.flush()
            self.lineage.close()
        if self._telemetry_writer is not None:
            self._telemetry_writer.close()
        if self._eph_service is not None:
            self._eph_service.stop()

    def __enter__(self) -> FunctionExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(wait=exc_type is None)

    # -- submitting ---------------------------------------------------------------------------
    def _new_job(
        self,
        func: Callable[..., Any],
        timeout: float | None,
        extra_env: dict[str, str] | None = None,
        retries: int | None = None,
        **extra: Any,
    ) -> Job:
        if not callable(func):
            raise TypeError(f"expected a callable, got {type(func).__name__}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, not {timeout}")
        if retries is not None:
            if retries < 0:
                raise ConfigError(f"retries must be >= 0, not {retries}")
            extra["retries"] = retries
        job_id = f"{self.executor_id}-M{next(self._job_counter):03d}"
        if self._credentials is not None:  # a job token per job; an explicit extra_env wins
            extra_env = {**self._credentials.env_for(job_id), **(extra_env or {})}
        return Job(job_id, WithEnv(func, extra_env) if extra_env else func, timeout, dict(extra))

    def _new_future(self, job: Job, index: int, now: float, produce_output: bool = True) -> ResponseFuture:
        return ResponseFuture(
            job.job_id,
            index,
            self._signal,
            produce_output=produce_output,
            backend=self._backend.name,
            submit=now,
            on_read=self._forget,
        )

    def _keep(self, futures: Sequence[ResponseFuture]) -> None:
        by_id = {id(f): f for f in futures}
        with self._lock:
            self._futures.update(by_id)

    def _forget(self, future: ResponseFuture) -> None:
        """Drop the executor's reference to a future whose result was delivered (or consumed)."""
        future._on_read = None
        with self._lock:
            if self._futures.pop(id(future), None) is None:
                return
        if future.done:
            self._delivered_telemetry.append(future._telemetry_source())

    def _forget_many(self, futures: list[ResponseFuture]) -> None:
        """:meth:`_forget` for many futures, taking the executor's lock once."""
        for future in futures:
            future._on_read = None
        with self._lock:
            pop = self._futures.pop
            gone = [f for f in futures if pop(id(f), None) is not None]
        self._delivered_telemetry += [f._telemetry_source() for f in gone if f.done]

    def _mark_read_many(self, futures: list[ResponseFuture]) -> None:
        """:meth:`ResponseFuture._mark_read` for many futures, forgetting this executor's ones at once."""
        mine: list[ResponseFuture] = []
        forget = self._forget
        for f in futures:
            if f._read:
                continue
            f._read = True
            on_read, f._on_read = f._on_read, None
            if on_read == forget:
                mine.append(f)
            elif on_read is not None:
                on_read(f)
        self._forget_many(mine)

    def _submit(
        self, job: Job, arg_sets: Sequence[tuple[tuple[Any, ...], dict[str, Any]]], *, produce_output: bool = True
    ) -> FuturesList:
        self._ensure_started()
        if produce_output and self.settings.telemetry.dir is None and self.lineage is None:
            return self._submit_batch(job, arg_sets)  # lineage and telemetry files read per-call futures
        now = time.time()
        futures = FuturesList()
        futures.executor = self
        calls = []
        job_id, signal, backend, forget = job.job_id, self._signal, self._backend.name, self._forget
        tracked = self._tracked
        for i, (args, kwargs) in enumerate(arg_sets):  # per call: keep this loop lean
            future = ResponseFuture(
                job_id, i, signal, produce_output=produce_output, backend=backend, submit=now, on_read=forget
            )
            call = Call(job_id, i, args, kwargs)
            tracked[(job_id, i)] = _Tracked(job, call, future)
            futures.append(future)
            calls.append(call)
        if calls:
            try:
                self._backend.submit(job, calls)
            except BaseException:
                # A failed submission (say, an argument that cannot be pickled) leaves nothing
                # behind: the backend queued none of the calls, and they are forgotten here.
                for call in calls:
                    self._tracked.pop((call.job_id, call.call_id), None)
                raise
        self._keep(futures)
        self._write_telemetry_of(job.job_id, futures)
        if self.lineage is not None:
            self.lineage.submitted(job, arg_sets, futures)
        log.debug("job %s: %d calls submitted to %s", job.job_id, len(calls), self._backend.name)
        return futures

    def _submit_batch(self, job: Job, arg_sets: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]) -> FuturesList:
        """:meth:`_submit` with one :class:`~xtremehub.compute.batch.CallBatch` instead of a future per call."""
        job_id = job.job_id
        batch = CallBatch(job, job_id, len(arg_sets), self._signal, self._backend.name, time.time(), self._forget)
        calls = [Call(job_id, i, args, kwargs) for i, (args, kwargs) in enumerate(arg_sets)]
        self._batches[job_id] = batch
        if calls:
            try:
                self._backend.submit(job, calls)
            except BaseException:
                del self._batches[job_id]  # nothing was queued (see _submit)
                raise
        with self._lock:
            self._futures[id(batch)] = batch
        log.debug("job %s: %d calls submitted to %s", job_id, len(calls), self._backend.name)
        return FuturesList.of_batch(self, batch)

    def _submit_items(self, job: Job, items: list[Any]) -> FuturesList:
        """:meth:`_submit_batch` for calls on one plain argument each, handed to the backend as the
        list of items (``submit_items``): no per-call object on the way to the workers."""
        self._ensure_started()
        job_id = job.job_id
        batch = CallBatch(job, job_id, len(items), self._signal, self._backend.name, time.time(), self._forget)
        self._batches[job_id] = batch
        if items:
            try:
                self._backend.submit_items(job, items)  # type: ignore[attr-defined]
            except BaseException:
                del self._batches[job_id]  # nothing was queued (see _submit)
                raise
        with self._lock:
            self._futures[id(batch)] = batch
        log.debug("job %s: %d calls submitted to %s", job_id, len(items), self._backend.name)
        return FuturesList.of_batch(self, batch)

    def _materialize(self, batch: CallBatch) -> list[ResponseFuture]:
        """Make ``batch``'s futures; those not delivered take its place among the executor's futures."""
        made = batch.materialize()
        with self._lock:
            if id(batch) in self._futures:
                self._futures = {
                    k: v
                    for key, value in self._futures.items()
                    for k, v in ([(id(f), f) for f in made if not f._read] if value is batch else [(key, value)])
                }
        return made

    def call_async(
        self,
        func: Callable[..., Any],
        data: Any = (),
        extra_env: dict[str, str] | None = None,
        runtime_memory: int | None = None,
        timeout: float | None = None,
        include_modules: list[str] | None = None,
        exclude_modules: list[str] | None = None,
        *,
        extra_args: Any = None,
        retries: int | None = None,
    ) -> ResponseFuture:
        """Run ``func`` once on ``data`` (a dict: keyword args; a tuple: positional; else one arg).

        The positional order is Lithops's; ``runtime_memory``, ``include_modules`` and
        ``exclude_modules`` are accepted and ignored (workers share the client's code).
        """
        self.last_call = "call_async"
        futures = self.map(func, [data], extra_args=extra_args, extra_env=extra_env, timeout=timeout, retries=retries)
        self.last_call = "call_async"
        return futures[0]

    def map(
        self,
        map_function: Callable[..., Any],
        map_iterdata: Iterable[Any] | str,
        chunksize: int | None = None,
        extra_args: Any = None,
        extra_env: dict[str, str] | None = None,
        runtime_memory: int | None = None,
        obj_chunk_size: int | None = None,
        obj_chunk_number: int | None = None,
        obj_newline: str | bytes | None = "\n",
        timeout: float | None = None,
        include_modules: list[str] | None = None,
        exclude_modules: list[str] | None = None,
        *,
        retries: int | None = None,
        plan: Any = None,
    ) -> FuturesList:
        """Run ``map_function`` once per item of ``map_iterdata`` (Lithops's positional order).

        An item that is a tuple is unpacked into positional arguments, a dict into
        keyword arguments (keys named after ``*args``/``**kwargs`` parameters fill
        those); anything else, a list too, is one argument. ``extra_args`` (tuple or
        dict) is appended to every call, ``extra_env`` is set in the environment of
        every call, ``retries`` overrides the executor's retry count for this map.

        ``map_iterdata`` may also be object URLs or prefixes (``"s3://bucket/dir/"``,
        ``https://...``, a local directory): when ``map_function`` has an ``obj``
        parameter, each object is cut into parts (``obj_chunk_size`` bytes or
        ``obj_chunk_number`` parts, aligned to ``obj_newline``) and each call receives
        one :class:`~xtremehub.compute.partitioner.ObjectPart` as ``obj``. Futures of
        an earlier job (a ``FuturesList``) chain: each call receives one of their
        results. A parameter named ``id`` receives the call's index, one named
        ``storage`` a :class:`xtremehub.lithops.Storage`. ``chunksize`` fixes how many
        calls a worker takes at once (default: adaptive). ``timeout`` limits each
        call's run time in seconds. ``plan="auto"`` (or a
        :class:`~xtremehub.optimizer.Planner`) lets the optimizer choose the slicing of
        object URLs and learn from the calls (see ``docs/optimizer.md``).
        """
        if plan is not None:
            from xtremehub.optimizer.planner import planned_map

            return planned_map(self, plan, map_function, map_iterdata, chunksize=chunksize, extra_args=extra_args,
                               extra_env=extra_env, obj_chunk_size=obj_chunk_size, obj_chunk_number=obj_chunk_number,
                               obj_newline=obj_newline, timeout=timeout, retries=retries)  # fmt: skip
        self.last_call = "map"
        job = self._new_job(map_function, timeout, extra_env, retries, chunksize=chunksize)
        chained = _chained_futures(map_iterdata)
        if chained is not None:
            if extra_args is not None:
                raise ConfigError("extra_args cannot be given when chaining: each call gets one earlier result")
            return self._submit_chained(job, map_function, chained)
        items = self._prepare_items(map_function, map_iterdata, obj_chunk_size, obj_chunk_number, obj_newline)
        if (
            job.timeout is None
            and hasattr(self._backend, "submit_items")
            and self.settings.telemetry.dir is None
            and self.lineage is None
            and self._plain(map_function, items, extra_args)
        ):
            return self._submit_items(job, items)
        return self._submit(job, self._arg_sets(map_function, items, extra_args))

    def map_reduce(
        self,
        map_function: Callable[..., Any],
        map_iterdata: Iterable[Any] | str,
        reduce_function: Callable[..., Any],
        chunksize: int | None = None,
        extra_args: Any = None,
        extra_args_reduce: Any = None,
        extra_env: dict[str, str] | None = None,
        map_runtime_memory: int | None = None,
        reduce_runtime_memory: int | None = None,
        timeout: float | None = None,
        obj_chunk_size: int | None = None,
        obj_chunk_number: int | None = None,
        obj_newline: str | bytes | None = "\n",
        obj_reduce_by_key: bool = False,
        spawn_reducer: int = 20,
        include_modules: list[str] | None = None,
        exclude_modules: list[str] | None = None,
        *,
        retries: int | None = None,
        reducer_one_per_object: bool | None = None,
    ) -> FuturesList:
        """``map`` then ``reduce_function(results)`` over all map results (in order).

        With ``obj_reduce_by_key``, object partitions are reduced per object (one
        reducer each). As in Lithops, returns the map futures followed by the reducer
        futures; the map futures produce no output of their own, so ``get_result()``
        of that list gives the reduced value (one reducer) or values. The reducer is
        started once every map call succeeded (``spawn_reducer`` is accepted and
        ignored). ``reducer_one_per_object`` is the deprecated name of ``obj_reduce_by_key``.
        """
        if reducer_one_per_object is not None:
            warnings.warn(
                "reducer_one_per_object is deprecated; use obj_reduce_by_key", DeprecationWarning, stacklevel=2
            )
            obj_reduce_by_key = reducer_one_per_object
        items = self._prepare_items(map_function, map_iterdata, obj_chunk_size, obj_chunk_number, obj_newline)
        map_job = self._new_job(map_function, timeout, extra_env, retries, chunksize=chunksize)
        map_futures = self._submit(map_job, self._arg_sets(map_function, items, extra_args), produce_output=False)
        groups: dict[str, list[ResponseFuture]] = {}
        if obj_reduce_by_key and items and all(isinstance(i, ObjectPart) for i in items):
            for item, future in zip(items, map_futures, strict=True):
                groups.setdefault(item.url, []).append(future)
        else:
            groups[""] = list(map_futures)
        reduce_job = self._new_job(reduce_function, timeout, extra_env, retries)
        futures = FuturesList(map_futures)
        futures.executor = self
        if self.lineage is not None:  # before any reducer call can be built (the map may be done already)
            self.lineage.expect(reduce_job.job_id, after=map_job.job_id)
        for index, group in enumerate(groups.values()):
            futures.append(
                self._chain(
                    reduce_job,
                    index,
                    group,
                    lambda results: self._with_injected(reduce_function, expand_args((results,), extra_args_reduce), 0),
                )
            )
        if self.lineage is not None:
            self.lineage.submitted(reduce_job, [], futures[len(map_futures) :], after=map_job.job_id)
        self.last_call = "map_reduce"
        return futures

    def _submit_chained(self, job: Job, func: Callable[..., Any], inputs: list[ResponseFuture]) -> FuturesList:
        """One call per earlier future, each started when its input is done, on the input's result."""
        self._ensure_started()
        futures = FuturesList()
        futures.executor = self
        for i, f in enumerate(inputs):
            f.produce_output = False  # consumed by this job: get_result() gives this job's output

            def build(results: list[Any], i: int = i) -> tuple[tuple[Any, ...], dict[str, Any]]:
                return self._with_injected(func, expand_args(results[0], None, func), i)

            futures.append(self._chain(job, i, [f], build))
        return futures

    def _chain(
        self,
        job: Job,
        index: int,
        inputs: list[ResponseFuture],
        build: Callable[[list[Any]], tuple[tuple[Any, ...], dict[str, Any]]],
    ) -> ResponseFuture:
        """A future that becomes a call on the inputs' results once all ``inputs`` succeed."""
        future = self._new_future(job, index, time.time())
        self._keep([future])
        self._write_telemetry_of(job.job_id, [future])
        remaining = [len(inputs)]
        lock = threading.Lock()

        def on_input_done(_: ResponseFuture | None) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] > 0:
                    return
            failed = next((f.exception() for f in inputs if f.exception() is not None), None)
            if failed is not None:
                for f in inputs:
                    self._forget(f)
                self._finish(future._fail(failed, 0))
                return
            try:
                args, kwargs = build([f.result() for f in inputs])  # reading them drops them from the executor
                if self.lineage is not None:
                    self.lineage.chained_call(job.job_id, args, kwargs)
                call = Call(job.job_id, index, args, kwargs)
                with self._lock:
                    self._tracked[(job.job_id, index)] = _Tracked(job, call, future)
                self._backend.submit(job, [call])
            except BaseException as exc:
                with self._lock:
                    self._tracked.pop((job.job_id, index), None)
                self._finish(future._fail(exc, 0))

        if not inputs:
            remaining[0] = 1
            on_input_done(None)
        for f in inputs:
            f.add_done_callback(on_input_done)
        return future

    def _object_url(self, url: str) -> str:
        """The XtremeHub URL of an object named in ``iterdata`` (the Lithops module maps its own)."""
        return url

    def _prepare_items(
        self,
        func: Callable[..., Any],
        iterdata: Iterable[Any] | str,
        chunk_size: int | None,
        chunk_number: int | None,
        newline: str | bytes | None,
    ) -> list[Any]:
        wants_obj = "obj" in _parameters(func)
        if isinstance(iterdata, str | os.PathLike):
            iterdata = [os.fspath(iterdata)]
        items = list(iterdata)
        self._autostart_ephemeral(items)
        urls: list[str] | None = None
        if wants_obj and items and all(isinstance(i, str) for i in items):
            urls = items
        elif wants_obj and items and all(isinstance(i, dict) and isinstance(i.get("obj"), str) for i in items):
            urls = [i["obj"] for i in items]
        if urls is not None:
            return list(
                partition_objects(
                    [self._object_url(u) for u in urls],
                    settings=self.settings,
                    chunk_size=chunk_size,
                    chunk_number=chunk_number,
                    newline=newline,
                )
            )
        if chunk_size is not None or chunk_number is not None:
            raise ConfigError("obj_chunk_size/obj_chunk_number need object URLs and a function with an 'obj' parameter")
        return items

    def _autostart_ephemeral(self, items: list[Any]) -> None:
        """Start an ephemeral node service for the local backend when ``items`` name ``xhub-eph://`` URLs."""
        if self._backend.name == "local" and self._eph_service is None and not _scalars_only(items):
            self._eph_service = ephemeral_autostart(items, self.settings)

    def map_each(self, func: Callable[..., Any], items: Iterable[Any], chunksize: int | None = None) -> FuturesList:
        """Run ``func(item)`` once per item, each item its call's one argument *as it is*.

        Unlike :meth:`map`, a tuple or dict item is not expanded, an object URL is not cut
        into parts and nothing is injected: the standard library's ``Pool.map`` semantics
        (:class:`xtremehub.multiprocessing.Pool` calls this). On the local backend the
        items travel as one list per worker batch, without a per-call object.

        Example:
            >>> from xtremehub import FunctionExecutor
            >>> with FunctionExecutor(max_workers=1) as fexec:
            ...     fexec.map_each(len, [(1, 2), {"a": 1}, "abc"]).get_result()
            [2, 1, 3]
        """
        self.last_call = "map"
        job = self._new_job(func, None, chunksize=chunksize)
        values = list(items)
        self._autostart_ephemeral(values)
        if hasattr(self._backend, "submit_items") and self.settings.telemetry.dir is None and self.lineage is None:
            return self._submit_items(job, values)
        return self._submit(job, [((item,), {}) for item in values])

    @staticmethod
    def _plain(func: Callable[..., Any], items: list[Any], extra_args: Any) -> bool:
        """Whether each item is its call's one positional argument (nothing to expand or inject)."""
        if extra_args is not None or _parameters(func) & _INJECTED:
            return False
        return _scalars_only(items) or not any(isinstance(item, _EXPANDED) for item in items)

    def _arg_sets(
        self, func: Callable[..., Any], items: list[Any], extra_args: Any
    ) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        params = _parameters(func)
        if extra_args is None and not params & _INJECTED:
            # the common case, per item: one plain argument (no dict/tuple to expand, nothing to inject)
            plain: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
                ((item,), {}) for item in items if not isinstance(item, _EXPANDED)
            ]
            if len(plain) == len(items):
                return plain
        sets = []
        for i, item in enumerate(items):
            if isinstance(item, ObjectPart):
                expanded = expand_args({"obj": item}, extra_args, func)
            else:
                expanded = expand_args(item, extra_args, func)
            sets.append(self._with_injected(func, expanded, i))
        return sets

    def _with_injected(
        self, func: Callable[..., Any], expanded: tuple[tuple[Any, ...], dict[str, Any]], index: int
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Fill the parameters Lithops fills: ``id`` (the call's index) and ``storage``."""
        args, kwargs = expanded
        params = _parameters(func)
        if "id" in params and "id" not in kwargs:
            kwargs["id"] = index
        if "storage" in params and "storage" not in kwargs:
            kwargs["storage"] = self.storage
        return args, kwargs

    @property
    def storage(self) -> Any:
        """The :class:`xtremehub.lithops.Storage` given to functions with a ``storage`` parameter."""
        if self._storage is None:
            from xtremehub.lithops.storage import Storage

            self._storage = Storage(settings=self.settings, executor_id=self.executor_id)
        return self._storage

    def clean(
        self,
        fs: ResponseFuture | Sequence[ResponseFuture] | None = None,
        cs: Sequence[Any] | None = None,
        clean_cloudobjects: bool = True,
        clean_fn: bool = False,
        force: bool = False,
    ) -> None:
        """Release what this executor holds, as Lithops's ``clean``.

        Drops the executor's references to the futures ``fs`` (default: every finished
        one), deletes the cloud objects ``cs``, and with ``clean_cloudobjects`` (and no
        ``cs``) every cloud object that this executor's calls put with the injected
        ``storage``. ``clean_fn`` is accepted and ignored (functions are not stored).
        """
        for f in self._select(fs):
            if f.done or force:
                self._forget(f)
        if cs:
            self.storage.delete_cloudobjects(list(cs))
        elif clean_cloudobjects and self._storage is not None:
            try:
                self._storage.delete_executor_cloudobjects()
            except StorageError as exc:  # as Lithops: cleaning up never fails the program
                log.warning("could not delete this executor's cloud objects: %s", exc)

    # -- reports from the backend (any thread) -----------------------------------------------
    def _on_started(self, call: Call) -> None:
        batch = self._batches.get(call.job_id)
        if batch is not None:
            batch.mark_running(call.call_id)
            return
        tracked = self._tracked.get((call.job_id, call.call_id))
        if tracked is not None:
            tracked.future._mark_running()

    def _on_report(self, reports: list[tuple[Call, Outcome | BaseException]]) -> None:
        settled: list[tuple[ResponseFuture, Outcome | BaseException, int]] = []
        slots: list[tuple[CallBatch, int, Outcome | BaseException, int]] = []
        all_tracked, batches = self._tracked, self._batches
        for call, result in reports:
            batch = batches.get(call.job_id)
            if batch is not None:  # per call: keep this lean
                i = call.call_id
                if batch.results[i] is not None if batch.futures is None else batch.settled(i):
                    continue  # answered already (the first answer counts)
                attempts = batch.attempts[i] + 1
                if isinstance(result, BaseException) or not result.ok:
                    if self._retry(call, result, batch.job, attempts):
                        batch.attempts[i] = attempts
                        continue
                    self._errors += 1
                slots.append((batch, i, result, attempts))
                continue
            key = (call.job_id, call.call_id)
            tracked = all_tracked.get(key)
            if tracked is None:
                continue
            tracked.attempts += 1
            if self._retry(call, result, tracked.job, tracked.attempts):
                continue
            del all_tracked[key]
            if isinstance(result, BaseException) or not result.ok:
                self._errors += 1
            settled.append((tracked.future, result, tracked.attempts))
        if settled or slots:
            # one acquisition of the signal for the batch: settle all, wake the waiters once
            self._run_callbacks(settle_many(self._signal, settled, slots))
            for batch, _, _, _ in slots:
                if batch.left == 0:
                    batches.pop(batch.job_id, None)

    def _on_report_block(self, job_id: str, block: OutcomeBlock, call_of: Callable[[int], Call]) -> None:
        """Outcomes of consecutive calls of one job, as columns (the local backend's fast path).

        All successful and their job's futures not made: settled into the batch's slots in one
        go, no per-call object. Otherwise (a failure to retry or raise, futures to settle) one
        by one as :meth:`_on_report` does, with each call rebuilt by ``call_of(call_id)``.
        """
        batch = self._batches.get(job_id)
        if batch is not None and False not in block.cols[2] and batch.settle_block(block):
            if batch.left == 0:
                self._batches.pop(job_id, None)
            return
        first = block.first
        self._on_report([(call_of(first + k), block.outcome(first + k)) for k in range(len(block))])

    def _retry(self, call: Call, result: Outcome | BaseException, job: Job, attempts: int) -> bool:
        """Submit call again if it failed and may be retried (``attempts`` it has made so far)."""
        failed = isinstance(result, BaseException) or not result.ok
        if failed and attempts <= job.extra.get("retries", self.retries) and not self._closed:
            log.info("retrying call %s/%05d (attempt %d)", call.job_id, call.call_id, attempts + 1)
            retry = Call(call.job_id, call.call_id, call.args, call.kwargs, attempt=attempts)
            try:
                self._backend.submit(job, [retry])
                return True
            except ExecutorClosed:
                pass
        return False

    def _run_callbacks(self, callbacks: list[Callable[[], None]]) -> None:
        for fn in callbacks:
            try:
                fn()
            except Exception:  # pragma: no cover - a user callback must not kill the dispatcher
                log.exception("done-callback failed")

    def _finish(self, callbacks: list[Callable[[], None]]) -> None:
        """Wake waiters once, then run done-callbacks (outside the lock)."""
        with self._signal:
            self._signal.notify_all()
        self._run_callbacks(callbacks)

    # -- waiting -------------------------------------------------------------------------------
    def wait(
        self,
        fs: ResponseFuture | Sequence[ResponseFuture] | None = None,
        throw_except: bool = True,
        return_when: int | str = ALL_COMPLETED,
        download_results: bool = False,
        timeout: float | None = None,
        threadpool_size: int | None = None,
        wait_dur_sec: float | None = None,
        show_progressbar: bool | None = None,
    ) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
        """Wait for futures (default: this executor's); returns ``(done, not_done)``.

        ``return_when`` is ``ALL_COMPLETED``, ``ANY_COMPLETED``, ``ALWAYS`` (no wait) or,
        as in Lithops, a percentage of the futures. With ``throw_except``, the first
        failed future's exception is raised. The parameter order is Lithops's;
        ``download_results``, ``threadpool_size`` and ``wait_dur_sec`` are accepted and
        ignored (results arrive with the completion notice; nothing is polled).
        """
        futures = self._select(fs)
        code = return_when_code(return_when)
        deadline = None if timeout is None else time.monotonic() + timeout
        show = self.progress if show_progressbar is None else show_progressbar
        wanted = len(futures) if code == ALL_COMPLETED else math.ceil(len(futures) * code / 100) if code > 0 else 1

        # Amortised O(1) predicate: calls mostly finish in submission order, so a cursor
        # over the futures skips the finished prefix once instead of rescanning it on
        # every wake-up; failures are noticed through the executor's error counter.
        cursor = [0]
        errors_seen = [-1]
        foreign = any(f._signal is not self._signal for f in futures)

        def finished() -> bool:
            if code not in (ALL_COMPLETED, ALWAYS):  # ANY_COMPLETED or a percentage
                return sum(f.done for f in futures) >= min(wanted, len(futures))
            if throw_except and errors_seen[0] != self._errors:
                errors_seen[0] = self._errors
                if any(f._exception is not None for f in futures):
                    return True  # no point waiting for the rest: the caller will raise
            i = cursor[0]
            while i < len(futures) and futures[i].done:
                i += 1
            cursor[0] = i
            return i == len(futures)

        with progress_bar(len(futures), "xhub", enabled=show and code != ALWAYS) as bar:
            while code != ALWAYS:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                step = left if not show else min(0.25, 0.25 if left is None else left)
                if foreign:  # futures of another executor settle without notifying this one
                    step = min(0.05, 0.05 if step is None else step)
                reached = self._signal.wait_until(finished, step)
                if show:
                    bar.update(sum(f.done for f in futures) - bar.n)
                if reached or (deadline is not None and time.monotonic() >= deadline):
                    break
        done = [f for f in futures if f.done]
        not_done = [f for f in futures if not f.done]
        if self.lineage is not None:
            self.lineage.flush()
        if throw_except:
            for f in done:
                exc = f._exception
                if exc is not None:
                    raise exc
        return done, not_done

    def get_result(
        self,
        fs: ResponseFuture | Sequence[ResponseFuture] | None = None,
        throw_except: bool = True,
        timeout: float | None = None,
        threadpool_size: int | None = None,
        wait_dur_sec: float | None = None,
        show_progressbar: bool | None = None,
    ) -> Any:
        """Results of futures (default: every output future not yet read), in order.

        As in Lithops: one future, or a single result after ``call_async`` or
        ``map_reduce``, gives the value itself; after ``map`` a list. Futures that only
        feed a reducer or a chained job are skipped; futures a call returned are
        resolved into their results. A remote exception is re-raised here, its remote
        traceback attached as a note (``traceback.print_exc`` shows it). Delivered
        results are no longer held by the executor.
        """
        single = isinstance(fs, ResponseFuture)
        if isinstance(fs, FuturesList) and fs.batch is not None and fs.executor is self and fs.batch.futures is None:
            values = self._deliver_batch(fs.batch, throw_except, timeout, show_progressbar)
            if values is not None:
                return values[0] if len(values) == 1 and self.last_call != "map" else values
        futures = self._select(fs)
        if fs is None:
            futures = [f for f in futures if f.produce_output and not f._read]
        _, not_done = self.wait(
            futures, throw_except, ALL_COMPLETED, timeout=timeout, show_progressbar=show_progressbar
        )
        if not_done:
            raise cf.TimeoutError(f"{len(not_done)} of {len(futures)} calls not done after {timeout}s")
        results = self._deliver(futures, throw_except)
        if len(results) == 1 and (single or self.last_call != "map"):
            return results[0]
        return results

    def _deliver_batch(
        self, batch: CallBatch, throw_except: bool, timeout: float | None, show_progressbar: bool | None
    ) -> list[Any] | None:
        """``get_result`` of a lazy :class:`FuturesList` straight from its batch's slots.

        ``None`` when it must go through the futures: a call failed (its exception is raised
        from there, as for any future), a result holds futures, or the futures were made.
        """
        show = self.progress if show_progressbar is None else show_progressbar
        deadline = None if timeout is None else time.monotonic() + timeout

        def finished() -> bool:
            return batch.left == 0 or (throw_except and batch.errors > 0) or batch.futures is not None

        with progress_bar(batch.n, "xhub", enabled=show) as bar:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                step = left if not show else min(0.25, 0.25 if left is None else left)
                reached = self._signal.wait_until(finished, step)
                if show:
                    bar.update(batch.n - batch.left - bar.n)
                if reached or (deadline is not None and time.monotonic() >= deadline):
                    break
        if batch.futures is not None or batch.errors:
            return None
        if batch.left:
            raise cf.TimeoutError(f"{batch.left} of {batch.n} calls not done after {timeout}s")
        delivered = batch.deliver()
        if delivered is None:
            return None
        values, telemetry = delivered
        if telemetry is not None:
            with self._lock:
                self._futures.pop(id(batch), None)
            self._delivered_telemetry.append(telemetry)
        return values

    def _deliver(self, futures: list[ResponseFuture], throw_except: bool) -> list[Any]:
        """The results of finished ``futures`` in order (``get_result``'s list), marked read.

        The per-result work is done for all futures at once where it can be: results are
        unpickled under one acquisition of the signal and the futures forgotten under one of
        the executor's lock. Failures and futures a call returned take the one-by-one path.
        """
        load_values(futures)
        results: list[Any] = []
        read: list[ResponseFuture] = []
        consumed: list[ResponseFuture] = []
        try:
            for f in futures:
                if not f.produce_output:
                    if f.done:
                        consumed.append(f)
                    continue
                value = f._value
                if f._exception is None and value is not UNSET and nested_futures(value) is None:
                    results.append(value)
                    read.append(f)
                else:
                    results.extend(_values_of(f, throw_except))
        finally:
            self._forget_many(consumed)
            self._mark_read_many(read)
        return results

    # -- telemetry ---------------------------------------------------------------------------
    def job_summary(self, fs: ResponseFuture | Sequence[ResponseFuture] | None = None) -> JobSummary:
        """Telemetry of finished calls (default: all of this executor's) as a table.

        ``str()`` of the result shows per-job aggregates (tasks, failures, durations,
        CPU, bytes read/written, peak RSS); ``.to_pandas()`` gives one row per call.
        Calls still running are left out.

        Example:
            >>> from xtremehub import FunctionExecutor
            >>> with FunctionExecutor(max_workers=1) as fexec:
            ...     _ = fexec.get_result(fexec.map(abs, [-1, -2]))
            ...     summary = fexec.job_summary()
            >>> len(summary), summary.jobs()[0].tasks, summary[0].status, summary[0].schema
            (2, 2, 'success', '1')
        """
        rows = [t for t in (f.telemetry for f in self._select(fs)) if t is not None]
        if fs is None:
            sources = [
                s
                for kept in list(self._delivered_telemetry)
                for s in (kept.sources() if isinstance(kept, BatchTelemetry) else [kept])
            ]
            rows = [*map(telemetry_record, sources), *rows]
        return JobSummary(rows)

    def plot(
        self,
        fs: ResponseFuture | Sequence[ResponseFuture] | str | os.PathLike[str] | None = None,
        dst: str | os.PathLike[str] | None = None,
        figsize: tuple[float, float] = (10.0, 6.0),
    ) -> tuple[str, str]:
        """Write a timeline and a histogram of call durations as PNGs, like Lithops's ``plot``.

        ``dst`` (default: the current directory) is a directory (files ``<executor_id>_timeline.png`` and
        ``<executor_id>_histogram.png``) or a path prefix (``<dst>_timeline.png``, ...),
        local or any storage URL. Returns the two paths.
        """
        from xtremehub.compute.plots import plot_telemetry

        if isinstance(fs, str | os.PathLike):  # plot("dir/"): XtremeHub's older order, never futures
            fs, dst = None, fs
        summary = self.job_summary(fs)
        return plot_telemetry(
            summary.rows, "." if dst is None else dst, name=self.executor_id, settings=self.settings, figsize=figsize
        )

    def _write_telemetry_of(self, job_id: str, futures: Sequence[ResponseFuture]) -> None:
        """With ``settings.telemetry.dir`` set, have the job's records written there once it is done."""
        if self.settings.telemetry.dir is None or not futures:
            return
        with self._lock:
            if self._telemetry_writer is None:
                self._telemetry_writer = TelemetryWriter(self.settings.telemetry.dir, self.settings)
            writer = self._telemetry_writer
        writer.expect(job_id, len(futures))

        def record(future: ResponseFuture) -> None:
            telemetry = future.telemetry
            if telemetry is not None:
                writer.record(telemetry)

        for f in futures:
            f.add_done_callback(record)

    def _select(self, fs: ResponseFuture | Sequence[ResponseFuture] | None) -> list[ResponseFuture]:
        if fs is None:
            with self._lock:
                batches = [b for b in self._futures.values() if isinstance(b, CallBatch)]
            for batch in batches:  # every future of the executor is wanted: make them
                self._materialize(batch)
            with self._lock:
                return [f for f in self._futures.values() if isinstance(f, ResponseFuture)]
        if isinstance(fs, ResponseFuture):
            return [fs]
        return list(fs)


def _values_of(future: ResponseFuture, throw_except: bool) -> list[Any]:
    """A future's result as a list of results: futures a call returned are resolved (recursively)."""
    value = future.result(throw_except=throw_except)
    nested = nested_futures(value) if future._exception is None else None
    if nested is None:
        return [value]
    return [v for f in nested for v in _values_of(f, throw_except)]


def _chained_futures(iterdata: Any) -> list[ResponseFuture] | None:
    """The futures of an earlier job given as ``iterdata`` (a chain), or ``None`` for plain data."""
    if isinstance(iterdata, FuturesList):
        return list(iterdata)
    if not isinstance(iterdata, list | tuple) or not iterdata:
        return None
    futures = [i for i in iterdata if isinstance(i, ResponseFuture)]
    if not futures:
        return None
    if len(futures) != len(iterdata):
        raise ConfigError("iterdata mixes futures of an earlier job with plain data; chain the futures alone")
    return futures


#: Items that :func:`expand_args` unpacks (or that become an ``obj`` keyword).
_EXPANDED = (dict, tuple, ObjectPart)
#: Argument types that hold no URL and always pickle (the common ``map`` over numbers).
_SCALAR_TYPES = frozenset({int, float, bool, complex, type(None)})


def _scalars_only(items: list[Any]) -> bool:
    """Whether every item is a number (or ``None``): one pass at C speed, no per-item Python code.

    Example:
        >>> _scalars_only(list(range(3))), _scalars_only([1, "xhub-eph://a/b"])
        (True, False)
    """
    return set(map(type, items)) <= _SCALAR_TYPES


#: Parameters the executor fills (see ``_with_injected``).
_INJECTED = frozenset({"id", "storage"})


def _parameters(func: Callable[..., Any]) -> frozenset[str]:
    """The names of ``func``'s parameters (read once per function: a map asks for every item)."""
    try:
        return _cached_parameters(func)
    except TypeError:  # an unhashable callable
        return _signature_parameters(func)


@functools.lru_cache(maxsize=256)
def _cached_parameters(func: Callable[..., Any]) -> frozenset[str]:
    return _signature_parameters(func)


def _signature_parameters(func: Callable[..., Any]) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return frozenset()
