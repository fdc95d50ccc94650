"""``Process``: the standard library's :class:`multiprocessing.Process`, run by any backend.

It *is* a :class:`multiprocessing.process.BaseProcess` (so ``isinstance``,
``active_children()``, ``current_process()``, ``parent_process()``, daemon
handling at exit and subclasses overriding ``run`` behave as in the standard
library). Only the way it starts depends on the backend:

- ``local``: a child process of the configured start method
  (``settings.executor.start_method``), exactly as the standard library starts
  one: ``pid``, ``sentinel``, ``terminate``/``kill`` (signals), ``exitcode``,
  non-daemonic threads joined before the child exits, ``current_process().name``
  in the child, are all the standard library's.
- any other backend: one call on a one-worker
  :class:`~xtremehub.FunctionExecutor`. In the call, ``current_process()`` is
  the process object (its name, its ``daemon`` flag), and the non-daemonic
  threads the target started are joined before the call ends. ``exitcode`` is 0,
  the ``sys.exit`` code, or 1 for an exception (whose remote traceback is printed
  to stderr when the end is noticed, as a child would print it); ``pid`` is
  ``None`` (the worker may be on another machine); ``sentinel`` is a pipe that
  becomes readable when the call ends. ``terminate()``/``kill()`` return at once:
  the call is cancelled (stopped where the engine can stop a running task, Ray;
  Dask and Lithops let a running call finish on the worker) and ``exitcode`` is
  ``-SIGTERM``/``-SIGKILL``.

Example:
    >>> from xtremehub.multiprocessing import Process
    >>> p = Process(target=divmod, args=(7, 2))
    >>> p.start()
    >>> p.join()
    >>> p.exitcode, p.is_alive()
    (0, False)
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.process
import os
import pickle
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from xtremehub.compute.backends import (
    Backend,
    _pickling,  # noqa: F401 - Pipe ends travel in a Process
)
from xtremehub.compute.executor import FunctionExecutor
from xtremehub.compute.futures import ResponseFuture
from xtremehub.compute.task import dumps
from xtremehub.config import Settings, default_settings

__all__ = ["Process"]


class Process(multiprocessing.process.BaseProcess):
    """A unit of work started with :meth:`start`, like :class:`multiprocessing.Process`.

    Args:
        group: must be ``None`` (as in the standard library).
        target: called as ``target(*args, **kwargs)`` by :meth:`run`.
        name: defaults to ``Process-<n>``.
        daemon: default: the current process's flag. Daemonic processes are
            terminated at interpreter exit, the others joined.
        backend: compute backend name or instance (default: ``settings.executor.backend``).
        settings: explicit settings.
        backend_options: passed to the backend's constructor (for example ``client=``).
    """

    #: Defaults of a class bound to a context (:meth:`bound`).
    _default_backend: ClassVar[str | Backend | None] = None
    _default_settings: ClassVar[Settings | None] = None
    _default_options: ClassVar[dict[str, Any]] = {}
    #: The child's start method (the standard library's processes carry theirs).
    _start_method: str | None = None

    def __init__(
        self,
        group: None = None,
        target: Callable[..., Any] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
        backend: str | Backend | None = None,
        settings: Settings | None = None,
        **backend_options: Any,
    ) -> None:
        super().__init__(group, target, name, tuple(args), dict(kwargs or {}), daemon=daemon)
        self._xhub_backend = backend if backend is not None else self._default_backend
        self._xhub_settings = settings if settings is not None else self._default_settings
        self._xhub_options = {**self._default_options, **backend_options}

    @classmethod
    def bound(cls, backend: str | Backend | None, settings: Settings | None, options: dict[str, Any]) -> type[Process]:
        """A subclass whose instances default to ``backend``, ``settings`` and ``options``."""
        attributes = {"_default_backend": backend, "_default_settings": settings, "_default_options": dict(options)}
        return type(
            cls.__name__, (cls,), {**attributes, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        )

    def __reduce__(self) -> Any:
        # Spawned or forkserver children receive the process by pickle; a subclass made by
        # ``bound`` is not importable (and may hold a client), so rebuild through its base.
        return (_rebuild, (_importable_class(type(self)), self.__dict__))

    def _Popen(self, process_obj: multiprocessing.process.BaseProcess) -> Any:
        settings = self._xhub_settings or default_settings()
        backend = self._xhub_backend if self._xhub_backend is not None else settings.executor.backend
        name = backend.name if isinstance(backend, Backend) else backend
        if name == "local":
            context = multiprocessing.get_context(settings.executor.start_method)
            self._start_method = settings.executor.start_method
            return context.Process._Popen(process_obj)  # type: ignore[attr-defined]
        return _TaskPopen(self, backend, settings, self._xhub_options)


def _importable_class(cls: type[Process]) -> type[Process]:
    while "_default_backend" in cls.__dict__ and cls is not Process:
        cls = cls.__mro__[1]
    return cls


def _rebuild(cls: type[Process], state: dict[str, Any]) -> Process:
    process = cls.__new__(cls)
    process.__dict__.update(state)
    return process


# ---------------------------------------------------------------------------------------------
# a process as one call of an executor (backends other than local)
# ---------------------------------------------------------------------------------------------
def _run_remote_process(blob: bytes) -> None:
    """The call: run the process's ``run()`` as if this were its process, then its non-daemonic threads."""
    cls, state = pickle.loads(blob)
    process = _rebuild(cls, state)
    process._config["authkey"] = multiprocessing.current_process().authkey  # type: ignore[attr-defined]
    previous = multiprocessing.process._current_process  # type: ignore[attr-defined]
    before = set(threading.enumerate())
    me = threading.current_thread()
    # A thread's default daemon flag is its creator's: in a process the target runs in the main
    # thread (not daemonic), but engines run calls in daemonic pool threads.
    daemonic, me._daemonic = me._daemonic, False  # type: ignore[attr-defined]
    multiprocessing.process._current_process = process  # type: ignore[attr-defined]
    try:
        process.run()
    finally:
        me._daemonic = daemonic  # type: ignore[attr-defined]
        for thread in threading.enumerate():
            if thread not in before and not thread.daemon and thread is not me:
                thread.join()
        multiprocessing.process._current_process = previous  # type: ignore[attr-defined]


