"""The action worker: a process of the node service that runs storage actions next to the data.

The service starts it lazily (``python -m xtremehub.ephemeral.action_worker OWNER_PID
READ_FD WRITE_FD``) and sends it one task at a time over a pipe (pickled dicts). The task
names Tier-0 files (the worker reads them in place, on the service's node) and a
temporary file for the output. Before a task the worker lowers its ``RLIMIT_AS`` soft
limit to its current size plus the action's memory limit, and raises it again after; a
``MemoryError`` is answered and the worker exits (a fresh one replaces it). The service
enforces the time limit by killing the worker.

Answers (plain data, msgpack: code in an action cannot reach the service process through
them): ``("ok", value)``, ``("error", kind, message, traceback)`` with ``kind`` one of
``"failed"``, ``"memory"``, ``"missing"`` (an input moved between tiers: retry), ``"load"``.

Example (the worker's task logic, run in this process):
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub.ephemeral.reducers import sum_counts
    >>> d = tempfile.mkdtemp()
    >>> Path(f"{d}/p").write_bytes(b'{"AC": 2}')
    9
    >>> blobs = dumps_function(sum_counts())
    >>> run_task({}, {"op": "reduce", "fid": "f", "blobs": blobs, "inputs": [None, f"{d}/p"], "out": f"{d}/o"})
    ('ok', 9)
    >>> Path(f"{d}/o").read_bytes()
    b'{"AC": 2}'
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import resource
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import msgpack

__all__ = ["dumps_function", "loads_function", "main", "run_task"]


def dumps_function(obj: Any) -> tuple[bytes | None, bytes]:
    """``obj`` pickled by reference (when the standard pickler can) and by value (cloudpickle,
    with the module it comes from pickled by value too, so that functions of modules the
    worker cannot import, such as test modules or ``__main__``, still load there)."""
    try:
        by_reference: bytes | None = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        by_reference = None
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    by_value_module = module is not None and module.__name__.split(".")[0] not in ("xtremehub", "builtins")
    if by_value_module and module is not None and hasattr(module, "__file__"):
        with contextlib.suppress(ValueError):
            cloudpickle.register_pickle_by_value(module)
        try:
            return by_reference, bytes(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)
    return by_reference, bytes(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def loads_function(blobs: tuple[bytes | None, bytes]) -> Any:
    """The object :func:`dumps_function` pickled (by reference first, else by value)."""
    by_reference, by_value = blobs
    if by_reference is not None:
        try:
            return pickle.loads(by_reference)
        except Exception:
            pass
    return cloudpickle.loads(by_value)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _write(path: str, data: Any, what: str) -> int:
    if isinstance(data, str) or not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"the {what} action must return bytes, not {type(data).__name__}")
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


def run_task(cache: dict[Any, Any], task: dict[str, Any]) -> tuple[Any, ...]:
    """Run one task; the answer to send back (see the module docstring)."""
    try:
        func = cache.get(task["fid"])
        if func is None:
            func = cache[task["fid"]] = loads_function(task["blobs"])
    except BaseException as exc:
        return ("error", "load", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    op, inputs, out = task["op"], task.get("inputs", []), str(task.get("out"))
    try:
        if op == "load":
            if not callable(func) and not hasattr(func, "merge"):
                raise TypeError(f"an action must be callable or a Reducer, not {type(func).__name__}")
            return ("ok", None)
        if op == "write":
            return ("ok", _write(out, func(_read(inputs[0])), "on_write"))
        if op == "read":
            result = func(_read(inputs[0]), **task.get("params", {}))
            if isinstance(result, str) or not isinstance(result, bytes | bytearray | memoryview):
                raise TypeError(f"the on_read action must return bytes, not {type(result).__name__}")
            return ("ok", bytes(result))
        if op == "reduce":  # inputs: [merged or None, partial]
            held = cache.pop(("merged", task["fid"]), None)  # this worker's last result: no need to decode it
            if held is not None and task.get("held") is not None and held[0] == task["held"]:
                merged = held[1]
            else:
                merged = func.decode(_read(inputs[0])) if inputs[0] else func.identity
            partial = func.decode(_read(inputs[1]))
            value = partial if merged is None else func.merge(merged, partial)
            size = _write(out, func.encode(value), "reducer")
            cache[("merged", task["fid"])] = (out, value)  # the service names it in "held" if it committed it
            return ("ok", size)
        if op == "rebuild":  # inputs: every partial, in key order
            values = [func.decode(_read(p)) for p in inputs]
            if func.identity is not None:
                value = functools.reduce(func.merge, values, func.identity)
            elif values:
                value = functools.reduce(func.merge, values)
            else:
                return ("ok", -1)  # nothing to merge and no identity: no merged object
            return ("ok", _write(out, func.encode(value), "reducer"))
        raise ValueError(f"unknown action task {op!r}")
    except FileNotFoundError as exc:
        if exc.filename in inputs:
            return ("error", "missing", str(exc), "")
        return ("error", "failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    except MemoryError as exc:
        return ("error", "memory", f"MemoryError: {exc}", traceback.format_exc())
    except BaseException as exc:
        return ("error", "failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _limit_memory(extra: int | None) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if extra is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft = size + extra
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _exit_with_owner(owner: int) -> None:
    """End this process when the node service that started it is gone, however it died.

    (As :func:`xtremehub.compute.backends._orphans.exit_with_owner` without its signal: this
    worker was started from a service thread, and importing the compute package would double
    the worker's start time.)
    """

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != owner:
                os._exit(1)

    if os.getppid() != owner:
        os._exit(1)
    threading.Thread(target=watch, name="xhub-action-owner-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """Serve tasks on the pipe until it closes (or the owner process is gone)."""
    owner, rfd, wfd = (int(a) for a in (argv or sys.argv[1:]))
    _exit_with_owner(owner)
    conn_in, conn_out = Connection(rfd, writable=False), Connection(wfd, readable=False)
    cache: dict[Any, Any] = {}
    while True:
        try:
            task = pickle.loads(conn_in.recv_bytes())
        except (EOFError, OSError):
            return
        _limit_memory(task.get("memory"))
        try:
            answer = run_task(cache, task)
        finally:
            _limit_memory(None)
        # plain data (msgpack), never a pickle: code in an action cannot run in the service
        conn_out.send_bytes(msgpack.packb(list(answer), use_bin_type=True))
        if answer[0] == "error" and answer[1] == "memory":
            return  # the heap may be fragmented or half-built: a fresh worker takes over


if __name__ == "__main__":
    main()
