"""What travels between the executor and its workers: calls, outcomes, and how a call runs.

A :class:`Call` is one function invocation (positional and keyword arguments,
already expanded Lithops-style from one ``iterdata`` item). A worker runs it
with :func:`run_calls` (:func:`run_call` for one) and answers with an
:class:`Outcome`: the pickled result, or the pickled exception plus the remote traceback text, plus the call's
telemetry measured on the worker: timings, CPU time, the peak resident set size
of the call, and the bytes it moved through the storage layer. Every backend
runs calls through :func:`run_calls`, so every backend reports the same figures
(see :class:`~xtremehub.compute.telemetry.TaskTelemetry`).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import resource
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import cloudpickle

from xtremehub.storage import iostats

__all__ = [
    "INJECTED_PARAMS",
    "Call",
    "Outcome",
    "WithEnv",
    "dumps",
    "expand_args",
    "reset_peak_rss",
    "run_call",
    "run_calls",
    "without_payload",
]

HOST = socket.gethostname()
# ru_maxrss is in KiB on Linux, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(slots=True)
class Call:
    """One invocation of a job's function."""

    job_id: str
    call_id: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: int = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (Call, (self.job_id, self.call_id, self.args, self.kwargs, self.attempt))


class Outcome(NamedTuple):
    """What a worker reports for one call (always picklable with plain pickle).

    A named tuple: it is built and pickled once per call on the hot path, and a
    tuple is the cheapest thing Python can do either with.
    """

    job_id: str
    call_id: int
    ok: bool
    payload: bytes  # pickled result, or pickled exception (may be b"" if unpicklable)
    error_type: str = ""
    error_message: str = ""
    remote_traceback: str = ""
    start: float = 0.0
    end: float = 0.0
    worker: str = ""
    host: str = HOST
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    peak_rss: int = 0  # bytes; the call's own peak where the OS lets us reset the high-water mark
    bytes_read: int = 0  # through the storage layer, during the call
    bytes_written: int = 0
    attempt: int = 0  # 0 for the first run, n for the n-th retry
    written: tuple[tuple[str, int], ...] = ()  # (url, size) of the objects the call wrote (lineage)


def dumps(obj: Any) -> bytes:
    """Pickle with the fast standard pickler, falling back to cloudpickle (lambdas, closures)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return bytes(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


#: Parameters the executor fills in itself (as Lithops does), never bound from ``iterdata``.
INJECTED_PARAMS = frozenset({"id", "storage", "ibm_cos", "rabbitmq"})


def expand_args(
    item: Any, extra_args: Any = None, func: Callable[..., Any] | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Lithops's calling convention for one ``iterdata`` item.

    A dict becomes keyword arguments, a tuple positional arguments, anything else
    (a list too) a single positional argument; ``extra_args`` is appended (a tuple
    or list positionally, a dict as keywords). Given ``func``, a dict's keys are
    checked against its parameters, and keys named after its ``*args``/``**kwargs``
    parameters are spread into them, as Lithops does.

    Example:
        >>> expand_args({"x": 1}, {"y": 2})
        ((), {'x': 1, 'y': 2})
        >>> expand_args((1, 2), (3,))
        ((1, 2, 3), {})
        >>> expand_args([1, 2])
        (([1, 2],), {})
        >>> def total(a, *args, **kwargs):
        ...     return a + sum(args) + sum(kwargs.values())
        >>> expand_args({"a": 1, "args": (2, 3), "kwargs": {"b": 4}}, func=total)
        ((1, 2, 3), {'b': 4})
    """
    if isinstance(item, dict):
        args: tuple[Any, ...] = ()
        kwargs = dict(item)
    elif isinstance(item, tuple):
        args, kwargs = item, {}
    else:
        args, kwargs = (item,), {}
    if extra_args is not None:
        if isinstance(extra_args, dict):
            kwargs.update(extra_args)
        elif isinstance(extra_args, tuple | list):
            args += tuple(extra_args)
        else:
            args += (extra_args,)
    if kwargs and func is not None:
        args, kwargs = _spread_var_params(func, args, kwargs)
    return args, kwargs


