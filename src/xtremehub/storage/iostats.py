"""Per-process counters of the bytes that went through the storage layer.

Every :class:`~xtremehub.storage.base.Store` subclass is counted at one place:
``Store.__init_subclass__`` wraps its ``get``, ``_get_range`` and ``put`` with
:func:`counted`, so third-party stores are counted too. Compute workers take a
:func:`snapshot` before and after each task (see
:func:`xtremehub.compute.task.run_call`); the difference is the task's I/O.

The counters are per process (not per thread): when a backend runs several
tasks at once in threads of one process, each task's figures include the I/O
its neighbours did meanwhile.

Example:
    >>> from xtremehub import storage
    >>> before = snapshot()
    >>> _ = storage.put("mem://iostats/a", b"12345")
    >>> _ = storage.get_range("mem://iostats/a", 1, 3)
    >>> after = snapshot()
    >>> after.bytes_read - before.bytes_read, after.bytes_written - before.bytes_written
    (2, 5)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "COUNTERS",
    "IOCounters",
    "IOSnapshot",
    "count_read",
    "counted",
    "snapshot",
    "start_writes",
    "stop_writes",
    "writes_list",
]

F = TypeVar("F", bound=Callable[..., Any])


class IOSnapshot(NamedTuple):
    """Totals since the process started (a forked child starts from its parent's)."""

    bytes_read: int = 0
    bytes_written: int = 0


class IOCounters:
    """The live totals; read ``read``/``written`` directly where a function call is too slow (per task)."""

    __slots__ = ("lock", "read", "written")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.read = 0
        self.written = 0


COUNTERS = IOCounters()
# Set while a counted method runs, so that a store method calling another counted
# method of the same store (``copy`` -> ``get`` + ``put``, ``super().get``) counts once.
_inside = threading.local()


def snapshot() -> IOSnapshot:
    """The bytes read and written through any store by this process so far."""
    return IOSnapshot(COUNTERS.read, COUNTERS.written)


def start_writes() -> list[tuple[str, int]]:
    """Start listing the objects this thread writes (``(url, size)``), until :func:`stop_writes`.

    Compute workers list each task's writes (lineage: which objects a job wrote). Per thread,
    unlike the byte counters: a task's writes are those made by the thread that runs it.
    Returns the list the writes are appended to: a worker running many short tasks reads each
    task's part of it (what was appended meanwhile) instead of starting and stopping per task.
    """
    written: list[tuple[str, int]] = []
    _inside.written = written
    return written


def writes_list() -> list[tuple[str, int]] | None:
    """The list :func:`start_writes` installed on this thread (``None`` when not listing)."""
    written: list[tuple[str, int]] | None = getattr(_inside, "written", None)
    return written


def stop_writes() -> tuple[tuple[str, int], ...]:
    """The objects written since :func:`start_writes` on this thread (and stop listing them).

    Example:
        >>> from xtremehub import storage
        >>> _ = start_writes()
        >>> _ = storage.put("mem://iostats/out.txt", b"123")
        >>> stop_writes()
        (('mem://iostats/out.txt', 3),)
    """
    written: list[tuple[str, int]] | None = getattr(_inside, "written", None)
    _inside.written = None
    return tuple(written or ())


def count_read(nbytes: int) -> None:
    """Count ``nbytes`` read by a store method that is not wrapped by :func:`counted` (a stream)."""
    if not getattr(_inside, "active", False):
        _add(nbytes, 0)


def _add(read: int, written: int) -> None:
    with COUNTERS.lock:
        COUNTERS.read += read
        COUNTERS.written += written


def counted(method: F, kind: str) -> F:
    """Wrap a store method so the bytes it moves are counted (``kind``: ``read``, ``write`` or ``copy``).

    A read counts the length of the returned bytes; a write the ``size`` of the
    returned :class:`~xtremehub.storage.base.ObjectInfo`. A copy counts no bytes here (a
    server-side copy moves none through this process; a streamed one counts its own reads
    and writes) but lists the object it wrote (see :func:`start_writes`).
    """
    if getattr(method, "__xhub_counted__", False):
        return method
    if kind == "copy":

        @functools.wraps(method)
        def copying(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            log = getattr(_inside, "written", None)
            if log is not None and not getattr(_inside, "active", False):
                log.append((str(getattr(result, "url", "")), int(getattr(result, "size", 0))))
            return result

        copying.__xhub_counted__ = True  # type: ignore[attr-defined]
        return copying  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_inside, "active", False):
            return method(*args, **kwargs)
        _inside.active = True
        try:
            result = method(*args, **kwargs)
        finally:
            _inside.active = False
        if kind == "read":
            _add(len(result), 0)
        else:
            size = int(getattr(result, "size", 0))
            _add(0, size)
            log = getattr(_inside, "written", None)
            if log is not None:
                log.append((str(getattr(result, "url", "")), size))
        return result

    wrapper.__xhub_counted__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
