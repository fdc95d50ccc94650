"""The standard library's ``multiprocessing`` API for common cases, on any compute backend.

``from xtremehub import multiprocessing as mp`` and a script written for
``import multiprocessing`` keeps working: ``Pool`` (``map``, ``imap``,
``imap_unordered``, ``starmap``, ``apply`` and their ``_async`` forms),
``Process`` (a real :class:`multiprocessing.process.BaseProcess`), and, where
the backend supports shared state (``local``), ``Queue``, ``Lock``, ``Value``,
``Array``, ``Pipe``, ``Manager`` and friends. Work runs on
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

from multiprocessing import (
    AuthenticationError,
    BufferTooShort,
    ProcessError,
    TimeoutError,
    active_children,
    current_process,
    freeze_support,
    parent_process,
    set_executable,
)
from multiprocessing.connection import Connection
from typing import Any

from xtremehub.multiprocessing.context import Context, get_context, supports_shared_state
from xtremehub.multiprocessing.pool import AsyncResult, IMapIterator, Pool
from xtremehub.multiprocessing.process import Process
from xtremehub.multiprocessing.shared import (
    Acquirer,
    SharedArray,
    SharedValue,
    SynchronizedArray,
    SynchronizedValue,
)
from xtremehub.multiprocessing.shared import Event as _Event
from xtremehub.multiprocessing.shared import JoinableQueue as _JoinableQueue
from xtremehub.multiprocessing.shared import Queue as _Queue

__all__ = [
    "Array",
    "AsyncResult",
    "AuthenticationError",
    "Barrier",
    "BoundedSemaphore",
    "BufferTooShort",
    "Condition",
    "Context",
    "Event",
    "IMapIterator",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Pipe",
    "Pool",
    "Process",
    "ProcessError",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "SharedArray",
    "SharedValue",
    "SimpleQueue",
    "SynchronizedArray",
    "SynchronizedValue",
    "TimeoutError",
    "Value",
    "active_children",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_context",
    "parent_process",
    "set_executable",
    "supports_shared_state",
]


def cpu_count() -> int:
    return get_context().cpu_count()


def Manager() -> Any:
    return get_context().Manager()


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    return get_context().Pipe(duplex)


def Queue(maxsize: int = 0) -> _Queue:
    return get_context().Queue(maxsize)


def JoinableQueue(maxsize: int = 0) -> _JoinableQueue:
    return get_context().JoinableQueue(maxsize)


def SimpleQueue() -> _Queue:
    return get_context().SimpleQueue()


def Lock() -> Acquirer:
    return get_context().Lock()


def RLock() -> Acquirer:
    return get_context().RLock()


def Condition(lock: Any = None) -> Any:
    return get_context().Condition(lock)


def Event() -> _Event:
    return get_context().Event()


def Semaphore(value: int = 1) -> Acquirer:
    return get_context().Semaphore(value)


def BoundedSemaphore(value: int = 1) -> Acquirer:
    return get_context().BoundedSemaphore(value)


def Barrier(parties: int, action: Any = None, timeout: float | None = None) -> Any:
    return get_context().Barrier(parties, action, timeout)


def Value(typecode_or_type: str | type, *args: Any, lock: Any = True) -> SharedValue:
    return get_context().Value(typecode_or_type, *args, lock=lock)


def Array(typecode_or_type: str | type, size_or_initializer: Any, *, lock: Any = True) -> SharedArray:
    return get_context().Array(typecode_or_type, size_or_initializer, lock=lock)


def RawValue(typecode_or_type: str | type, *args: Any) -> SharedValue:
    return get_context().RawValue(typecode_or_type, *args)


def RawArray(typecode_or_type: str | type, size_or_initializer: Any) -> SharedArray:
    return get_context().RawArray(typecode_or_type, size_or_initializer)
