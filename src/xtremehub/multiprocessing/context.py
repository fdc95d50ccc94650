"""A context: one backend's ``Pool``, ``Process`` and, where the backend declares it, shared state.

Shared state (``Queue``, ``Lock``, ``Value``, ``Array``, ``Manager``, ...) is
served, where the backend declares that its workers reach this process and share
its authentication key
(:attr:`~xtremehub.compute.backends.base.Backend.supports_shared_state`: the
``local`` backend, Dask with a ``LocalCluster`` of this process), by a
standard-library :class:`multiprocessing.managers.SyncManager` process that the
context starts on first use; elsewhere (Ray, Dask through a scheduler address,
Lithops) by the node service (:mod:`xtremehub.state`, through
:class:`~xtremehub.multiprocessing.stateful.ServiceManager`), which every
backend's workers on this machine reach. ``get_context(..., shared_state=
"service")`` chooses the node service on any backend. Either way the objects
are wrappers with the standard library's API
(:mod:`xtremehub.multiprocessing.shared`), and they are picklable, so they
travel to workers with a call's arguments. ``Pipe`` is the standard library's
and needs the manager kind of backend (connections can be sent to local workers);
``Condition`` too.

Example:
    >>> ctx = get_context("local")
    >>> counter = ctx.Value("i", 0)
    >>> with counter.get_lock():
    ...     counter.value += 5
    >>> counter.value
    5
"""

from __future__ import annotations

import array
import multiprocessing
import multiprocessing.process
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.managers import SyncManager
from typing import Any

from xtremehub.compute.backends import BACKENDS, Backend
from xtremehub.compute.backends._orphans import exit_with_owner
from xtremehub.config import Settings, default_settings
from xtremehub.multiprocessing import shared
from xtremehub.multiprocessing.pool import Pool
from xtremehub.multiprocessing.process import Process
from xtremehub.multiprocessing.stateful import ServiceManager

__all__ = ["Context", "get_context", "supports_shared_state"]

_ALTERNATIVE = (
    "return values from the calls instead (pool.map / fexec.map and get_result), "
    "or exchange data through object storage or a stream (xtremehub.streams)"
)


def supports_shared_state(backend: str | Backend, **options: Any) -> bool:
    """What ``backend`` declares for these constructor ``options`` (``Backend.shares_state``);
    never probed by running anything.

    Example:
        >>> supports_shared_state("local")
        True
    """
    if isinstance(backend, Backend):
        return backend.supports_shared_state
    factory = BACKENDS.load(backend)
    return isinstance(factory, type) and issubclass(factory, Backend) and factory.shares_state(options)


def _manager_initializer(owner: int) -> None:
    exit_with_owner(owner, kernel_signal=threading.current_thread() is threading.main_thread())


