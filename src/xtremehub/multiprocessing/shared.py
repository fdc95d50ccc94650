"""Shared objects with the standard library's API, held by a manager process.

The proxies of a :class:`multiprocessing.managers.SyncManager` can travel to
any worker that reaches the manager (as call arguments, not only through
inheritance), but their API differs from ``multiprocessing.Queue``,
``Semaphore``, ``Value``, ... in small ways. The classes here wrap a proxy and
restore the standard library's behaviour: ``Queue.close()``/``join_thread()``
and ``ValueError`` once closed, an unpicklable ``put`` reported as the
standard library's feeder thread does, ``acquire(False, timeout)``,
``Value``/``Array`` with ``get_lock()``/``get_obj()`` and ``lock=``, slice
assignment of any iterable on ``Array``, an ``Event`` whose ``repr`` shows its
state. Each wrapper pickles as its proxy, so it works in every process that can
reach the manager.

Example:
    >>> from xtremehub import multiprocessing as mp
    >>> sem = mp.Semaphore(0)
    >>> sem.acquire(False, 5.0)  # the standard library ignores the timeout of a non-blocking acquire
    False
    >>> arr = mp.Array("i", 4)
    >>> arr[1:3] = range(2)
    >>> arr[:], arr.get_obj()[2]
    ([0, 0, 1, 0], 1)
"""

from __future__ import annotations

import array
import queue
import sys
import traceback
from collections.abc import Iterable, Iterator
from multiprocessing.reduction import ForkingPickler
from typing import Any

__all__ = [
    "Acquirer",
    "Event",
    "JoinableQueue",
    "Queue",
    "SharedArray",
    "SharedValue",
    "SynchronizedArray",
    "SynchronizedValue",
    "typecode",
]


def typecode(typecode_or_type: str | type) -> str:
    """``'i'`` for ``'i'`` or ``ctypes.c_int``.

    Example:
        >>> import ctypes
        >>> typecode(ctypes.c_double)
        'd'
    """
    if isinstance(typecode_or_type, str):
        return typecode_or_type
    code = getattr(typecode_or_type, "_type_", None)
    if not isinstance(code, str):
        raise TypeError(f"expected an array typecode or a ctypes type, got {typecode_or_type!r}")
    return code


class Acquirer:
    """A manager-held ``Lock``, ``RLock``, ``Semaphore`` or ``BoundedSemaphore``.

    ``acquire(False, timeout)`` ignores the timeout, as ``multiprocessing``'s
    locks do (``threading``'s raise ``ValueError``).
    """

    def __init__(self, proxy: Any, kind: str) -> None:
        self._proxy, self._kind = proxy, kind

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        return bool(self._proxy.acquire(block, timeout if block else None))

    def release(self) -> None:
        self._proxy.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{self._kind}(manager-held) at {id(self):#x}>"


class Event:
    """A manager-held ``Event``; ``repr`` shows ``set``/``unset`` as ``multiprocessing.Event`` does."""

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy

    def is_set(self) -> bool:
        return bool(self._proxy.is_set())

    def set(self) -> None:
        self._proxy.set()

    def clear(self) -> None:
        self._proxy.clear()

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._proxy.wait(timeout))

    def __repr__(self) -> str:
        return f"<Event at {id(self):#x} {'set' if self.is_set() else 'unset'}>"


class Queue:
    """A manager-held queue with ``multiprocessing.Queue``'s methods.

    ``close()`` and ``join_thread()`` act on this process's handle only (as in
    the standard library); a copy sent to another process is open there.
    """

    def __init__(self, proxy: Any, maxsize: int = 0) -> None:
        self._proxy, self._maxsize, self._closed = proxy, maxsize, False

    def __getstate__(self) -> dict[str, Any]:
        return {"_proxy": self._proxy, "_maxsize": self._maxsize, "_closed": False}

    def _check_closed(self) -> None:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        self._check_closed()
        try:
            self._proxy.put(obj, block, timeout)
        except queue.Full:
            raise
        except Exception:
            try:
                ForkingPickler.dumps(obj)
            except Exception:
                # The standard library pickles in a feeder thread, which prints the error and
                # drops the item: the caller goes on, and so does the queue.
                traceback.print_exc(file=sys.stderr)
                return
            raise

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self._check_closed()
        return self._proxy.get(block, timeout)

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        return int(self._proxy.qsize())

    def empty(self) -> bool:
        return bool(self._proxy.empty())

    def full(self) -> bool:
        return bool(self._proxy.full())

    def close(self) -> None:
        """No more ``put``/``get`` through this handle."""
        self._closed = True

    def join_thread(self) -> None:
        """Nothing to wait for: items reach the manager when ``put`` returns."""
        if not self._closed:
            raise ValueError(f"Queue {self!r} not closed")

    def cancel_join_thread(self) -> None:
        """Nothing to cancel (see :meth:`join_thread`)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(manager-held) at {id(self):#x} maxsize={self._maxsize}>"


class JoinableQueue(Queue):
    """A :class:`Queue` with ``task_done()`` and ``join()``."""

    def task_done(self) -> None:
        self._proxy.task_done()

    def join(self) -> None:
        self._proxy.join()


class _Locked:
    """The lock methods of ``multiprocessing``'s synchronized wrappers, over ``self._lock``."""

    _lock: Any

    def get_lock(self) -> Any:
        return self._lock

    def acquire(self, *args: Any) -> bool:
        return bool(self._lock.acquire(*args))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)


class SharedValue:
    """A manager-held value without a lock, like ``multiprocessing.RawValue``: ``.value``."""

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy

    @property
    def value(self) -> Any:
        return self._proxy.value

    @value.setter
    def value(self, new: Any) -> None:
        self._proxy.value = new

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.value!r}>"


class SynchronizedValue(_Locked, SharedValue):
    """A manager-held value with a lock, like ``multiprocessing.Value``: ``.value``, ``get_lock()``, ``get_obj()``."""

    def __init__(self, proxy: Any, lock: Any) -> None:
        super().__init__(proxy)
        self._lock = lock

    def get_obj(self) -> SharedValue:
        return SharedValue(self._proxy)


class SharedArray:
    """A manager-held array without a lock, like ``multiprocessing.RawArray`` (slices read as lists)."""

    def __init__(self, proxy: Any, code: str) -> None:
        self._proxy, self._code = proxy, code

    def __len__(self) -> int:
        return len(self._proxy)

    def __getitem__(self, index: int | slice) -> Any:
        value = self._proxy[index]
        return list(value) if isinstance(index, slice) else value

    def __setitem__(self, index: int | slice, value: Any) -> None:
        if isinstance(index, slice) and not isinstance(value, array.array):
            value = array.array(self._code, value if isinstance(value, Iterable) else [value])
        self._proxy[index] = value

    def __iter__(self) -> Iterator[Any]:
        return iter(self[:])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self[:]!r}>"


class SynchronizedArray(_Locked, SharedArray):
    """A manager-held array with a lock, like ``multiprocessing.Array``: ``get_lock()``, ``get_obj()``."""

    def __init__(self, proxy: Any, code: str, lock: Any) -> None:
        super().__init__(proxy, code)
        self._lock = lock

    def get_obj(self) -> SharedArray:
        return SharedArray(self._proxy, self._code)
