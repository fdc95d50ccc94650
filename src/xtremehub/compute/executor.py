"""``FunctionExecutor``: the API a Lithops user already knows, on any backend.

Example:
    >>> from xtremehub import FunctionExecutor
    >>> def double(x):
    ...     return 2 * x
    >>> with FunctionExecutor(workers=2) as fexec:
    ...     futures = fexec.map(double, [1, 2, 3])
    ...     fexec.get_result(futures)
    [2, 4, 6]
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from xtremehub.compute.backends import Backend, Job, create_backend
from xtremehub.compute.futures import ALL_COMPLETED, ALWAYS, ANY_COMPLETED, FuturesList, ResponseFuture, Signal
from xtremehub.compute.partitioner import ObjectPart, partition_objects
from xtremehub.compute.progress import progress_bar, wants_progress
from xtremehub.compute.summary import JobSummary
from xtremehub.compute.task import Call, Outcome, expand_args
from xtremehub.compute.telemetry import TelemetryWriter
from xtremehub.config import Settings, default_settings
from xtremehub.errors import ConfigError, ExecutorClosed

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
        workers: worker count for backends that take one (default: settings, then CPU cores).
        retries: how many times a failed call is retried (default: ``settings.executor.retries``).
        settings: explicit settings (default: ``XHUB_*`` environment and config file).
        progress: show progress bars (``None``: only on a TTY).
        backend_options: passed to the backend's constructor.
    """

    #: Created on first use when ``settings.telemetry.dir`` is set.
    _telemetry_writer: TelemetryWriter | None = None

    def __init__(
        self,
        backend: str | Backend | object | None = None,
        *,
        workers: int | None = None,
        retries: int | None = None,
        settings: Settings | None = None,
        progress: bool | None = None,
        **backend_options: Any,
    ) -> None:
        self.settings = settings or default_settings()
        ex = self.settings.executor
        self.retries = ex.retries if retries is None else retries
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, not {self.retries}")
        self.progress = wants_progress(ex.progress if progress is None else progress)
        name = backend if backend is not None else ex.backend
        if isinstance(name, str) and name == "local":
            backend_options.setdefault("workers", workers or ex.workers)
            backend_options.setdefault("start_method", ex.start_method)
        elif workers is not None:
            backend_options.setdefault("workers", workers)
        self._backend = create_backend(name, **backend_options)
        self.executor_id = uuid.uuid4().hex[:6]
        self._job_counter = itertools.count()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._tracked: dict[tuple[str, int], _Tracked] = {}
        self._futures: list[ResponseFuture] = []
        self._returned: set[int] = set()
        self._signal = Signal()
        self._errors = 0  # failed calls so far; lets waiters skip scanning for exceptions

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        return self._backend

    def _ensure_started(self) -> None:
        if self._closed:
            raise ExecutorClosed("this FunctionExecutor is closed")
        if not self._started:
            with self._lock:
                if not self._started:
                    self._backend.start(self.settings, self._on_report, self._on_started)
                    self._started = True

    def close(self, wait: bool = True) -> None:
        """Stop the backend; with ``wait`` (default) queued calls finish first."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._backend.shutdown(wait=wait)
        if self._telemetry_writer is not None:
            self._telemetry_writer.close()

    def __enter__(self) -> FunctionExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(wait=exc_type is None)

    # -- submitting ---------------------------------------------------------------------------
    def _new_job(self, func: Callable[..., Any], timeout: float | None, **extra: Any) -> Job:
        if not callable(func):
            raise TypeError(f"expected a callable, got {type(func).__name__}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, not {timeout}")
        job_id = f"{self.executor_id}-M{next(self._job_counter):03d}"
        return Job(job_id, func, timeout, dict(extra))

    def _submit(
        self, job: Job, arg_sets: Sequence[tuple[tuple[Any, ...], dict[str, Any]]], *, produce_output: bool = True
    ) -> FuturesList:
        self._ensure_started()
        now = time.time()
        futures = FuturesList()
        calls = []
        for i, (args, kwargs) in enumerate(arg_sets):
            future = ResponseFuture(
                job.job_id, i, self._signal, produce_output=produce_output, backend=self._backend.name
            )
            future._mark_queued(now)
            call = Call(job.job_id, i, args, kwargs)
            self._tracked[(job.job_id, i)] = _Tracked(job, call, future)
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
        with self._lock:
            self._futures.extend(futures)
        self._write_telemetry_of(job.job_id, futures)
        log.debug("job %s: %d calls submitted to %s", job.job_id, len(calls), self._backend.name)
        return futures

    def call_async(
        self, func: Callable[..., Any], data: Any = (), extra_args: Any = None, timeout: float | None = None
    ) -> ResponseFuture:
        """Run ``func`` once on ``data`` (a dict: keyword args; a tuple/list: positional; else one arg)."""
        job = self._new_job(func, timeout)
        return self._submit(job, [expand_args(data, extra_args)])[0]

    def map(
        self,
        map_function: Callable[..., Any],
        iterdata: Iterable[Any] | str,
        extra_args: Any = None,
        chunksize: int | None = None,
        obj_chunk_size: int | None = None,
        obj_chunk_number: int | None = None,
        obj_newline: str | bytes | None = "\n",
        timeout: float | None = None,
    ) -> FuturesList:
        """Run ``map_function`` once per item of ``iterdata``.

        ``iterdata`` may also be object URLs or prefixes (``"s3://bucket/dir/"``,
        a local directory): when ``map_function`` has an ``obj`` parameter, each
        object is cut into parts (``obj_chunk_size`` bytes or ``obj_chunk_number``
        parts, aligned to ``obj_newline``) and each call receives one
        :class:`~xtremehub.compute.partitioner.ObjectPart` as ``obj``. A parameter
        named ``id`` receives the call's index. ``chunksize`` fixes how many calls
        a worker takes at once (default: adaptive). ``timeout`` limits each call's
        run time in seconds.
        """
        job = self._new_job(map_function, timeout, chunksize=chunksize)
        items = self._prepare_items(map_function, iterdata, obj_chunk_size, obj_chunk_number, obj_newline)
        return self._submit(job, self._arg_sets(map_function, items, extra_args))

    def map_reduce(
        self,
        map_function: Callable[..., Any],
        iterdata: Iterable[Any] | str,
        reduce_function: Callable[..., Any],
        extra_args: Any = None,
        chunksize: int | None = None,
        obj_chunk_size: int | None = None,
        obj_chunk_number: int | None = None,
        obj_newline: str | bytes | None = "\n",
        reducer_one_per_object: bool = False,
        timeout: float | None = None,
    ) -> FuturesList:
        """``map`` then one ``reduce_function(results)`` call over all map results (in order).

        With ``reducer_one_per_object``, object partitions are reduced per object.
        Returns the reducer futures; ``get_result()`` gives the reduced value(s).
        """
        items = self._prepare_items(map_function, iterdata, obj_chunk_size, obj_chunk_number, obj_newline)
        map_job = self._new_job(map_function, timeout, chunksize=chunksize)
        map_futures = self._submit(map_job, self._arg_sets(map_function, items, extra_args), produce_output=False)
        groups: dict[str, list[ResponseFuture]] = {}
        if reducer_one_per_object and items and all(isinstance(i, ObjectPart) for i in items):
            for item, future in zip(items, map_futures, strict=True):
                groups.setdefault(item.url, []).append(future)
        else:
            groups[""] = list(map_futures)
        reduce_job = self._new_job(reduce_function, timeout)
        reducers = FuturesList()
        for index, group in enumerate(groups.values()):
            reducers.append(self._chain_reduce(reduce_job, index, group))
        return reducers

    def _chain_reduce(self, job: Job, index: int, inputs: list[ResponseFuture]) -> ResponseFuture:
        """A future that becomes a reduce call once all ``inputs`` succeed."""
        reducer = ResponseFuture(job.job_id, index, self._signal, backend=self._backend.name)
        reducer._mark_queued(time.time())
        with self._lock:
            self._futures.append(reducer)
        self._write_telemetry_of(job.job_id, [reducer])
        remaining = [len(inputs)]
        lock = threading.Lock()

        def on_input_done(_: ResponseFuture | None) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] > 0:
                    return
            failed = next((f.exception() for f in inputs if f.exception() is not None), None)
            if failed is not None:
                self._finish(reducer._fail(failed, 0))
                return
            try:
                call = Call(job.job_id, index, ([f.result() for f in inputs],), {})
                with self._lock:
                    self._tracked[(job.job_id, index)] = _Tracked(job, call, reducer)
                self._backend.submit(job, [call])
            except BaseException as exc:
                self._finish(reducer._fail(exc, 0))

        if not inputs:
            remaining[0] = 1
            on_input_done(None)
        for f in inputs:
            f.add_done_callback(on_input_done)
        return reducer

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
        if wants_obj and items and all(isinstance(i, str) for i in items):
            return list(
                partition_objects(
                    items, settings=self.settings, chunk_size=chunk_size, chunk_number=chunk_number, newline=newline
                )
            )
        if wants_obj and items and all(isinstance(i, dict) and isinstance(i.get("obj"), str) for i in items):
            return list(
                partition_objects(
                    [i["obj"] for i in items],
                    settings=self.settings,
                    chunk_size=chunk_size,
                    chunk_number=chunk_number,
                    newline=newline,
                )
            )
        if chunk_size is not None or chunk_number is not None:
            raise ConfigError("obj_chunk_size/obj_chunk_number need object URLs and a function with an 'obj' parameter")
        return items

    @staticmethod
    def _arg_sets(
        func: Callable[..., Any], items: list[Any], extra_args: Any
    ) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        params = _parameters(func)
        sets = []
        for i, item in enumerate(items):
            if isinstance(item, ObjectPart):
                args, kwargs = expand_args({"obj": item}, extra_args)
            else:
                args, kwargs = expand_args(item, extra_args)
            if "id" in params and "id" not in kwargs:
                kwargs["id"] = i
            sets.append((args, kwargs))
        return sets

    # -- reports from the backend (any thread) -----------------------------------------------
    def _on_started(self, call: Call) -> None:
        tracked = self._tracked.get((call.job_id, call.call_id))
        if tracked is not None:
            tracked.future._mark_running()

    def _on_report(self, reports: list[tuple[Call, Outcome | BaseException]]) -> None:
        callbacks: list[Callable[[], None]] = []
        settled: list[ResponseFuture] = []
        for call, result in reports:
            tracked = self._tracked.get((call.job_id, call.call_id))
            if tracked is None:
                continue
            tracked.attempts += 1
            failed = isinstance(result, BaseException) or not result.ok
            if failed and tracked.attempts <= self.retries and not self._closed:
                log.info("retrying call %s/%05d (attempt %d)", call.job_id, call.call_id, tracked.attempts + 1)
                retry = Call(call.job_id, call.call_id, call.args, call.kwargs, attempt=tracked.attempts)
                try:
                    self._backend.submit(tracked.job, [retry])
                    continue
                except ExecutorClosed:
                    pass
            del self._tracked[(call.job_id, call.call_id)]
            if isinstance(result, BaseException):
                callbacks += tracked.future._fail(result, tracked.attempts)
                self._errors += 1
            else:
                callbacks += tracked.future._resolve(result, tracked.attempts)
                self._errors += not result.ok
            settled.append(tracked.future)
        if settled:
            self._finish(callbacks)

    def _finish(self, callbacks: list[Callable[[], None]]) -> None:
        """Wake waiters once, then run done-callbacks (outside the lock)."""
        with self._signal:
            self._signal.notify_all()
        for fn in callbacks:
            try:
                fn()
            except Exception:  # pragma: no cover - a user callback must not kill the dispatcher
                log.exception("done-callback failed")

    # -- waiting -------------------------------------------------------------------------------
    def wait(
        self,
        fs: ResponseFuture | Sequence[ResponseFuture] | None = None,
        throw_except: bool = True,
        return_when: str = ALL_COMPLETED,
        timeout: float | None = None,
        show_progressbar: bool | None = None,
    ) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
        """Wait for futures (default: all of this executor's); returns ``(done, not_done)``.

        ``return_when`` is ``ALL_COMPLETED``, ``ANY_COMPLETED`` or ``ALWAYS`` (no wait).
        With ``throw_except``, the first failed future's exception is raised.
        """
        futures = self._select(fs)
        if return_when not in (ALL_COMPLETED, ANY_COMPLETED, ALWAYS):
            raise ConfigError(f"return_when must be ALL_COMPLETED, ANY_COMPLETED or ALWAYS, not {return_when!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        show = self.progress if show_progressbar is None else show_progressbar

        # Amortised O(1) predicate: calls mostly finish in submission order, so a cursor
        # over the futures skips the finished prefix once instead of rescanning it on
        # every wake-up; failures are noticed through the executor's error counter.
        cursor = [0]
        errors_seen = [-1]

        def finished() -> bool:
            if return_when == ANY_COMPLETED:
                return any(f.done() for f in futures)
            if throw_except and errors_seen[0] != self._errors:
                errors_seen[0] = self._errors
                if any(f._exception is not None for f in futures):
                    return True  # no point waiting for the rest: the caller will raise
            i = cursor[0]
            while i < len(futures) and futures[i].done():
                i += 1
            cursor[0] = i
            return i == len(futures)

        with progress_bar(len(futures), "xhub", enabled=show and return_when != ALWAYS) as bar:
            while return_when != ALWAYS:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                step = left if not show else min(0.25, 0.25 if left is None else left)
                reached = self._signal.wait_until(finished, step)
                if show:
                    bar.update(sum(f.done() for f in futures) - bar.n)
                if reached or (deadline is not None and time.monotonic() >= deadline):
                    break
        done = [f for f in futures if f.done()]
        not_done = [f for f in futures if not f.done()]
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
        show_progressbar: bool | None = None,
    ) -> Any:
        """Results of futures (default: every output future not yet returned), in order.

        A single future gives a single result. A remote exception is re-raised here,
        its remote traceback attached as a note (``traceback.print_exc`` shows it).
        """
        single = isinstance(fs, ResponseFuture)
        futures = self._select(fs)
        if fs is None:
            futures = [f for f in futures if f.produce_output and id(f) not in self._returned]
        _, not_done = self.wait(futures, throw_except, ALL_COMPLETED, timeout, show_progressbar)
        if not_done:
            raise cf.TimeoutError(f"{len(not_done)} of {len(futures)} calls not done after {timeout}s")
        self._returned.update(id(f) for f in futures)
        results = [f.result(throw_except=throw_except) for f in futures]
        return results[0] if single else results

    # -- telemetry ---------------------------------------------------------------------------
    def job_summary(self, fs: ResponseFuture | Sequence[ResponseFuture] | None = None) -> JobSummary:
        """Telemetry of finished calls (default: all of this executor's) as a table.

        ``str()`` of the result shows per-job aggregates (tasks, failures, durations,
        CPU, bytes read/written, peak RSS); ``.to_pandas()`` gives one row per call.
        Calls still running are left out.

        Example:
            >>> from xtremehub import FunctionExecutor
            >>> with FunctionExecutor(workers=1) as fexec:
            ...     _ = fexec.get_result(fexec.map(abs, [-1, -2]))
            ...     summary = fexec.job_summary()
            >>> len(summary), summary.jobs()[0].tasks, summary[0].status, summary[0].schema
            (2, 2, 'success', '1')
        """
        rows = [t for t in (f.telemetry for f in self._select(fs)) if t is not None]
        return JobSummary(rows)

    def plot(
        self,
        dst: str | os.PathLike[str] = ".",
        fs: ResponseFuture | Sequence[ResponseFuture] | None = None,
        *,
        figsize: tuple[float, float] = (10.0, 6.0),
    ) -> tuple[str, str]:
        """Write a timeline and a histogram of call durations as PNGs, like Lithops's ``plot``.

        ``dst`` is a directory (files ``<executor_id>_timeline.png`` and
        ``<executor_id>_histogram.png``) or a path prefix (``<dst>_timeline.png``, ...),
        local or any storage URL. Returns the two paths.
        """
        from xtremehub.compute.plots import plot_telemetry

        summary = self.job_summary(fs)
        return plot_telemetry(summary.rows, dst, name=self.executor_id, settings=self.settings, figsize=figsize)

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
                return list(self._futures)
        if isinstance(fs, ResponseFuture):
            return [fs]
        return list(fs)


def _parameters(func: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return set()