class Context:
    """``Pool``, ``Process`` and shared state bound to one backend, its settings and options.

    Args:
        backend: backend name (default: ``settings.executor.backend``).
        settings: explicit settings (default: ``XHUB_*`` environment and config file).
        backend_options: given to every ``Pool`` and ``Process`` of this context
            (for example ``client=`` a ``distributed.Client``).
    """

    def __init__(
        self,
        backend: str | None = None,
        settings: Settings | None = None,
        *,
        shared_state: str | None = None,
        **backend_options: Any,
    ) -> None:
        self.settings = settings or default_settings()
        self.backend = backend or self.settings.executor.backend
        self.backend_options = backend_options
        if shared_state not in (None, "manager", "service"):
            raise ValueError(f"shared_state must be 'manager', 'service' or None, not {shared_state!r}")
        self._shared_state = shared_state
        self._manager: Any = None
        self._lock = threading.Lock()
        self._process_class: type[Process] | None = None

    def __repr__(self) -> str:
        return f"<xtremehub.multiprocessing.Context backend={self.backend!r}>"

    # -- work ---------------------------------------------------------------------------
    def Pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        **backend_options: Any,
    ) -> Pool:
        return Pool(
            processes,
            initializer,
            initargs,
            maxtasksperchild,
            backend=self.backend,
            settings=self.settings,
            **{**self.backend_options, **backend_options},
        )

    @property
    def Process(self) -> type[Process]:
        """:class:`~xtremehub.multiprocessing.Process` bound to this context (a class, as in the standard library)."""
        if self._process_class is None:
            self._process_class = Process.bound(self.backend, self.settings, self.backend_options)
        return self._process_class

    @staticmethod
    def cpu_count() -> int:
        return multiprocessing.cpu_count()

    # -- shared state ----------------------------------------------------------------------
    @property
    def supports_shared_state(self) -> bool:
        return supports_shared_state(self.backend, **self.backend_options)

    @property
    def shared_state(self) -> str:
        """Who holds the shared objects: ``"manager"`` (a standard-library manager process, where the
        backend declares that its workers reach one) or ``"service"`` (the node service,
        :mod:`xtremehub.state`, reachable from every backend's workers on this machine)."""
        if self._shared_state is not None:
            return self._shared_state
        return "manager" if self.supports_shared_state else "service"

    def _require_shared_state(self, what: str) -> None:
        if self.shared_state != "manager":
            raise NotImplementedError(
                f"{what} is not available on the {self.backend!r} backend with these options: its workers "
                f"cannot reach this process (Backend.shares_state is False); {_ALTERNATIVE}"
            )

    def Manager(self) -> Any:
        """A started :class:`~multiprocessing.managers.SyncManager` (shut down at exit or with ``with``),
        or a :class:`~xtremehub.multiprocessing.stateful.ServiceManager` when the shared state is on the
        node service."""
        if self.shared_state == "service":
            return ServiceManager(settings=self.settings)
        return self._start_manager()

    def _start_manager(self) -> SyncManager:
        manager = SyncManager(ctx=multiprocessing.get_context(self.settings.executor.start_method))
        manager.start(_manager_initializer, (os.getpid(),))
        return manager

    def _shared(self, what: str) -> Any:
        with self._lock:
            if self._manager is None and self.shared_state == "service":
                self._manager = ServiceManager(settings=self.settings)
            if self._manager is None:
                self._manager = self._start_manager()
                # An implementation detail: not one of the user's processes (active_children()).
                multiprocessing.process._children.discard(self._manager._process)  # type: ignore[attr-defined]
            return self._manager

    def Pipe(self, duplex: bool = True) -> tuple[Connection, Connection]:
        self._require_shared_state("Pipe()")
        return multiprocessing.Pipe(duplex)

    def Queue(self, maxsize: int = 0) -> shared.Queue:
        return shared.Queue(self._shared("Queue()").Queue(maxsize), maxsize)

    def JoinableQueue(self, maxsize: int = 0) -> shared.JoinableQueue:
        return shared.JoinableQueue(self._shared("JoinableQueue()").JoinableQueue(maxsize), maxsize)

    def SimpleQueue(self) -> shared.Queue:
        return self.Queue()

    def Lock(self) -> shared.Acquirer:
        return shared.Acquirer(self._shared("Lock()").Lock(), "Lock")

    def RLock(self) -> shared.Acquirer:
        return shared.Acquirer(self._shared("RLock()").RLock(), "RLock")

    def Semaphore(self, value: int = 1) -> shared.Acquirer:
        return shared.Acquirer(self._shared("Semaphore()").Semaphore(value), "Semaphore")

    def BoundedSemaphore(self, value: int = 1) -> shared.Acquirer:
        return shared.Acquirer(self._shared("BoundedSemaphore()").BoundedSemaphore(value), "BoundedSemaphore")

    def Condition(self, lock: Any = None) -> Any:
        proxy = getattr(lock, "_proxy", lock)
        return self._shared("Condition()").Condition(proxy)

    def Event(self) -> shared.Event:
        return shared.Event(self._shared("Event()").Event())

    def Barrier(self, parties: int, action: Callable[[], None] | None = None, timeout: float | None = None) -> Any:
        return self._shared("Barrier()").Barrier(parties, action, timeout)

    def _lock_for(self, lock: Any) -> Any:
        if lock is True or lock is None:
            return self.RLock()
        if not hasattr(lock, "acquire"):
            raise AttributeError(f"{lock!r} has no attribute 'acquire'")
        return lock

    def RawValue(self, typecode_or_type: str | type, *args: Any) -> shared.SharedValue:
        manager = self._shared("RawValue()")
        return shared.SharedValue(manager.Value(shared.typecode(typecode_or_type), args[0] if args else 0))

    def Value(self, typecode_or_type: str | type, *args: Any, lock: Any = True) -> shared.SharedValue:
        raw = self.RawValue(typecode_or_type, *args)
        if lock is False:
            return raw
        return shared.SynchronizedValue(raw._proxy, self._lock_for(lock))

    def RawArray(self, typecode_or_type: str | type, size_or_initializer: int | Sequence[Any]) -> shared.SharedArray:
        manager = self._shared("RawArray()")
        code = shared.typecode(typecode_or_type)
        if isinstance(size_or_initializer, int):
            initial: Sequence[Any] = array.array(code, [0] * size_or_initializer)
        else:
            initial = array.array(code, size_or_initializer)
        return shared.SharedArray(manager.Array(code, initial), code)

    def Array(
        self, typecode_or_type: str | type, size_or_initializer: int | Sequence[Any], *, lock: Any = True
    ) -> shared.SharedArray:
        raw = self.RawArray(typecode_or_type, size_or_initializer)
        if lock is False:
            return raw
        return shared.SynchronizedArray(raw._proxy, raw._code, self._lock_for(lock))

    def shutdown(self) -> None:
        """Stop this context's manager (shared objects stop working)."""
        with self._lock:
            if self._manager is not None:
                self._manager.shutdown()
                self._manager = None


_default: list[Context] = []  # the process's default context, made on first use
_default_lock = threading.Lock()


def get_context(
    backend: str | None = None,
    settings: Settings | None = None,
    *,
    shared_state: str | None = None,
    **backend_options: Any,
) -> Context:
    """A context for ``backend``; without arguments, the process's default one (``settings.executor.backend``).

    Unlike the standard library's ``get_context(method)``, the argument names a
    compute backend (``local``, ``ray``, ``dask``, ``lithops``), not a start method.
    """
    if backend is not None or settings is not None or shared_state is not None or backend_options:
        return Context(backend, settings, shared_state=shared_state, **backend_options)
    with _default_lock:
        if not _default:
            _default.append(Context())
        return _default[0]
