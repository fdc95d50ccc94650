"""``Pool``: the standard library's process pool API, run by a :class:`~xtremehub.FunctionExecutor`.

Any compute backend works (``local``, ``ray``, ``dask``, ``lithops``); the
pool's "processes" are the backend's workers. Differences from
:class:`multiprocessing.pool.Pool`, all deliberate:

- the iterable of ``map``/``imap`` is read to the end when the call is made (no
  infinite iterators); ``chunksize`` is passed to the executor as its batch size;
- ``maxtasksperchild`` only on the local backend (the engines' workers are theirs);
- results carry telemetry: ``pool.executor.job_summary()``.

Example:
    >>> from xtremehub.multiprocessing import Pool
    >>> with Pool(2) as pool:
    ...     pool.map(abs, [-1, -2, 3])
    ...     sorted(pool.imap_unordered(abs, [-4, 5]))
    ...     pool.apply(divmod, (7, 2))
    [1, 2, 3]
    [4, 5]
    (3, 1)
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import queue
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from xtremehub.compute.backends import Backend
from xtremehub.compute.backends._local import LocalBackend
from xtremehub.compute.executor import FunctionExecutor
from xtremehub.compute.futures import FuturesList, ResponseFuture
from xtremehub.config import Settings, default_settings

__all__ = ["AsyncResult", "IMapIterator", "Pool"]

_RUN, _CLOSE, _TERMINATE = "RUN", "CLOSE", "TERMINATE"

_init_lock = threading.Lock()
_initialized: set[str] = set()  # pool tokens whose initializer ran in this process (no __globals__)


class PoolFunction:
    """What the executor runs: the user's function, preceded once per worker process by the initializer.

    The initializer and the function travel in one pickle, so that a function
    pickled by value (defined in ``__main__``) sees the globals the initializer
    set. The "ran already" mark lives in the initializer's globals, so it is
    per process for importable functions and per unpickled copy otherwise.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        token: str = "",
    ) -> None:
        self.func, self.initializer, self.initargs, self.token = func, initializer, tuple(initargs), token

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.initializer is not None:
            self._initialize(self.initializer)
        return self.func(*args, **kwargs)

    def _initialize(self, initializer: Callable[..., Any]) -> None:
        namespace = getattr(initializer, "__globals__", None)
        mark = f"__xhub_pool_initialized_{self.token}"
        with _init_lock:
            if isinstance(namespace, dict):
                if not namespace.get(mark):
                    initializer(*self.initargs)
                    namespace[mark] = True
            elif self.token not in _initialized:
                initializer(*self.initargs)
                _initialized.add(self.token)


class _Starred(PoolFunction):
    """A :class:`PoolFunction` called with one tuple of positional arguments (``starmap``)."""

    def __call__(self, args: tuple[Any, ...]) -> Any:
        return super().__call__(*args)


class _Applied(PoolFunction):
    """A :class:`PoolFunction` called with ``(args, kwargs)`` (``apply_async``)."""

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return super().__call__(*args, **kwargs)


def _outcome(future: ResponseFuture) -> tuple[Any, BaseException | None]:
    """A settled future's value or exception, the exception carrying the remote traceback as its
    ``__cause__`` (a :class:`multiprocessing.pool.RemoteTraceback`, as the standard library's pool does)."""
    try:
        return future.result(), None
    except BaseException as exc:
        trace = getattr(exc, "remote_traceback", None)
        if trace and exc.__cause__ is None:
            remote = multiprocessing.pool.RemoteTraceback  # type: ignore[attr-defined]
            exc.__cause__ = remote(f'\n"""\n{trace}"""')
        return None, exc


