"""A context: one backend's ``Pool``, ``Process`` and, where the backend declares it, shared state.

Shared state (``Queue``, ``Lock``, ``Value``, ``Array``, ``Manager``, ...) is
served by a standard-library :class:`multiprocessing.managers.SyncManager`
process that the context starts on first use; its proxies are picklable and
travel to workers with the call's arguments. That only works when the workers
can reach the manager and share this process's authentication key, which a
backend declares with
:attr:`~xtremehub.compute.backends.base.Backend.supports_shared_state` (the
``local`` backend does); elsewhere these raise :class:`NotImplementedError`
naming the alternative.

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
import threading
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.managers import SyncManager
from typing import Any

from xtremehub.compute.backends import BACKENDS, Backend
from xtremehub.config import Settings, default_settings
from xtremehub.multiprocessing.pool import Pool
from xtremehub.multiprocessing.process import Process

__all__ = ["Context", "SharedArray", "SharedValue", "get_context", "supports_shared_state"]

_ALTERNATIVE = (
    "return values from the calls instead (pool.map / fexec.map and get_result), "
    "or exchange data through object storage or a stream (xtremehub.streams)"
)


def supports_shared_state(backend: str | Backend) -> bool:
    """What ``backend`` declares (``Backend.supports_shared_state``); never probed by running anything.

    Example:
        >>> supports_shared_state("local")
        True
    """
    if isinstance(backend, Backend):
        return backend.supports_shared_state
    factory = BACKENDS.load(backend)
    return isinstance(factory, type) and issubclass(factory, Backend) and factory.supports_shared_state


def _typecode(typecode_or_type: str | type) -> str:
    """``'i'`` for ``'i'`` or ``ctypes.c_int``."""
    if isinstance(typecode_or_type, str):
        return typecode_or_type
    code = getattr(typecode_or_type, "_type_", None)
    if not isinstance(code, str):
        raise TypeError(f"expected an array typecode or a ctypes type, got {typecode_or_type!r}")
    return code


class SharedValue:
    """A manager-held value with a lock, like ``multiprocessing.Value``: ``.value``, ``get_lock()``."""

    def __init__(self, proxy: Any, lock: Any) -> None:
        self._proxy, self._lock = proxy, lock

    @property
    def value(self) -> Any:
        return self._proxy.value

    @value.setter
    def value(self, new: Any) -> None:
        self._proxy.value = new

    def get_lock(self) -> Any:
        return self._lock

    def __repr__(self) -> str:
        return f"<SharedValue {self.value!r}>"


class SharedArray:
    """A manager-held array with a lock, like ``multiprocessing.Array`` (slices read as lists)."""

    def __init__(self, proxy: Any, lock: Any) -> None:
        self._proxy, self._lock = proxy, lock

    def __len__(self) -> int:
        return len(self._proxy)

    def __getitem__(self, index: int | slice) -> Any:
        value = self._proxy[index]
        return list(value) if isinstance(index, slice) else value

    def __setitem__(self, index: int | slice, value: Any) -> None:
        self._proxy[index] = value

    def __iter__(self) -> Any:
        return iter(self[:])

    def get_lock(self) -> Any:
        return self._lock

    def __repr__(self) -> str:
        return f"<SharedArray {self[:]!r}>"


class Context:
    """``Pool``, ``Process`` and shared state bound to one backend and settings.

    Args:
        backend: backend name (default: ``settings.executor.backend``).
        settings: explicit settings (default: ``XHUB_*`` environment and config file).
    """

    def __init__(self, backend: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or default_settings()
        self.backend = backend or self.settings.executor.backend
        self._manager: SyncManager | None = None
        self._lock = threading.Lock()

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
            **backend_options,
        )

    def Process(self, *args: Any, **kwargs: Any) -> Process:
        kwargs.setdefault("backend", self.backend)
        kwargs.setdefault("settings", self.settings)
        return Process(*args, **kwargs)

    @staticmethod
    def cpu_count() -> int:
        return multiprocessing.cpu_count()

    # -- shared state ----------------------------------------------------------------------
    @property
    def supports_shared_state(self) -> bool:
        return supports_shared_state(self.backend)

    def _require_shared_state(self, what: str) -> None:
        if not self.supports_shared_state:
            raise NotImplementedError(
                f"{what} is not available on the {self.backend!r} backend: its workers cannot reach a "
                f"manager in this process (Backend.supports_shared_state is False); {_ALTERNATIVE}"
            )

    def Manager(self) -> SyncManager:
        """A started :class:`~multiprocessing.managers.SyncManager` (shut down at exit or with ``with``)."""
        self._require_shared_state("Manager()")
        manager = SyncManager(ctx=multiprocessing.get_context(self.settings.executor.start_method))
        manager.start()
        return manager

    def _shared(self, what: str) -> SyncManager:
        self._require_shared_state(what)
        with self._lock:
            if self._manager is None:
                self._manager = self.Manager()
            return self._manager

    def Queue(self, maxsize: int = 0) -> Any:
        return self._shared("Queue()").Queue(maxsize)

    def JoinableQueue(self, maxsize: int = 0) -> Any:
        return self._shared("JoinableQueue()").JoinableQueue(maxsize)

    def Lock(self) -> Any:
        return self._shared("Lock()").Lock()

    def RLock(self) -> Any:
        return self._shared("RLock()").RLock()

    def Event(self) -> Any:
        return self._shared("Event()").Event()

    def Semaphore(self, value: int = 1) -> Any:
        return self._shared("Semaphore()").Semaphore(value)

    def Barrier(self, parties: int) -> Any:
        return self._shared("Barrier()").Barrier(parties)

    def Value(self, typecode_or_type: str | type, *args: Any, lock: bool = True) -> SharedValue:
        manager = self._shared("Value()")
        initial = args[0] if args else 0
        return SharedValue(manager.Value(_typecode(typecode_or_type), initial), manager.RLock() if lock else None)

    def Array(
        self, typecode_or_type: str | type, size_or_initializer: int | Sequence[Any], *, lock: bool = True
    ) -> SharedArray:
        manager = self._shared("Array()")
        code = _typecode(typecode_or_type)
        if isinstance(size_or_initializer, int):
            initial: Sequence[Any] = array.array(code, [0] * size_or_initializer)
        else:
            initial = array.array(code, size_or_initializer)
        return SharedArray(manager.Array(code, initial), manager.RLock() if lock else None)

    def shutdown(self) -> None:
        """Stop this context's manager (shared objects stop working)."""
        with self._lock:
            if self._manager is not None:
                self._manager.shutdown()
                self._manager = None


_default: list[Context] = []  # the process's default context, made on first use
_default_lock = threading.Lock()


def get_context(backend: str | None = None, settings: Settings | None = None) -> Context:
    """A context for ``backend``; without arguments, the process's default one (``settings.executor.backend``).

    Unlike the standard library's ``get_context(method)``, the argument names a
    compute backend (``local``, ``ray``, ``dask``, ``lithops``), not a start method.
    """
    if backend is not None or settings is not None:
        return Context(backend, settings)
    with _default_lock:
        if not _default:
            _default.append(Context())
        return _default[0]
