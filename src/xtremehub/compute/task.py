"""What travels between the executor and its workers: calls, outcomes, and how a call runs.

A :class:`Call` is one function invocation (positional and keyword arguments,
already expanded Lithops-style from one ``iterdata`` item). A worker runs it
with :func:`run_call` and answers with an :class:`Outcome`: the pickled result,
or the pickled exception plus the remote traceback text, plus the call's
telemetry measured on the worker: timings, CPU time, the peak resident set size
of the call, and the bytes it moved through the storage layer. Every backend
runs calls through :func:`run_call`, so every backend reports the same figures
(see :class:`~xtremehub.compute.telemetry.TaskTelemetry`).
"""

from __future__ import annotations

import inspect
import os
import pickle
import resource
import socket
import sys
import time
import traceback
from collections.abc import Callable
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


def run_call(
    func: Callable[..., Any], call: Call, worker: str, before: resource.struct_rusage | None = None
) -> tuple[Outcome, resource.struct_rusage]:
    """Run one call, never raising: any failure becomes an error :class:`Outcome`.

    ``before`` is the resource usage measured when the previous call of a batch
    ended (calls run back to back), which saves one ``getrusage`` per call; the
    usage after this call is returned for the next one.
    """
    usage0 = resource.getrusage(resource.RUSAGE_SELF) if before is None else before
    io = iostats.COUNTERS
    read0, written0 = io.read, io.written
    iostats.start_writes()
    reset_peak_rss()
    start = time.time()
    ok, error_type, error_message, remote_tb = True, "", "", ""
    try:
        result = func(*call.args, **call.kwargs)
        if not isinstance(result, _NEVER_FUTURES):  # a cheap test first: this runs once per call
            _await_returned_futures(result)
        try:
            payload = dumps(result)
        except Exception as exc:  # the result cannot travel back
            raise TypeError(f"the result of call {call.call_id} cannot be pickled: {exc}") from exc
    except BaseException as exc:
        ok = False
        error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
        error_message = str(exc)
        remote_tb = traceback.format_exc()
        try:
            payload = dumps(exc)
            pickle.loads(payload)  # must also come back to life on the other side
        except Exception:
            payload = b""
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    outcome = Outcome(
        call.job_id,
        call.call_id,
        ok,
        payload,
        error_type,
        error_message,
        remote_tb,
        start,
        time.time(),
        worker,
        HOST,
        usage1.ru_utime - usage0.ru_utime,
        usage1.ru_stime - usage0.ru_stime,
        usage1.ru_maxrss * _MAXRSS_UNIT,
        io.read - read0,
        io.written - written0,
        call.attempt,
        iostats.stop_writes(),
    )
    return outcome, usage1


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
