"""Futures that a Lithops user knows: ``result()``, ``status()``, the ``done``/``running``/
``ready``/``success``/``error`` properties, plus timings.

Futures are deliberately light (no lock or condition each): all futures of one
executor share one :class:`Signal`, which the executor notifies once per batch
of outcomes a backend reports. Waiting is a predicate check on that signal.

A finished future pickles with its result (not its executor's lock or signal), so a
task may return futures of an executor it created, and futures may travel as
``iterdata``; pickling an unfinished future is a :class:`TypeError`.

Example:
    >>> import pickle
    >>> from xtremehub import FunctionExecutor
    >>> with FunctionExecutor(max_workers=1) as fexec:
    ...     future = fexec.call_async(pow, (2, 5))
    ...     _ = future.result()
    >>> copy = pickle.loads(pickle.dumps(future))
    >>> copy.done, copy.success, copy.error, copy.result()
    (True, True, False, 32)
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from xtremehub.compute.task import Outcome, without_payload
from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.errors import ConfigError, TaskError

__all__ = [
    "ALL_COMPLETED",
    "ALWAYS",
    "ANY_COMPLETED",
    "UNSET",
    "FuturesList",
    "ResponseFuture",
    "Signal",
    "load_values",
    "nested_futures",
    "return_when_code",
    "settle_future",
    "settle_many",
    "telemetry_record",
]

#: ``wait(return_when=...)``: Lithops's integer constants. A value between 1 and 99 means
#: "that percentage of the futures is done" (as Lithops's ``spawn_reducer``).
ALL_COMPLETED = 100
ANY_COMPLETED = -1
#: Lithops's "do not wait": return what is done right now.
ALWAYS = 0
#: The names accepted before the constants became Lithops's integers.
_CONSTANT_NAMES = {"ALL_COMPLETED": ALL_COMPLETED, "ANY_COMPLETED": ANY_COMPLETED, "ALWAYS": ALWAYS}

_NEW, _QUEUED, _RUNNING, _SUCCESS, _ERROR = "new", "queued", "running", "success", "error"
_UNSET = object()
#: A future's value before its result is unpickled (read by the executor's bulk delivery).
UNSET = _UNSET


class Signal(threading.Condition):
    """The condition shared by an executor's futures; notified when any of them settles."""

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` is true or ``timeout`` seconds pass; returns the predicate."""
        with self:
            return self.wait_for(predicate, timeout)


class ResponseFuture:
    """The future result of one call.

    ``stats`` holds what the worker reported: ``submit``, ``start``, ``end``
    (epoch seconds), ``worker``, ``host``, ``attempts``, ``cpu_user``,
    ``cpu_system``, ``peak_rss``, ``bytes_read``, ``bytes_written``, ``result_size``.
    ``telemetry`` gives the same as a versioned
    :class:`~xtremehub.compute.telemetry.TaskTelemetry` record once the call is done.

    As in Lithops, ``done``, ``running``, ``ready``, ``success``, ``error``, ``new``,
    ``invoked`` and ``futures`` are properties, not methods.
    """

    __slots__ = (
        "__weakref__",
        "_attempts",
        "_callbacks",
        "_exception",
        "_on_read",
        "_outcome",
        "_read",
        "_result_size",
        "_signal",
        "_state",
        "_submit",
        "_value",
        "backend",
        "call_id",
        "job_id",
        "produce_output",
    )

    def __init__(
        self,
        job_id: str,
        call_id: int,
        signal: Signal,
        *,
        produce_output: bool = True,
        backend: str = "",
        submit: float | None = None,
        on_read: Callable[[ResponseFuture], None] | None = None,
    ) -> None:
        self.job_id = job_id
        self.call_id = call_id
        self.backend = backend
        self.produce_output = produce_output
        self._signal = signal
        self._state = _NEW if submit is None else _QUEUED
        self._value: Any = _UNSET
        self._exception: BaseException | None = None
        self._outcome: Outcome | None = None
        self._attempts = 0
        self._submit = submit
        self._callbacks: list[Callable[[ResponseFuture], None]] = []
        self._read = False  # the result was delivered to the caller
        self._result_size = 0
        self._on_read = on_read  # the executor forgets the future then

    def __repr__(self) -> str:
        return f"<ResponseFuture {self.call_key} {self._state}>"

    # -- pickling: the result travels, the executor's signal and callbacks do not -----------
    def __getstate__(self) -> dict[str, Any]:
        if not self.done:
            raise TypeError(
                f"cannot pickle the unfinished future of call {self.call_key}: wait for it first "
                "(a task that returns futures has them waited for before its result is sent)"
            )
        return {
            "job_id": self.job_id,
            "call_id": self.call_id,
            "backend": self.backend,
            "produce_output": self.produce_output,
            "state": self._state,
            "value": None if self._value is _UNSET else self._value,
            "has_value": self._value is not _UNSET,
            "exception": self._exception,
            "outcome": self._outcome,
            "attempts": self._attempts,
            "submit": self._submit,
            "result_size": self._result_size,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["job_id"],
            state["call_id"],
            Signal(),
            produce_output=state["produce_output"],
            backend=state["backend"],
        )
        self._state, self._exception = state["state"], state["exception"]
        self._value = state["value"] if state["has_value"] else _UNSET
        self._outcome, self._attempts, self._submit = state["outcome"], state["attempts"], state["submit"]
        self._result_size = state["result_size"]

    @property
    def call_key(self) -> str:
        return f"{self.job_id}/{self.call_id:05d}"

    def status(self, throw_except: bool = True, internal_storage: Any = None, check_only: bool = False) -> str:
        """``new``, ``queued``, ``running``, ``success`` or ``error``.

        As in Lithops, a failed call's exception is raised unless ``throw_except`` is
        false; ``internal_storage`` and ``check_only`` are accepted for Lithops code.
        """
        if throw_except and self._exception is not None:
            raise self._exception
        return self._state

    # -- Lithops's state properties ----------------------------------------------------------
    @property
    def done(self) -> bool:
        """The call finished (successfully or not): its result or exception is here."""
        return self._state in (_SUCCESS, _ERROR)

    @property
    def running(self) -> bool:
        return self._state == _RUNNING

    @property
    def new(self) -> bool:
        return self._state == _NEW

    @property
    def invoked(self) -> bool:
        """Submitted to the backend, not started yet."""
        return self._state == _QUEUED

    @property
    def ready(self) -> bool:
        """Finished and its result not read yet (Lithops: finished, output not fetched)."""
        return self.done and not self._read

    @property
    def success(self) -> bool:
        """The call's final status is known, as in Lithops: also true when it raised (see ``error``)."""
        return self.done

    @property
    def error(self) -> bool:
        """The call raised (or could not run)."""
        return self._state == _ERROR

    @property
    def futures(self) -> bool:
        """The call returned futures (of an executor it created); ``get_result`` resolves them."""
        return self._state == _SUCCESS and bool(nested_futures(self._load_value()))

    def _wait(self, timeout: float | None) -> None:
        if not self.done and not self._signal.wait_until(lambda: self.done, timeout):
            raise cf.TimeoutError(f"call {self.call_key} not done after {timeout}s")

    def result(self, timeout: float | None = None, throw_except: bool = True, internal_storage: Any = None) -> Any:
        """The call's return value; re-raises the remote exception (its traceback attached as a note).

        ``internal_storage`` is accepted for Lithops code and ignored.
        """
        self._wait(timeout)
        if self._exception is not None:
            if throw_except:
                raise self._exception
            self._mark_read()
            return None
        value = self._load_value()
        self._mark_read()
        return value

    def _mark_read(self) -> None:
        """The result was delivered: the executor no longer needs to hold this future."""
        if not self._read:
            self._read = True
            on_read, self._on_read = self._on_read, None
            if on_read is not None:
                on_read(self)

    def _load_value(self) -> Any:
        # Read the outcome before the value: a thread that published the value replaced the
        # outcome's payload after, so seeing the emptied payload means the value is there.
        outcome, value = self._outcome, self._value
        if value is not _UNSET:
            return value
        assert outcome is not None
        value = pickle.loads(outcome.payload)  # outside the executor-wide lock: it may be large
        with self._signal:
            if self._value is _UNSET:  # unpickled once, on first use; the first of racing readers wins
                self._value = value
                self._result_size = len(outcome.payload)
                self._outcome = without_payload(outcome)  # the value is kept, not both
            return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return self._exception

    def cancel(self) -> bool:
        """Calls cannot be cancelled once submitted (as in Lithops)."""
        raise NotImplementedError("a submitted call cannot be cancelled")

    def cancelled(self) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[ResponseFuture], None]) -> None:
        """Call ``fn(future)`` when it settles (at once if it already has)."""
        with self._signal:
            if not self.done:
                self._callbacks.append(fn)
                return
        fn(self)

    @property
    def stats(self) -> dict[str, Any]:
        """Timings and resource use reported for this call (complete once it is done)."""
        stats: dict[str, Any] = {"attempts": self._attempts}
        if self._submit is not None:
            stats["submit"] = self._submit
        if self._outcome is not None:
            stats.update(_worker_figures(self._outcome, self._result_size))
        return stats

    @property
    def telemetry(self) -> TaskTelemetry | None:
        """This call's telemetry record, or ``None`` while it is not done."""
        if not self.done:
            return None
        return telemetry_record(self._telemetry_source())

    def _telemetry_source(self) -> _TelemetrySource:
        """What :func:`telemetry_record` needs, without the result (kept once the future is dropped).

        Cheaper than the record itself: an executor keeps this for every delivered result and
        builds the records only when asked (``job_summary``).
        """
        o, size = self._outcome, self._result_size
        if o is not None and o.payload:
            size = len(o.payload) if o.ok else 0
            o = without_payload(o)
        return (self.job_id, self.call_id, self.backend, self._submit, self._attempts, o, self._exception, size)

    # -- called by the executor (one thread at a time per future) ----------------------
    def _mark_queued(self, submit_time: float) -> None:
        self._state = _QUEUED
        self._submit = submit_time

    def _mark_running(self) -> None:
        if self._state in (_NEW, _QUEUED):
            self._state = _RUNNING

    def _resolve(self, outcome: Outcome, attempts: int) -> list[Callable[[], None]]:
        """Settle from a worker's outcome; returns callbacks to run after notifying waiters."""
        return self._settle(None if outcome.ok else remote_exception(outcome, self.call_key), attempts, outcome)

    def _fail(self, exc: BaseException, attempts: int) -> list[Callable[[], None]]:
        return self._settle(exc, attempts)

    def _settle(
        self, exc: BaseException | None, attempts: int, outcome: Outcome | None = None
    ) -> list[Callable[[], None]]:
        """Record the result, once: the first of racing settlers (an outcome arriving as the
        call times out) wins. Returns the done-callbacks, bound, for the caller to run after
        it has woken the waiters (never while holding the signal)."""
        with self._signal:
            if self.done:
                return []
            if outcome is not None:
                self._outcome = outcome
            self._attempts = attempts
            self._exception = exc
            self._state = _SUCCESS if exc is None else _ERROR
            callbacks, self._callbacks = self._callbacks, []
        return [functools.partial(fn, self) for fn in callbacks]


#: ``(job_id, call_id, backend, submit, attempts, payload-free outcome, exception, result size)``
_TelemetrySource = tuple[str, int, str, "float | None", int, "Outcome | None", "BaseException | None", int]


def telemetry_record(source: _TelemetrySource) -> TaskTelemetry:
    """The telemetry record of a finished call from its :meth:`ResponseFuture._telemetry_source`."""
    job_id, call_id, backend, submit, attempts, o, exc, result_size = source
    if o is not None and not o.ok:
        error_type = o.error_type
    else:  # o is None: never answered (worker died, executor closed, a reducer's input failed)
        error_type = "" if exc is None else f"{type(exc).__module__}.{type(exc).__qualname__}"
    return TaskTelemetry(
        job_id=job_id,
        call_id=call_id,
        backend=backend,
        status="success" if exc is None else "error",
        error_type=error_type,
        submit=submit,
        attempts=attempts if o is None else max(attempts, o.attempt + 1),
        **({} if o is None else _worker_figures(o, result_size)),
    )


def settle_future(future: ResponseFuture, exc: BaseException | None, attempts: int, outcome: Outcome | None) -> None:
    """Record a future's final state (its signal held, its done-callbacks left to the caller)."""
    if outcome is not None:
        future._outcome = outcome
    future._attempts = attempts
    future._exception = exc
    future._state = _SUCCESS if exc is None else _ERROR


def settle_many(
    signal: Signal,
    settled: list[tuple[ResponseFuture, Outcome | BaseException, int]],
    slots: list[tuple[Any, int, Outcome | BaseException, int]] | None = None,
) -> list[Callable[[], None]]:
    """Settle many futures of one executor at once, notifying its waiters once.

    Each item is ``(future, outcome or error, attempts)``; as :meth:`ResponseFuture._settle`,
    the first settler of a future wins. ``slots`` are ``(CallBatch, call index, outcome or
    error, attempts)`` of calls whose futures were not made (see
    :mod:`xtremehub.compute.batch`); a batch whose futures exist hands back the future. The
    signal is taken once for the whole batch, not once per future. Returns the
    done-callbacks, bound, to run outside the signal.
    """
    callbacks: list[Callable[[], None]] = []
    with signal:
        for batch, i, result, attempts in slots or ():
            future = batch.settle(i, result, attempts)
            if future is not None:
                settled.append((future, result, attempts))
        for future, result, attempts in settled:
            if future._state is _SUCCESS or future._state is _ERROR:
                continue
            if isinstance(result, BaseException):
                settle_future(future, result, attempts, None)
            else:
                exc = None if result.ok else remote_exception(result, future.call_key)
                settle_future(future, exc, attempts, result)
            if future._callbacks:
                callbacks += [functools.partial(fn, future) for fn in future._callbacks]
                future._callbacks = []
        signal.notify_all()
    return callbacks


def load_values(futures: list[ResponseFuture]) -> None:
    """Unpickle the results of the successful futures among ``futures`` whose values are not loaded yet.

    The same as :meth:`ResponseFuture._load_value` on each, with each future's signal taken
    once for the whole list rather than once per future.
    """
    loaded: list[tuple[ResponseFuture, Any, Outcome]] = []
    for f in futures:
        outcome = f._outcome
        if f._state is _SUCCESS and f._value is _UNSET and outcome is not None:
            loaded.append((f, pickle.loads(outcome.payload), outcome))
    if not loaded:
        return
    signal = loaded[0][0]._signal
    with signal:
        for f, value, outcome in loaded:
            if f._signal is signal and f._value is _UNSET:
                f._value = value
                f._result_size = len(outcome.payload)
                f._outcome = without_payload(outcome)
    for f, _, _ in loaded:
        if f._signal is not signal:  # futures of another executor (rare): one at a time
            f._load_value()


def _worker_figures(o: Outcome, result_size: int = 0) -> dict[str, Any]:
    """What the worker measured, by ``stats``/``TaskTelemetry`` field name."""
    return {
        "start": o.start,
        "end": o.end,
        "worker": o.worker,
        "host": o.host,
        "cpu_user": o.cpu_user,
        "cpu_system": o.cpu_system,
        "peak_rss": o.peak_rss,
        "bytes_read": o.bytes_read,
        "bytes_written": o.bytes_written,
        "result_size": (len(o.payload) or result_size) if o.ok else 0,
    }


def remote_exception(outcome: Outcome, call_key: str) -> BaseException:
    """Rebuild the remote exception, with the remote traceback attached as a note."""
    note = f"Remote traceback (call {call_key} on {outcome.host}, {outcome.worker}):\n{outcome.remote_traceback}"
    exc: BaseException | None = None
    if outcome.payload:
        try:
            exc = pickle.loads(outcome.payload)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = TaskError(
            f"call {call_key} raised {outcome.error_type}: {outcome.error_message}",
            outcome.error_type,
            outcome.remote_traceback,
        )
    exc.remote_traceback = outcome.remote_traceback  # type: ignore[attr-defined]
    exc.add_note(note)
    return exc


def nested_futures(value: Any) -> list[ResponseFuture] | None:
    """The futures a call returned (one future, or a non-empty list/tuple of them), else ``None``.

    Example:
        >>> nested_futures([1, 2]) is None
        True
    """
    if isinstance(value, ResponseFuture):
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(v, ResponseFuture) for v in value):
        return list(value)
    return None


def return_when_code(return_when: int | str) -> int:
    """Lithops's integer for ``return_when`` (the old names are still accepted)."""
    code = _CONSTANT_NAMES.get(return_when, return_when) if isinstance(return_when, str) else return_when
    if not isinstance(code, int) or isinstance(code, bool) or not (code in (ANY_COMPLETED, ALWAYS) or 0 < code <= 100):
        raise ConfigError(
            f"return_when must be ALWAYS (0), ANY_COMPLETED (-1), ALL_COMPLETED (100) or a percentage, "
            f"not {return_when!r}"
        )
    return code


class FuturesList(list[ResponseFuture]):
    """A list of futures with Lithops's convenience methods, chainable like Lithops's.

    ``fexec.map(f, data).map(g)`` runs ``g`` over the results of ``f`` (this list then
    holds ``g``'s futures); ``get_result()``/``wait()`` act on the whole chain.

    The list that ``map`` returns may hold its futures unmade (a
    :class:`~xtremehub.compute.batch.CallBatch`): they are made the first time the list
    is looked at as a list (``len``, indexing, iterating, comparing, changing it, pickling),
    so ``fexec.get_result(fexec.map(...))`` never makes one future per call.

    Example:
        >>> from xtremehub import FunctionExecutor
        >>> def inc(x):
        ...     return x + 1
        >>> with FunctionExecutor(max_workers=1) as fexec:
        ...     fexec.map(inc, [1, 2]).map(inc).get_result()
        [3, 4]
    """

    #: The executor that made it (``None`` for lists built by hand or unpickled).
    executor: Any = None
    #: The calls whose futures are not made yet (see :mod:`xtremehub.compute.batch`).
    batch: Any = None

    @classmethod
    def of_batch(cls, executor: Any, batch: Any) -> FuturesList:
        """A list of ``batch``'s futures, made when the list is first looked at."""
        futures = cls()
        futures.executor, futures.batch = executor, batch
        return futures

    def _materialize(self) -> None:
        batch = self.batch
        if batch is None:
            return
        made = self.executor._materialize(batch)
        with batch.signal:
            if self.batch is batch:
                list.extend(self, made)
                self.batch = None

    def _all_futures(self) -> list[ResponseFuture]:
        return getattr(self, "alt_list", self)

    def _executor(self) -> Any:
        if self.executor is None:
            from xtremehub.compute.executor import FunctionExecutor

            self.executor = FunctionExecutor()
        return self.executor

    def _extend_futures(self, fs: list[ResponseFuture]) -> None:
        for f in self:
            f.produce_output = False  # only the last job of a chain produces the chain's output
        if not hasattr(self, "alt_list"):
            self.alt_list = list(self)
        self.alt_list.extend(fs)
        self.clear()
        self.extend(fs)

    def map(self, map_function: Callable[..., Any], sync: bool = False, **kwargs: Any) -> FuturesList:
        """Chain a map over this list's results; returns this list, now holding the new futures."""
        fexec = self._executor()
        if sync:
            fexec.wait(list(self))
        self._extend_futures(fexec.map(map_function, list(self), **kwargs))
        return self

    def map_reduce(
        self, map_function: Callable[..., Any], reduce_function: Callable[..., Any], sync: bool = False, **kwargs: Any
    ) -> FuturesList:
        """Chain a map-reduce over this list's results."""
        fexec = self._executor()
        if sync:
            fexec.wait(list(self))
        self._extend_futures(fexec.map_reduce(map_function, list(self), reduce_function, **kwargs))
        return self

    def wait(self, **kwargs: Any) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
        """Wait for every job of the chain."""
        result: tuple[list[ResponseFuture], list[ResponseFuture]] = self._executor().wait(self._all_futures(), **kwargs)
        return result

    def get_result(self, **kwargs: Any) -> Any:
        """The results of the last job of the chain."""
        return self._executor().get_result(self._all_futures(), **kwargs)

    def result(self, timeout: float | None = None, throw_except: bool = True) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for f in self:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(f.result(left, throw_except))
        return out

    @property
    def done(self) -> bool:
        """Every future of the list is done."""
        return all(f.done for f in self)

    def __reduce__(self) -> Any:
        # the executor does not travel (as in Lithops); an unpickled list makes its own if chained
        return (FuturesList, (list(self),))

    def __radd__(self, other: Any) -> Any:
        self._materialize()
        return list(other) + list(self) if isinstance(other, list) else NotImplemented


def _materializing(name: str) -> Callable[..., Any]:
    """``list``'s method ``name``, making a lazy :class:`FuturesList`'s futures first."""
    method = getattr(list, name)

    @functools.wraps(method)
    def wrapper(self: FuturesList, *args: Any, **kwargs: Any) -> Any:
        if self.batch is not None:
            self._materialize()
        for other in args:  # ``a + b``, ``a == b``: list's C code reads ``b``'s storage as well
            if isinstance(other, FuturesList) and other.batch is not None:
                other._materialize()
        return method(self, *args, **kwargs)

    return wrapper


# Every way of looking at a list's items from Python (the C-level ones read the list's own
# storage, which a lazy list fills before any of these runs).
for _name in (
    "__iter__", "__len__", "__getitem__", "__setitem__", "__delitem__", "__contains__", "__reversed__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__iadd__", "__mul__", "__rmul__",
    "__imul__", "__repr__", "append", "extend", "insert", "pop", "remove", "clear", "index", "count", "sort",
    "reverse", "copy",
):  # fmt: skip
    setattr(FuturesList, _name, _materializing(_name))
