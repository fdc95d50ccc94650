"""Shared state for stateful tasks: named objects with atomic methods, served by the node service.

Crucial's model on XtremeHub: tasks on any backend (local, Ray, Dask, Lithops on
this machine) share counters, dicts, lists, queues, events, barriers, locks and
semaphores, and instances of user classes whose methods run atomically on the
service (:func:`shared`). Objects are created-or-attached by name; handles are
picklable. Semantics on failures and examples: ``docs/state.md``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub import state
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> svc = NodeService(TierConfig(memory_limit="16MiB"), Settings(home=Path(tempfile.mkdtemp()))).start()
    >>> count = state.Counter("jobs/42/count", address=svc.address)
    >>> [count.add() for _ in range(3)][-1]
    3
    >>> with state.Lock("jobs/42/lock", timeout=5, address=svc.address):
    ...     count.add(10)
    13
    >>> svc.stop()
"""

from __future__ import annotations

from xtremehub.state.client import connect
from xtremehub.state.objects import (
    Barrier,
    Counter,
    Dict,
    Event,
    List,
    Lock,
    Queue,
    Semaphore,
    SharedInstance,
    SharedObject,
    shared,
)

__all__ = [
    "Barrier",
    "Counter",
    "Dict",
    "Event",
    "List",
    "Lock",
    "Queue",
    "Semaphore",
    "SharedInstance",
    "SharedObject",
    "connect",
    "shared",
]
