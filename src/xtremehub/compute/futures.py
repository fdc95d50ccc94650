"""Futures that a Lithops user knows: ``status()``, ``result()``, ``done()``, plus timings.

Futures are deliberately light (no lock or condition each): all futures of one
executor share one :class:`Signal`, which the executor notifies once per batch
of outcomes a backend reports. Waiting is a predicate check on that signal.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from xtremehub.compute.task import Outcome
from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.errors import TaskError

__all__ = ["ALL_COMPLETED", "ALWAYS", "ANY_COMPLETED", "FuturesList", "ResponseFuture", "Signal"]

ALL_COMPLETED = "ALL_COMPLETED"
ANY_COMPLETED = "ANY_COMPLETED"
#: Lithops's "do not wait": return what is done right now.
ALWAYS = "ALWAYS"

_NEW, _QUEUED, _RUNNING, _SUCCESS, _ERROR = "new", "queued", "running", "success", "error"
_UNSET = object()


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
    """

    __slots__ = (
        "_attempts",
        "_callbacks",
        "_exception",
        "_outcome",
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
        self, job_id: str, call_id: int, signal: Signal, *, produce_output: bool = True, backend: str = ""
    ) -> None:
        self.job_id = job_id
        self.call_id = call_id
        self.backend = backend
        self.produce_output = produce_output
        self._signal = signal
        self._state = _NEW
        self._value: Any = _UNSET
        self._exception: BaseException | None = None
        self._outcome: Outcome | None = None
        self._attempts = 0
        self._submit: float | None = None
        self._callbacks: list[Callable[[ResponseFuture], None]] = []

    def __repr__(self) -> str:
        return f"<ResponseFuture {self.call_key} {self._state}>"

    @property
    def call_key(self) -> str:
        return f"{self.job_id}/{self.call_id:05d}"

    def status(self) -> str:
        """``new``, ``queued``, ``running``, ``success`` or ``error``."""
        return self._state

    def done(self) -> bool:
        return self._state in (_SUCCESS, _ERROR)

    def running(self) -> bool:
        return self._state == _RUNNING

    def _wait(self, timeout: float | None) -> None:
        if not self.done() and not self._signal.wait_until(self.done, timeout):
            raise cf.TimeoutError(f"call {self.call_key} not done after {timeout}s")

    def result(self, timeout: float | None = None, throw_except: bool = True) -> Any:
        """The call's return value; re-raises the remote exception (its traceback attached as a note)."""
        self._wait(timeout)
        if self._exception is not None:
            if throw_except:
                raise self._exception
            return None
        if self._value is _UNSET:
            assert self._outcome is not None
            self._value = pickle.loads(self._outcome.payload)  # unpickled once, on first use
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return self._exception

    def add_done_callback(self, fn: Callable[[ResponseFuture], None]) -> None:
        """Call ``fn(future)`` when it settles (at once if it already has)."""
        with self._signal:
            if not self.done():
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
            stats.update(_worker_figures(self._outcome))
        return stats

    @property
    def telemetry(self) -> TaskTelemetry | None:
        """This call's telemetry record, or ``None`` while it is not done."""
        if not self.done():
            return None
        o, exc = self._outcome, self._exception
        if o is not None and not o.ok:
            error_type = o.error_type
        else:  # o is None: never answered (worker died, executor closed, a reducer's input failed)
            error_type = "" if exc is None else f"{type(exc).__module__}.{type(exc).__qualname__}"
        return TaskTelemetry(
            job_id=self.job_id,
            call_id=self.call_id,
            backend=self.backend,
            status="success" if exc is None else "error",
            error_type=error_type,
            submit=self._submit,
            attempts=self._attempts if o is None else max(self._attempts, o.attempt + 1),
            **({} if o is None else _worker_figures(o)),
        )

    # -- called by the executor (one thread at a time per future) ----------------------
    def _mark_queued(self, submit_time: float) -> None:
        self._state = _QUEUED
        self._submit = submit_time

    def _mark_running(self) -> None:
        if self._state in (_NEW, _QUEUED):
            self._state = _RUNNING

    def _resolve(self, outcome: Outcome, attempts: int) -> list[Callable[[], None]]:
        """Settle from a worker's outcome; returns callbacks to run after notifying waiters."""
        self._outcome, self._attempts = outcome, attempts
        if outcome.ok:
            return self._settle(None)
        return self._settle(remote_exception(outcome, self.call_key))

    def _fail(self, exc: BaseException, attempts: int) -> list[Callable[[], None]]:
        self._attempts = attempts
        return self._settle(exc)

    def _settle(self, exc: BaseException | None) -> list[Callable[[], None]]:
        """Record the result; returns the done-callbacks, bound, for the caller to run
        after it has woken the waiters (never while holding the signal)."""
        if self.done():
            return []
        with self._signal:
            self._exception = exc
            self._state = _SUCCESS if exc is None else _ERROR
            callbacks, self._callbacks = self._callbacks, []
        return [functools.partial(fn, self) for fn in callbacks]


def _worker_figures(o: Outcome) -> dict[str, Any]:
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
        "result_size": len(o.payload) if o.ok else 0,
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


class FuturesList(list[ResponseFuture]):
    """A list of futures with Lithops's convenience methods."""

    def result(self, timeout: float | None = None, throw_except: bool = True) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for f in self:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(f.result(left, throw_except))
        return out

    def done(self) -> bool:
        return all(f.done() for f in self)
