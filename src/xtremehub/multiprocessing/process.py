"""``Process``: one call of ``target`` (or of an overridden ``run``) on a one-worker executor.

Mirrors :class:`multiprocessing.Process` as far as a remote call allows:
``start``, ``join(timeout)``, ``is_alive``, ``exitcode`` (0 on success, the code
of ``sys.exit(code)``, 1 for an exception, whose remote traceback is printed to
stderr as the standard library does; minus the signal number after
``terminate``/``kill``), ``name``, ``daemon``, ``close``. ``pid`` is ``None``:
the worker may be on another machine.

``daemon``: a non-daemonic process is joined when the interpreter exits (as in
the standard library); a daemonic one is stopped.

Example:
    >>> from xtremehub.multiprocessing import Process
    >>> p = Process(target=divmod, args=(7, 2))
    >>> p.start()
    >>> p.join()
    >>> p.exitcode, p.is_alive()
    (0, False)
"""

from __future__ import annotations

import atexit
import itertools
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xtremehub.compute.backends import Backend
from xtremehub.compute.executor import FunctionExecutor
from xtremehub.compute.futures import ResponseFuture
from xtremehub.config import Settings

__all__ = ["Process"]

_counter = itertools.count(1)


def _run_process(process: Process) -> None:
    process.run()


class Process:
    """A unit of work started with :meth:`start`, like :class:`multiprocessing.Process`.

    Args:
        group: must be ``None`` (as in the standard library).
        target: called as ``target(*args, **kwargs)`` by :meth:`run`.
        name: defaults to ``Process-<n>``.
        daemon: see the module docstring.
        backend: compute backend name or instance (default: ``settings.executor.backend``).
        settings: explicit settings.
        backend_options: passed to the backend's constructor.
    """

    _RUNTIME = ("_executor", "_future", "_terminated_by")

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
        if group is not None:
            raise ValueError("group argument must be None for now")
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.name = name or f"Process-{next(_counter)}"
        self.daemon = bool(daemon)
        self._backend, self._settings, self._backend_options = backend, settings, backend_options
        self._executor: FunctionExecutor | None = None
        self._future: ResponseFuture | None = None
        self._terminated_by: int | None = None
        self._reported = False

    def __getstate__(self) -> dict[str, Any]:
        # What travels to the worker: no executor, future or backend instance.
        state = {k: v for k, v in self.__dict__.items() if k not in self._RUNTIME}
        state["_backend"] = None
        return state

    def __repr__(self) -> str:
        if self._future is None:
            status = "initial"
        elif self.is_alive():
            status = "started"
        else:
            status = f"stopped exitcode={self.exitcode}"
        return f"<{type(self).__name__} name={self.name!r} {status}{' daemon' if self.daemon else ''}>"

    @property
    def pid(self) -> int | None:
        """Always ``None``: the worker may be on another machine."""
        return None

    ident = pid

    def run(self) -> None:
        """What runs on the worker; override it in a subclass, or pass ``target``."""
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    def start(self) -> None:
        if self._future is not None:
            raise AssertionError("cannot start a process twice")
        self._executor = FunctionExecutor(
            self._backend, workers=1, settings=self._settings, progress=False, **self._backend_options
        )
        self._future = self._executor.call_async(_run_process, (self,))
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        if self.daemon:
            self.terminate()
        else:
            self.join()

    def is_alive(self) -> bool:
        return self._future is not None and not self._future.done

    def join(self, timeout: float | None = None) -> None:
        """Wait until the process ends, or ``timeout`` seconds."""
        if self._future is None:
            raise AssertionError("can only join a started process")
        try:
            self._future.exception(timeout)
        except TimeoutError:
            return
        self._finish()

    def _finish(self) -> None:
        assert self._future is not None
        assert self._executor is not None
        self._executor.close(wait=True)
        atexit.unregister(self._at_exit)
        exc = self._future.exception()
        if exc is not None and not self._reported and not isinstance(exc, SystemExit):
            self._reported = True
            trace = getattr(exc, "remote_traceback", "") or f"{type(exc).__name__}: {exc}\n"
            sys.stderr.write(f"Process {self.name}:\n{trace}")

    @property
    def exitcode(self) -> int | None:
        if self._future is None or not self._future.done:
            return None
        if self._terminated_by is not None:
            return -self._terminated_by
        exc = self._future.exception()
        if exc is None:
            return 0
        if isinstance(exc, SystemExit):
            # ``code`` is set by SystemExit.__init__; an exception rebuilt by another pickler (tblib,
            # installed by dask.distributed on import) may carry it only in ``args``.
            code = exc.code if exc.code is not None or not exc.args else exc.args[0]
            return 0 if code is None else code if isinstance(code, int) else 1
        return 1

    def terminate(self) -> None:
        """Stop the worker (its call fails); ``exitcode`` becomes ``-SIGTERM``."""
        self._stop(signal.SIGTERM)

    def kill(self) -> None:
        self._stop(signal.SIGKILL)

    def _stop(self, signum: int) -> None:
        if self._future is None or self._executor is None:
            return
        if not self._future.done:
            self._terminated_by = signum
        self._executor.close(wait=False)
        atexit.unregister(self._at_exit)

    def close(self) -> None:
        """Release the process's resources; ``ValueError`` while it runs."""
        if self.is_alive():
            raise ValueError(f"Cannot close a process while it is still running: {self!r}")
        if self._executor is not None:
            self._executor.close(wait=True)
