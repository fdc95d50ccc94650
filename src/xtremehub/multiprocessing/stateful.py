"""Shared state of ``xtremehub.multiprocessing`` on the node service (:mod:`xtremehub.state`).

On backends whose workers cannot reach a standard-library manager in the client
process (Ray, Dask through a scheduler address, Lithops on this machine), a
:class:`~xtremehub.multiprocessing.Context` takes its ``Queue``, ``Lock``,
``Value``, ``Array``, ``Barrier``, ``Manager()``... from a :class:`ServiceManager`:
the same method names as a :class:`multiprocessing.managers.SyncManager`, each
returning a handle of a named object on the node service, which the context wraps
with the standard library's API as it wraps a manager's proxies. Handles are
picklable: they travel to workers of any backend as call arguments.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> svc = NodeService(TierConfig(memory_limit="16MiB"), Settings(home=Path(tempfile.mkdtemp()))).start()
    >>> manager = ServiceManager(address=svc.address)
    >>> d = manager.dict(a=1)
    >>> d["b"] = 2; sorted(d.items())
    [('a', 1), ('b', 2)]
    >>> ns = manager.Namespace(); ns.x = 3; ns
    Namespace(x=3)
    >>> svc.stop()
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from xtremehub import state
from xtremehub.config import Settings
from xtremehub.errors import BarrierBroken

__all__ = ["Barrier", "DictProxy", "ListProxy", "Namespace", "ServiceManager"]


class DictProxy(state.Dict):
    """A shared dict whose iterator sees changes (``RuntimeError`` if its size changes), as a manager's."""

    def __iter__(self) -> Iterator[Any]:
        return self._keys(len(self))

    def _keys(self, size: int) -> Iterator[Any]:
        for position in itertools.count():
            try:
                yield self._call("key_at", position, size)
            except IndexError:
                return

    def __repr__(self) -> str:
        return repr(self.copy())


class ListProxy(state.List):
    """A shared list with the operators of a manager's ``ListProxy`` (``+``, ``*=``, live iteration)."""

    def __iter__(self) -> Iterator[Any]:
        for index in itertools.count():
            try:
                yield self[index]
            except IndexError:
                return

    def __iadd__(self, other: Iterable[Any]) -> ListProxy:
        self.extend(other)
        return self

    def __imul__(self, n: int) -> ListProxy:
        self._call("__imul__", n)
        return self

    def __add__(self, other: Iterable[Any]) -> list[Any]:
        return self.copy() + list(other)

    def __mul__(self, n: int) -> list[Any]:
        return self.copy() * n

    def __repr__(self) -> str:
        return repr(self.copy())


class Namespace:
    """A manager's ``Namespace``: attributes shared (those starting with ``_`` stay local)."""

    def __init__(self, values: state.Dict) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values: state.Dict = object.__getattribute__(self, "_values")
        try:
            return values[name]
        except KeyError:
            raise AttributeError(f"'Namespace' object has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._values[name] = value

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            object.__delattr__(self, name)
            return
        try:
            del self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Namespace, (self._values,))

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in sorted(self._values.items()))
        return f"Namespace({items})"


class Barrier:
    """``threading.Barrier``'s API on a shared barrier (``BrokenBarrierError`` as the standard library's)."""

    def __init__(self, handle: state.Barrier) -> None:
        self._handle = handle

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self._handle.wait(timeout)
        except BarrierBroken as exc:
            raise threading.BrokenBarrierError(str(exc)) from exc

    def abort(self) -> None:
        self._handle.abort()

    def reset(self) -> None:
        self._handle.reset()

    @property
    def parties(self) -> int:
        return self._handle.parties

    @property
    def n_waiting(self) -> int:
        return self._handle.n_waiting

    @property
    def broken(self) -> bool:
        return self._handle.broken


class _Queue(state.Queue):
    def __init__(self, name: str, maxsize: int = 0, *, address: str | None = None) -> None:
        super().__init__(name, maxsize, address=address)
        self.maxsize = maxsize

    def full(self) -> bool:
        return 0 < self.maxsize <= self.qsize()


class ServiceManager:
    """``SyncManager``'s constructors, on the node service (see the module docstring).

    Its objects are named ``mp/<manager id>/<n>``; :meth:`shutdown` deletes them.
    """

    def __init__(self, *, address: str | None = None, settings: Settings | None = None) -> None:
        self.address = state.connect(address, settings=settings)
        self.prefix = f"mp/{uuid.uuid4().hex[:12]}"
        self._names: list[str] = []
        self._count = itertools.count()
        self._lock = threading.Lock()

    def _name(self, kind: str) -> str:
        with self._lock:
            name = f"{self.prefix}/{kind}-{next(self._count)}"
            self._names.append(name)
            return name

    def Queue(self, maxsize: int = 0) -> _Queue:
        return _Queue(self._name("queue"), maxsize, address=self.address)

    def JoinableQueue(self, maxsize: int = 0) -> _Queue:
        return self.Queue(maxsize)

    def Lock(self) -> state.Semaphore:
        # multiprocessing's Lock is a semaphore of one: any process may release it, once
        return state.Semaphore(self._name("lock"), 1, bound=1, address=self.address)

    def RLock(self) -> state.Lock:
        return state.Lock(self._name("rlock"), reentrant=True, address=self.address)

    def Semaphore(self, value: int = 1) -> state.Semaphore:
        return state.Semaphore(self._name("semaphore"), value, address=self.address)

    def BoundedSemaphore(self, value: int = 1) -> state.Semaphore:
        return state.Semaphore(self._name("semaphore"), value, bound=value, address=self.address)

    def Condition(self, lock: Any = None) -> Any:
        raise NotImplementedError(
            "Condition is not available with shared state on the node service; use an Event, a Queue "
            "or a Barrier (xtremehub.state)"
        )

    def Event(self) -> state.Event:
        return state.Event(self._name("event"), address=self.address)

    def Barrier(self, parties: int, action: Callable[[], Any] | None = None, timeout: float | None = None) -> Barrier:
        handle = state.Barrier(self._name("barrier"), parties, action=action, timeout=timeout, address=self.address)
        return Barrier(handle)

    def Value(self, typecode: Any, value: Any = 0, lock: Any = True) -> state.Counter:
        return state.Counter(self._name("value"), value, address=self.address)

    def Array(self, typecode: Any, sequence: Iterable[Any], lock: Any = True) -> ListProxy:
        return ListProxy(self._name("array"), list(sequence), address=self.address)

    def list(self, sequence: Iterable[Any] = ()) -> ListProxy:
        return ListProxy(self._name("list"), list(sequence), address=self.address)

    def dict(self, *args: Any, **kwargs: Any) -> DictProxy:
        return DictProxy(self._name("dict"), dict(*args, **kwargs), address=self.address)

    def Namespace(self, **kwargs: Any) -> Namespace:
        return Namespace(state.Dict(self._name("namespace"), kwargs, address=self.address))

    # -- SyncManager's life cycle ---------------------------------------------------------------
    def start(self, *args: Any) -> None:
        """Nothing to start: the node service runs already."""

    def shutdown(self) -> None:
        """Delete this manager's objects from the service."""
        with self._lock:
            names, self._names = self._names, []
        for name in names:
            try:
                _delete(name, self.address)
            except Exception:  # the service is gone: so are the objects
                return

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for (no manager process)."""

    def _number_of_objects(self) -> int:
        return 0

    def _debug_info(self) -> str:
        return ""

    def __enter__(self) -> ServiceManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _delete(name: str, address: str) -> None:
    from xtremehub.state.client import client_for

    client_for(address).rpc.call("state.delete", {"name": name})