def _spread_var_params(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return args, kwargs
    var_pos = next((n for n, p in params.items() if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    var_kw = next((n for n, p in params.items() if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    if var_kw is None:
        named = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL} | INJECTED_PARAMS
        unknown = [k for k in kwargs if k not in named and k != var_pos]
        if unknown:
            user = [n for n in params if n not in INJECTED_PARAMS]
            raise ValueError(
                f"Check the args names in the data. You provided these args: {list(kwargs)}, "
                f"and the args must be: {user}"
            )
    if var_pos is not None and var_pos in kwargs:
        spread = tuple(kwargs.pop(var_pos) or ())
        if not args:  # the named parameters before *args go positionally too (Lithops passes them by
            # name, which Python refuses once *args is filled: "multiple values for argument")
            for name, p in params.items():
                if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD or name not in kwargs:
                    break
                args += (kwargs.pop(name),)
        args = (*args, *spread)
    if var_kw is not None and var_kw in kwargs and isinstance(kwargs[var_kw], dict):
        kwargs = {**kwargs.pop(var_kw), **kwargs}
    return args, kwargs


class WithEnv:
    """``func`` run with extra environment variables set for the call (``extra_env=``).

    Example:
        >>> import os
        >>> WithEnv(os.environ.get, {"XHUB_DOC_FLAG": "on"})("XHUB_DOC_FLAG"), os.environ.get("XHUB_DOC_FLAG")
        ('on', None)
    """

    def __init__(self, func: Callable[..., Any], env: dict[str, str]) -> None:
        self.func, self.env = func, {str(k): str(v) for k, v in env.items()}
        self.__wrapped__ = func  # signature() sees the user's function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return self.func(*args, **kwargs)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


#: Result types that cannot be or hold futures (``nested_futures`` looks at lists, tuples and futures).
_NEVER_FUTURES = (int, float, str, bytes, bool, dict, type(None))


def without_payload(outcome: Outcome) -> Outcome:
    """``outcome`` with an empty ``payload`` (what telemetry keeps once the result is delivered).

    Faster than ``outcome._replace(payload=b"")``, which runs per delivered result.

    Example:
        >>> o = without_payload(Outcome("j", 0, True, b"data", worker="w"))
        >>> o.payload, o.worker, type(o).__name__
        (b'', 'w', 'Outcome')
    """
    fields = tuple(outcome)
    return tuple.__new__(Outcome, (*fields[:3], b"", *fields[4:]))


def _await_returned_futures(result: Any) -> None:
    """A call that returns futures (of an executor it made) sends them finished."""
    from xtremehub.compute.futures import nested_futures

    for f in nested_futures(result) or ():
        f.exception()  # waits; the future then pickles with its result


def run_call(func: Callable[..., Any], call: Call, worker: str) -> Outcome:
    """Run one call on its own, never raising: any failure becomes an error :class:`Outcome`.

    Its telemetry is the call's alone (a window of one call, see :func:`run_calls`).

    Example:
        >>> o = run_call(abs, Call("j", 0, (-2,), {}), "w")
        >>> o.ok, pickle.loads(o.payload), o.cpu_user >= 0
        (True, 2, True)
    """
    got: list[OutcomeFields] = []
    run_calls([(call.job_id, call.call_id, call.args, call.kwargs, call.attempt)], lambda _: func, worker, got.extend)
    return Outcome._make(got[0])


#: A call shorter than this may share its telemetry window with the calls run right after it.
SHORT_CALL_SECONDS = 0.0001
#: A window of short calls closes once it has lasted this long (and whenever a batch ends).
WINDOW_SECONDS = 0.001

#: An outcome as :func:`run_calls` hands it over: the fields of :class:`Outcome`, in order.
OutcomeFields = tuple[Any, ...]
#: One call as workers receive it: ``(job_id, call_id, args, kwargs, attempt)``.
CallFields = tuple[str, int, tuple[Any, ...], dict[str, Any], int]


def run_calls(
    calls: Iterable[CallFields],
    function_of: Callable[[str], Callable[..., Any] | tuple[BaseException, str]],
    worker: str,
    emit: Callable[[list[OutcomeFields]], None],
) -> None:
    """Run calls back to back, handing their outcomes (plain tuples, :class:`Outcome`'s fields) to
    ``emit`` a telemetry window at a time; never raises for a call's failure.

    ``function_of(job_id)`` gives the job's function, or why its calls cannot run: ``(error,
    reason)``, which becomes each call's error outcome (:func:`failed_fields`).

    Telemetry is measured per *window* of calls, so that calls of a few microseconds do not
    pay two system calls each (``getrusage`` and the ``/proc/self/clear_refs`` write, about
    3 us on a VM, more than the call): a window opens before a call (the CPU clock read, the
    peak-RSS high-water mark reset) and closes after a call that ran at least
    ``SHORT_CALL_SECONDS`` (100 us), after ``WINDOW_SECONDS`` (1 ms), when the job changes and
    when the batch ends. Start and end times are read per call (a clock read that costs no
    system call). A call of 100 us or more is therefore measured with at most 1 ms of shorter
    calls before it; a call that opens its window and lasts 100 us or more, alone, exactly.
    Within a window of several calls, the window's CPU time is split
    among them in proportion to their wall time, and each reports the window's peak RSS (an
    upper bound of its own).

    Example:
        >>> got = []
        >>> run_calls([("j", 0, (-2,), {}, 0), ("j", 1, ("x",), {}, 0)], lambda job: abs, "w", got.extend)
        >>> [(o.call_id, o.ok, o.error_type) for o in map(Outcome._make, got)]
        [(0, True, ''), (1, False, 'builtins.TypeError')]
    """
    getrusage, now, io = resource.getrusage, time.time, iostats.COUNTERS
    # Each call's objects written are what it appended to this list (read per call: starting and
    # stopping the listing per call cost more than a call of a few microseconds).
    writes = iostats.start_writes()
    window: list[tuple[OutcomeFields, OutcomeFields]] = []  # the open window's outcomes, CPU/RSS left out
    durations: list[float] = []
    usage0 = getrusage(resource.RUSAGE_SELF)
    reset_peak_rss()
    opened = now()
    job: str | None = None
    func: Callable[..., Any] | tuple[BaseException, str] = abs

    def close() -> None:
        nonlocal usage0, opened, writes
        if iostats.writes_list() is not writes:  # a call started (or stopped) a listing of its own
            writes = iostats.start_writes()
        usage1 = getrusage(resource.RUSAGE_SELF)
        user, system = usage1.ru_utime - usage0.ru_utime, usage1.ru_stime - usage0.ru_stime
        peak = usage1.ru_maxrss * _MAXRSS_UNIT
        total = sum(durations)
        n = len(window)
        shares = [d / total for d in durations] if total > 0 else [1 / n] * n
        emit([(*head, user * s, system * s, peak, *tail) for (head, tail), s in zip(window, shares, strict=True)])
        window.clear()
        durations.clear()
        usage0 = usage1
        reset_peak_rss()
        opened = now()

    for job_id, call_id, args, kwargs, attempt in calls:
        if job_id != job:
            if window:
                close()
            job = job_id
            func = function_of(job_id)
        read0, written0, listed = io.read, io.written, len(writes)
        start = now()
        tail: OutcomeFields
        if isinstance(func, tuple):
            fields = failed_fields(job_id, call_id, *func, worker)
            head, tail = fields[:11], (0, 0, attempt, ())
        else:
            ok, error_type, error_message, remote_tb = True, "", "", ""
            try:
                result = func(*args, **kwargs)
                if not isinstance(result, _NEVER_FUTURES):  # a cheap test first: this runs once per call
                    _await_returned_futures(result)
                try:
                    payload = dumps(result)
                except Exception as exc:  # the result cannot travel back
                    raise TypeError(f"the result of call {call_id} cannot be pickled: {exc}") from exc
            except BaseException as exc:
                ok, error_type, error_message, remote_tb, payload = False, *_describe(exc)
            head = (job_id, call_id, ok, payload, error_type, error_message, remote_tb, start, now(), worker, HOST)
            written = tuple(writes[listed:]) if len(writes) > listed else ()
            tail = (io.read - read0, io.written - written0, attempt, written)
        window.append((head, tail))
        duration = head[8] - start
        durations.append(duration)
        if duration >= SHORT_CALL_SECONDS or head[8] - opened >= WINDOW_SECONDS:
            close()
    if window:
        close()
    iostats.stop_writes()


def failed_fields(job_id: str, call_id: int, error: BaseException, reason: str, worker: str) -> OutcomeFields:
    """The fields of an error :class:`Outcome` for a call that never ran (``reason: error``).

    Example:
        >>> Outcome._make(failed_fields("j", 3, KeyError("j"), "unknown job", "w")).error_message
        "unknown job: 'j'"
    """
    payload = b""
    with contextlib.suppress(Exception):
        payload = dumps(error)
    when = time.time()
    return (
        job_id,
        call_id,
        False,
        payload,
        f"{type(error).__module__}.{type(error).__qualname__}",
        f"{reason}: {error}",
        f"{reason}: {type(error).__name__}: {error}\n",
        when,
        when,
        worker,
        HOST,
        0.0,
        0.0,
        0,
        0,
        0,
        0,
        (),
    )


def _describe(exc: BaseException) -> tuple[str, str, str, bytes]:
    """A failed call's error type, message, remote traceback and pickled exception (``b""`` if it cannot travel)."""
    error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
    remote_tb = traceback.format_exc()
    try:
        payload = dumps(exc)
        pickle.loads(payload)  # must also come back to life on the other side
    except Exception:
        payload = b""
    return error_type, str(exc), remote_tb, payload


_clear_refs: list[int | None] = [None]  # fd of /proc/self/clear_refs (-1: unavailable); None: not opened yet


def _forget_clear_refs() -> None:
    _clear_refs[0] = None  # a forked child must open its own (/proc/self was resolved at open time)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_clear_refs)


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS high-water mark (Linux), so ``ru_maxrss`` becomes the next call's peak.

    Costs one ``write`` (about a microsecond). Returns ``False`` where the OS does
    not allow it; then ``peak_rss`` is the process's peak so far, an upper bound.
    """
    fd = _clear_refs[0]
    if fd is None:
        try:
            fd = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        _clear_refs[0] = fd
    if fd < 0:
        return False
    try:
        os.write(fd, b"5")
    except OSError:
        return False
    return True