class AsyncResult:
    """The result of ``apply_async``/``map_async``/``starmap_async`` (as in the standard library).

    Without callbacks, the result of a ``map`` on the local backend reads its calls'
    outcomes from the executor's batch (:meth:`FunctionExecutor.map_each`): no future is
    made per call unless a call fails (then the first failure by position is raised, with
    its remote traceback, as the standard library does).
    """

    def __init__(
        self,
        futures: list[ResponseFuture],
        *,
        single: bool,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> None:
        self._futures, self._single = futures, single
        self._callback, self._error_callback = callback, error_callback
        self._event = threading.Event()
        batched = isinstance(futures, FuturesList) and futures.batch is not None
        #: the lazy list of a map whose outcomes are read from its batch (no callbacks to run)
        self._batched: FuturesList | None = futures if batched and callback is error_callback is None else None  # type: ignore[assignment]
        if self._batched is not None:
            return
        self._lock = threading.Lock()
        self._remaining = len(futures)
        if not futures:
            self._complete()
        for f in futures:
            f.add_done_callback(self._on_done)

    def _on_done(self, _: ResponseFuture) -> None:
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self._complete()

    def _complete(self) -> None:
        try:
            error = self._first_exception()
            if error is not None:
                if self._error_callback is not None:
                    self._error_callback(error)
            elif self._callback is not None:
                self._callback(self._value())
        finally:
            self._event.set()

    def _first_exception(self) -> BaseException | None:
        return next((e for e in (_outcome(f)[1] for f in self._futures) if e is not None), None)

    def _value(self) -> Any:
        values = [_outcome(f)[0] for f in self._futures]
        return values[0] if self._single else values

    def _batch(self) -> Any:
        """The executor's batch of a map read from it, while its futures are not made; else ``None``."""
        lazy = self._batched
        batch = None if lazy is None else lazy.batch
        return batch if batch is not None and batch.futures is None else None

    def ready(self) -> bool:
        if self._batched is None:
            return self._event.is_set()
        batch = self._batch()
        return batch.left == 0 if batch is not None else all(f.done for f in self._futures)

    def wait(self, timeout: float | None = None) -> None:
        lazy = self._batched
        if lazy is None:
            self._event.wait(timeout)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        batch = self._batch()
        if batch is not None:
            lazy.executor._signal.wait_until(lambda: batch.left == 0 or batch.futures is not None, timeout)
            if batch.futures is None:
                return  # done, or the time is up
        # the futures were made (another thread looked at the list): wait for them, in the time left
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        lazy.executor.wait(list(self._futures), throw_except=False, timeout=left)

    def successful(self) -> bool:
        """Whether the call(s) succeeded; ``ValueError`` if not ready yet (as in the standard library)."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        batch = self._batch()
        if batch is not None:
            with batch.signal:  # ``left`` and ``errors`` change together under it
                if batch.futures is None:
                    return batch.errors == 0  # type: ignore[no-any-return]
        return self._first_exception() is None

    def get(self, timeout: float | None = None) -> Any:
        """The result (a list for the ``map`` family); re-raises a call's exception.

        Raises :class:`multiprocessing.TimeoutError` if not ready after ``timeout`` seconds.
        """
        self.wait(timeout)
        if not self.ready():
            raise multiprocessing.TimeoutError(f"result not ready after {timeout}s")
        batch = self._batch()
        if batch is not None and batch.errors == 0:
            assert self._batched is not None
            values = self._batched.executor._deliver_batch(batch, True, None, False)
            if values is not None:  # else: a result holds futures, or they were made: read them
                return values[0] if self._single else values
        error = self._first_exception()
        if error is not None:
            raise error
        return self._value()


class IMapIterator(Iterator[Any]):
    """Results of ``imap`` (in order) or ``imap_unordered`` (as they complete); ``next(timeout)`` too."""

    def __init__(self, futures: list[ResponseFuture], *, ordered: bool, error: Exception | None = None) -> None:
        self._futures, self._ordered, self._index, self._error = futures, ordered, 0, error
        self._settled: queue.SimpleQueue[ResponseFuture] = queue.SimpleQueue()
        self._done: set[int] = set()
        self._changed = threading.Condition()
        for f in futures:
            f.add_done_callback(self._on_done)

    def _on_done(self, future: ResponseFuture) -> None:
        if self._ordered:
            with self._changed:
                self._done.add(id(future))
                self._changed.notify_all()
        else:
            self._settled.put(future)

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        if self._index >= len(self._futures):
            error, self._error = self._error, None
            if error is not None:
                raise error
            raise StopIteration
        if self._ordered:
            future = self._futures[self._index]
            with self._changed:
                if not self._changed.wait_for(lambda: id(future) in self._done, timeout):
                    raise multiprocessing.TimeoutError(f"no result within {timeout}s")
                self._done.discard(id(future))
        else:
            try:
                future = self._settled.get(timeout=timeout)
            except queue.Empty:
                raise multiprocessing.TimeoutError(f"no result within {timeout}s") from None
        self._index += 1
        value, failure = _outcome(future)
        if failure is not None:
            raise failure
        return value


class Pool:
    """A pool of workers on any backend, with the standard library's methods.

    Args:
        processes: number of workers (default: the backend's default, e.g. CPU cores).
        initializer: called as ``initializer(*initargs)`` once in each worker process
            before its first task of this pool.
        initargs: arguments of ``initializer``.
        maxtasksperchild: on the local backend, a worker process is replaced after this many
            tasks; ``None`` (default): workers live as long as the pool. Other backends: ``None`` only.
        backend: compute backend name or instance (default: ``settings.executor.backend``).
        settings: explicit settings (default: ``XHUB_*`` environment and config file).
        backend_options: passed to the backend's constructor.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        *,
        backend: str | Backend | None = None,
        settings: Settings | None = None,
        **backend_options: Any,
    ) -> None:
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild < 1):
            raise ValueError("maxtasksperchild must be a positive int or None")
        settings = settings or default_settings()
        name = backend.name if isinstance(backend, Backend) else backend or settings.executor.backend
        initargs = tuple(initargs)
        if name == "local" and not isinstance(backend, Backend):
            # The local backend runs the initializer in each worker as it starts (as the standard
            # library does, even if no task ever comes) and recycles workers after maxtasksperchild.
            backend_options.setdefault("max_calls_per_worker", maxtasksperchild)
            if initializer is not None:
                backend_options.setdefault("initializer", (initializer, initargs))
            initializer, initargs = None, ()
        elif maxtasksperchild is not None:
            raise NotImplementedError(
                f"maxtasksperchild is not supported on the {name!r} backend: its workers are the engine's "
                "and are reused across tasks; use the local backend for worker recycling"
            )
        self._executor = FunctionExecutor(
            backend, workers=processes, settings=settings, progress=False, **backend_options
        )
        self._processes = processes or self._executor.backend.workers
        self._initializer, self._initargs = initializer, initargs
        self._token = uuid.uuid4().hex
        self._state = _RUN
        if "initializer" in backend_options:
            self._executor._ensure_started()  # start the workers now: each runs the initializer

    def __del__(self, _warn: Callable[..., None] = warnings.warn, RUN: str = _RUN) -> None:
        if getattr(self, "_state", None) == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, source=self)
            executor = getattr(self, "_executor", None)
            if executor is not None:
                executor.close(wait=False)

    def __repr__(self) -> str:
        backend = self._executor.backend.name
        return f"<xtremehub.multiprocessing.Pool state={self._state} pool_size={self._processes} backend={backend}>"

    @property
    def executor(self) -> FunctionExecutor:
        """The executor behind the pool (for ``job_summary()``, ``plot()``)."""
        return self._executor

    # -- submitting -----------------------------------------------------------------------
    def _check_running(self) -> None:
        if self._state != _RUN:
            raise ValueError("Pool not running")

    def _function(self, func: Callable[..., Any], kind: type[PoolFunction] = PoolFunction) -> PoolFunction:
        if not callable(func):
            raise TypeError(f"expected a callable, got {type(func).__name__}")
        return kind(func, self._initializer, self._initargs, self._token)

    def _map(
        self, func: Callable[..., Any], items: Iterable[Any], star: bool, chunksize: int | None
    ) -> list[ResponseFuture]:
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        if star:
            return self._executor.map_each(self._function(func, _Starred), [tuple(i) for i in items], chunksize)
        return self._executor.map_each(self._function(func), items, chunksize)

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult:
        self._check_running()
        # One call with two positional arguments (a tuple is unpacked, in Lithops's convention too),
        # so the executor pickles them, as a call's arguments, when the call is submitted.
        applied = self._function(func, _Applied)
        future = self._executor.call_async(applied, (tuple(args), dict(kwds or {})))
        return AsyncResult([future], single=True, callback=callback, error_callback=error_callback)

    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Mapping[str, Any] | None = None) -> Any:
        return self.apply_async(func, args, kwds).get()

    def map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult:
        futures = self._map(func, iterable, False, chunksize)
        return AsyncResult(futures, single=False, callback=callback, error_callback=error_callback)

    def map(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        return self.map_async(func, iterable, chunksize).get()  # type: ignore[no-any-return]

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult:
        futures = self._map(func, iterable, True, chunksize)
        return AsyncResult(futures, single=False, callback=callback, error_callback=error_callback)

    def starmap(
        self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]], chunksize: int | None = None
    ) -> list[Any]:
        return self.starmap_async(func, iterable, chunksize).get()  # type: ignore[no-any-return]

    def imap(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1) -> IMapIterator:
        """Results in input order, each as soon as it and those before it are done."""
        return self._imap(func, iterable, chunksize, ordered=True)

    def imap_unordered(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1) -> IMapIterator:
        """Results in completion order."""
        return self._imap(func, iterable, chunksize, ordered=False)

    def _imap(
        self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int, *, ordered: bool
    ) -> IMapIterator:
        self._check_running()
        items: list[Any] = []
        error: Exception | None = None
        try:
            items.extend(iterable)
        except Exception as exc:
            # As the standard library's: the results of the whole chunks read before the
            # iterable failed come first, then next() raises the iterable's exception.
            error = exc
            del items[len(items) - len(items) % max(chunksize, 1) :]
        futures = self._map(func, items, False, chunksize if chunksize > 1 else None)
        return IMapIterator(futures, ordered=ordered, error=error)

    @property
    def _pool(self) -> list[Any]:
        """The worker processes (local backend), as the standard library's attribute."""
        backend = self._executor.backend
        if not isinstance(backend, LocalBackend):
            raise AttributeError(f"the {backend.name!r} backend's workers are not processes of this pool")
        self._executor._ensure_started()
        return backend.processes()

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """No more tasks; those submitted still run (``join`` waits for them)."""
        if self._state == _RUN:
            self._state = _CLOSE

    def terminate(self) -> None:
        """Stop the workers now; unfinished tasks fail with :class:`~xtremehub.errors.ExecutorClosed`."""
        self._state = _TERMINATE
        self._executor.close(wait=False)

    def join(self) -> None:
        """Wait for the workers to finish (after ``close`` or ``terminate``)."""
        if self._state == _RUN:
            raise ValueError("Pool is still running")
        self._executor.close(wait=True)

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.terminate()  # as the standard library's Pool does