def _remote_state(process: Process) -> bytes:
    """The process for another machine: no authentication key, no backend objects."""
    state = dict(process.__dict__)
    config: dict[str, Any] = process._config  # type: ignore[attr-defined]
    state["_config"] = {k: v for k, v in config.items() if k != "authkey"}
    state["_popen"] = None
    state["_xhub_backend"], state["_xhub_options"] = None, {}
    return dumps((_importable_class(type(process)), state))  # connections (Pipe) travel too


def _at_exit(popen: weakref.ref[_TaskPopen]) -> None:
    """Before the interpreter stops its threads: join a non-daemonic process, terminate a daemonic one."""
    process = popen()
    if process is None or process.returncode is not None:
        return
    if process._daemon:
        process.terminate()
    else:
        process.wait()


class _TaskPopen:
    """What ``BaseProcess`` expects of a ``Popen`` (``poll``, ``wait``, ``terminate``, ...), over one call."""

    method = "xtremehub"

    def __init__(self, process: Process, backend: str | Backend, settings: Settings, options: dict[str, Any]) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self._name = process.name
        self._stopped_by: int | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        blob = _remote_state(process)  # pickled now: start() drops the target right after
        self._executor = FunctionExecutor(backend, workers=1, settings=settings, progress=False, **options)
        try:
            self._future: ResponseFuture = self._executor.call_async(_run_remote_process, (blob,))
        except BaseException:
            self._executor.close(wait=False)
            raise
        self.sentinel, self._sentinel_w = os.pipe()
        # The read end lives as long as this object, as the standard library's Popen's does: a
        # Process dropped without close() must not leak it (the write end closes when the call ends).
        self._close_sentinel = weakref.finalize(self, os.close, self.sentinel)
        self._future.add_done_callback(self._on_done)
        # The standard library joins (or, daemonic, terminates) children at exit, but in an atexit
        # handler: too late for engines, which need threads that stop before atexit handlers run.
        self._daemon = process.daemon
        threading._register_atexit(functools.partial(_at_exit, weakref.ref(self)))  # type: ignore[attr-defined]

    def _on_done(self, _: ResponseFuture) -> None:
        self._done.set()
        with self._lock:
            if self._sentinel_w >= 0:
                os.close(self._sentinel_w)
                self._sentinel_w = -1

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None and self._done.is_set():
            self._settle()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None:
            if not self._done.wait(timeout if timeout is None else max(timeout, 0.0)):
                return None
            self._settle()
        return self.returncode

    def _settle(self) -> None:
        with self._lock:
            if self.returncode is not None:
                return
            try:
                self._future.result()
                exc: BaseException | None = None
            except BaseException as error:
                exc = error
            if self._stopped_by is not None:
                code = -self._stopped_by
            elif exc is None:
                code = 0
            elif isinstance(exc, SystemExit):
                # ``code`` is set by SystemExit.__init__; an exception rebuilt by another pickler (tblib,
                # installed by dask.distributed on import) may carry it only in ``args``.
                value = exc.code if exc.code is not None or not exc.args else exc.args[0]
                code = 0 if value is None else value if isinstance(value, int) else 1
                if not isinstance(value, int | None):
                    sys.stderr.write(f"{value}\n")
            else:
                code = 1
                trace = getattr(exc, "remote_traceback", "") or f"{type(exc).__name__}: {exc}\n"
                sys.stderr.write(f"Process {self._name}:\n{trace}")
            self.returncode = code
        self._executor.close(wait=False)

    def _stop(self, signum: int) -> None:
        if self.returncode is None and not self._done.is_set():
            self._stopped_by = signum
            self._executor.close(wait=False)

    def terminate(self) -> None:
        self._stop(signal.SIGTERM)

    def kill(self) -> None:
        self._stop(signal.SIGKILL)

    def close(self) -> None:
        self._executor.close(wait=False)
        with self._lock:
            self._close_sentinel()  # once: a finalizer runs at most once
            if self._sentinel_w >= 0:
                os.close(self._sentinel_w)
            self.sentinel = self._sentinel_w = -1
