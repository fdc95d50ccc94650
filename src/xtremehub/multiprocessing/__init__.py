"""The standard library's ``multiprocessing`` API for common cases, on any compute backend.

``from xtremehub import multiprocessing as mp`` and a script written for
``import multiprocessing`` keeps working: ``Pool`` (``map``, ``imap``,
``imap_unordered``, ``starmap``, ``apply`` and their ``_async`` forms),
``Process``, and, where the backend supports shared state (``local``),
``Queue``, ``Lock``, ``Value``, ``Array``, ``Manager`` and friends. Work runs on
a :class:`~xtremehub.FunctionExecutor`, so ``Pool(backend="dask")`` runs the
same code on a Dask cluster, with telemetry (``pool.executor.job_summary()``).
What each backend supports is in ``docs/multiprocessing.md``.

Module-level ``Queue()``, ``Lock()``, ... use the default context (the backend of
``settings.executor.backend``); ``get_context("ray")`` gives another backend's.

Example:
    >>> from xtremehub import multiprocessing as mp
    >>> with mp.Pool(2) as pool:
    ...     pool.starmap(pow, [(2, 3), (3, 2)])
    [8, 9]
    >>> q = mp.Queue()
    >>> p = mp.Process(target=q.put, args=("hello from a worker",))
    >>> p.start(); p.join()
    >>> q.get(timeout=30), p.exitcode
    ('hello from a worker', 0)
"""

from __future__ import annotations

from multiprocessing import TimeoutError, active_children, current_process, freeze_support
from multiprocessing.managers import SyncManager
from typing import Any

from xtremehub.multiprocessing.context import Context, SharedArray, SharedValue, get_context, supports_shared_state
from xtremehub.multiprocessing.pool import AsyncResult, IMapIterator, Pool
from xtremehub.multiprocessing.process import Process

__all__ = [
    "Array",
    "AsyncResult",
    "Barrier",
    "Context",
    "Event",
    "IMapIterator",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Pool",
    "Process",
    "Queue",
    "RLock",
    "Semaphore",
    "SharedArray",
    "SharedValue",
    "TimeoutError",
    "Value",
    "active_children",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_context",
    "supports_shared_state",
]


def cpu_count() -> int:
    return get_context().cpu_count()


def Manager() -> SyncManager:
    return get_context().Manager()


def Queue(maxsize: int = 0) -> Any:
    return get_context().Queue(maxsize)


def JoinableQueue(maxsize: int = 0) -> Any:
    return get_context().JoinableQueue(maxsize)


def Lock() -> Any:
    return get_context().Lock()


def RLock() -> Any:
    return get_context().RLock()


def Event() -> Any:
    return get_context().Event()


def Semaphore(value: int = 1) -> Any:
    return get_context().Semaphore(value)


def Barrier(parties: int) -> Any:
    return get_context().Barrier(parties)


def Value(typecode_or_type: str | type, *args: Any, lock: bool = True) -> SharedValue:
    return get_context().Value(typecode_or_type, *args, lock=lock)


def Array(typecode_or_type: str | type, size_or_initializer: Any, *, lock: bool = True) -> SharedArray:
    return get_context().Array(typecode_or_type, size_or_initializer, lock=lock)
