"""Handles of named shared objects: ``Counter``, ``Dict``, ``List``, ``Queue``, ``Event``, ``Barrier``,
``Lock``, ``Semaphore`` and user classes (:func:`shared`).

A handle is created-or-attached by name: ``Counter("jobs/42/count")`` makes the
counter if the node service has none of that name, and attaches to it otherwise
(the initial value is then ignored). Every method is one atomic call on the
service. Handles pickle as ``(name, address)``, so they travel to workers of any
backend as call arguments and reconnect there.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> svc = NodeService(TierConfig(memory_limit="16MiB"), Settings(home=Path(tempfile.mkdtemp()))).start()
    >>> hits = Counter("demo/hits", address=svc.address)
    >>> hits.add(3), hits.compare_and_set(3, 10), hits.get()
    (3, True, 10)
    >>> d = Dict("demo/seen", address=svc.address)
    >>> d["a"] = 1; d.add("a", 2), dict(d.items())
    (3, {'a': 3})
    >>> svc.stop()
"""

from __future__ import annotations

import pickle
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import cloudpickle

from xtremehub.config import Settings
from xtremehub.ephemeral.rpc import authkey_for, remember_authkey
from xtremehub.errors import LockTimeout
from xtremehub.state.client import StateClient, client_for, connect

__all__ = ["Barrier", "Counter", "Dict", "Event", "List", "Lock", "Queue", "Semaphore", "SharedObject", "shared"]

T = TypeVar("T")


class SharedObject:
    """A handle of one named object on a node service."""

    kind: ClassVar[str]
    _owned: ClassVar[bool] = False  # held by a client (locks): calls open the session connection

    name: str
    address: str

    def _open(
        self,
        name: str,
        address: str | None,
        settings: Settings | None,
        *init_args: Any,
        **init_kwargs: Any,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"a shared object needs a non-empty name, not {name!r}")
        self.name = name
        self.address = connect(address, settings=settings)
        self._client.call(name, self.kind, "__create__", create=True, init=(init_args, init_kwargs))

    @property
    def _client(self) -> StateClient:
        return client_for(self.address)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._client.call(self.name, self.kind, method, args, kwargs, owned=self._owned)

    def _wait(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._client.call(self.name, self.kind, method, args, kwargs, waits=True, owned=self._owned)

    def delete(self) -> bool:
        """Remove the object from the service (handles elsewhere then raise :class:`StateNotFound`)."""
        answer, _ = self._client.rpc.call("state.delete", {"name": self.name})
        return bool(answer["deleted"])

    def __getstate__(self) -> dict[str, Any]:
        # A pickled handle carries the service's authkey (like a multiprocessing proxy its
        # manager's) so that workers elsewhere (Ray, Dask, spawned processes) may use it.
        key = authkey_for(self.address)
        return {**self.__dict__, "_authkey": key.hex() if key is not None else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        key = state.pop("_authkey", None)
        if key:
            remember_authkey(state["address"], bytes.fromhex(key))
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.address}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (self.name, self.address) == (other.name, other.address)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name, self.address))


class Counter(SharedObject):
    """A number (any value with ``+``) with atomic ``add`` and ``compare_and_set``."""

    kind = "counter"

    def __init__(self, name: str, initial: Any = 0, *, address: str | None = None, settings: Settings | None = None):
        self._open(name, address, settings, initial)

    def add(self, n: Any = 1) -> Any:
        """Add ``n``; the new value."""
        return self._call("add", n)

    def get(self) -> Any:
        return self._call("get")

    def set(self, value: Any) -> None:
        self._call("set", value)

    def add_each(self, increments: list[Any]) -> list[Any]:
        """``add(n)`` for each ``n``, pipelined on one connection (each atomic); the values after each."""
        return self._client.pipeline([(self.name, self.kind, "add", (n,)) for n in increments])

    def compare_and_set(self, expected: Any, new: Any) -> bool:
        """Set ``new`` if the value is ``expected``; whether it did."""
        return bool(self._call("compare_and_set", expected, new))

    @property
    def value(self) -> Any:
        return self.get()

    @value.setter
    def value(self, new: Any) -> None:
        self.set(new)


class Dict(SharedObject):
    """A dict whose methods are atomic, plus ``add(key, n)`` and ``compare_and_set(key, expected, new)``."""

    kind = "dict"

    def __init__(
        self, name: str, initial: Any = (), *, address: str | None = None, settings: Settings | None = None
    ) -> None:
        self._open(name, address, settings, dict(initial))

    def __getitem__(self, key: Any) -> Any:
        return self._call("__getitem__", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._call("__setitem__", key, value)

    def __delitem__(self, key: Any) -> None:
        self._call("__delitem__", key)

    def __contains__(self, key: object) -> bool:
        return bool(self._call("__contains__", key))

    def __len__(self) -> int:
        return int(self._call("__len__"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def get(self, key: Any, default: Any = None) -> Any:
        return self._call("get", key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        return self._call("pop", key, *default)

    def popitem(self) -> tuple[Any, Any]:
        key, value = self._call("popitem")
        return key, value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self._call("setdefault", key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._call("update", *[dict(a) for a in args], **kwargs)

    def keys(self) -> list[Any]:
        return list(self._call("keys"))

    def values(self) -> list[Any]:
        return list(self._call("values"))

    def items(self) -> list[tuple[Any, Any]]:
        return list(self._call("items"))

    def clear(self) -> None:
        self._call("clear")

    def copy(self) -> dict[Any, Any]:
        """A snapshot as a plain dict."""
        return dict(self._call("copy"))

    def add(self, key: Any, n: Any = 1, default: Any = 0) -> Any:
        """``d[key] = d.get(key, default) + n``, atomically; the new value."""
        return self._call("add", key, n, default)

    def compare_and_set(self, key: Any, expected: Any, new: Any) -> bool:
        return bool(self._call("compare_and_set", key, expected, new))


class List(SharedObject):
    """A list whose methods are atomic (``append``, ``extend``, ``pop``, slices...)."""

    kind = "list"

    def __init__(
        self, name: str, initial: Any = (), *, address: str | None = None, settings: Settings | None = None
    ) -> None:
        self._open(name, address, settings, list(initial))

    def __getitem__(self, index: Any) -> Any:
        return self._call("__getitem__", index)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._call("__setitem__", index, value)

    def __delitem__(self, index: Any) -> None:
        self._call("__delitem__", index)

    def __len__(self) -> int:
        return int(self._call("__len__"))

    def __contains__(self, value: object) -> bool:
        return bool(self._call("__contains__", value))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.copy())

    def call(self, method: str, *args: Any) -> Any:
        """Any other list method by name (``count``, ``index``, ``sort``, ``__iadd__``...), atomically."""
        return self._call(method, *args)

    def append(self, value: Any) -> None:
        self._call("append", value)

    def extend(self, values: Any) -> None:
        self._call("extend", list(values))

    def insert(self, index: int, value: Any) -> None:
        self._call("insert", index, value)

    def pop(self, index: int = -1) -> Any:
        return self._call("pop", index)

    def remove(self, value: Any) -> None:
        self._call("remove", value)

    def index(self, value: Any, *args: Any) -> int:
        return int(self._call("index", value, *args))

    def count(self, value: Any) -> int:
        return int(self._call("count", value))

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        self._call("sort", key=key, reverse=reverse)

    def reverse(self) -> None:
        self._call("reverse")

    def clear(self) -> None:
        self._call("clear")

    def copy(self) -> list[Any]:
        """A snapshot as a plain list."""
        return list(self._call("copy"))


class Queue(SharedObject):
    """A FIFO queue (``maxsize`` 0: unbounded) with ``queue.Queue``'s methods; ``get``/``put`` wait."""

    kind = "queue"

    def __init__(
        self, name: str, maxsize: int = 0, *, address: str | None = None, settings: Settings | None = None
    ) -> None:
        self._open(name, address, settings, maxsize)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Raises ``queue.Full`` when it cannot put in time."""
        self._wait("put", item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Raises ``queue.Empty`` when nothing comes in time."""
        return self._wait("get", block, timeout)

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        return int(self._call("qsize"))

    def empty(self) -> bool:
        return self.qsize() == 0

    def task_done(self) -> None:
        self._call("task_done")

    def join(self, timeout: float | None = None) -> bool:
        return bool(self._wait("join", timeout))


class Event(SharedObject):
    kind = "event"

    def __init__(self, name: str, *, address: str | None = None, settings: Settings | None = None) -> None:
        self._open(name, address, settings)

    def set(self) -> None:
        self._call("set")

    def clear(self) -> None:
        self._call("clear")

    def is_set(self) -> bool:
        return bool(self._call("is_set"))

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._wait("wait", timeout))


class Barrier(SharedObject):
    """``parties`` callers of :meth:`wait` meet; a party waiting longer than ``timeout`` breaks the
    barrier for all (:class:`~xtremehub.errors.BarrierBroken`) until :meth:`reset`.

    ``action`` (picklable) runs in the last party to arrive, before the others go on.
    """

    kind = "barrier"

    def __init__(
        self,
        name: str,
        parties: int,
        *,
        action: Callable[[], Any] | None = None,
        timeout: float | None = None,
        address: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.timeout, self.action = timeout, action
        self._open(name, address, settings, parties, action is not None)

    def wait(self, timeout: float | None = None) -> int:
        """This party's arrival index (``parties - 1`` for the first, 0 for the last)."""
        answer = self._wait("wait", self.timeout if timeout is None else timeout)
        if isinstance(answer, tuple):  # the last party: run the action, then let the others go
            _, index, _generation = answer
            try:
                if self.action is not None:
                    self.action()
            except BaseException:
                self._call("abort")
                raise
            self._call("release")
            return int(index)
        return int(answer)

    def abort(self) -> None:
        self._call("abort")

    def reset(self) -> None:
        self._call("reset")

    def _info(self) -> dict[str, Any]:
        return dict(self._call("info"))

    @property
    def parties(self) -> int:
        return int(self._info()["parties"])

    @property
    def n_waiting(self) -> int:
        return int(self._info()["n_waiting"])

    @property
    def broken(self) -> bool:
        return bool(self._info()["broken"])

    @property
    def generation(self) -> int:
        """How many times the barrier released its parties."""
        return int(self._info()["generation"])


class Lock(SharedObject):
    """A lock held by one thread of one client; released by the service if that client's process ends.

    ``with lock:`` waits at most ``timeout`` (``None``: forever) and then raises
    :class:`~xtremehub.errors.LockTimeout`; ``acquire`` returns ``False`` instead, as ``threading``'s.
    """

    kind = "lock"
    _owned = True

    def __init__(
        self,
        name: str,
        *,
        timeout: float | None = None,
        reentrant: bool = False,
        address: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.timeout = timeout
        self._open(name, address, settings, reentrant)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return bool(self._wait("acquire", blocking, timeout))

    def release(self) -> None:
        """:class:`~xtremehub.errors.NotLockOwner` if this thread does not hold it."""
        self._call("release")

    def locked(self) -> bool:
        return self._call("info")["owner"] is not None

    def owned(self) -> bool:
        """Whether this thread of this process holds it."""
        return bool(self._call("info")["mine"])

    def __enter__(self) -> Lock:
        if not self.acquire(True, self.timeout):
            raise LockTimeout(f"lock {self.name!r} not acquired within {self.timeout}s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Semaphore(SharedObject):
    """A counting semaphore (``bound``: ``release`` past it raises ``ValueError``); permits a client's
    process still holds when it ends are given back."""

    kind = "semaphore"
    _owned = True

    def __init__(
        self,
        name: str,
        value: int = 1,
        *,
        bound: int | None = None,
        timeout: float | None = None,
        address: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.timeout = timeout
        self._open(name, address, settings, value, bound)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return bool(self._wait("acquire", blocking, timeout))

    def release(self, n: int = 1) -> None:
        self._call("release", n)

    def get_value(self) -> int:
        return int(self._call("get_value"))

    def __enter__(self) -> Semaphore:
        if not self.acquire(True, self.timeout):
            raise LockTimeout(f"semaphore {self.name!r} not acquired within {self.timeout}s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Method:
    def __init__(self, handle: SharedInstance, method: str) -> None:
        self._handle, self._method = handle, method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._handle._call("invoke", self._method, *args, **kwargs)


class SharedInstance(SharedObject):
    """A handle of an instance of a :func:`shared` class: its public methods run on the service."""

    kind = "custom"
    _cls: ClassVar[type]

    def __init__(
        self, name: str, *args: Any, address: str | None = None, settings: Settings | None = None, **kwargs: Any
    ) -> None:
        self._open(name, address, settings, _by_value(self._cls), args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # by value: the worker that unpickles it may not import the module that defined the class
        key = authkey_for(self.address)  # like SharedObject.__getstate__
        return (_attach_instance, (_by_value(self._cls), self.name, self.address, key.hex() if key else None))

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_") or not callable(getattr(self._cls, method, None)):
            raise AttributeError(f"{self._cls.__qualname__} has no public method {method!r}")
        return _Method(self, method)


def _attach_instance(cls: type, name: str, address: str, authkey: str | None = None) -> SharedInstance:
    if authkey:
        remember_authkey(address, bytes.fromhex(authkey))
    handle_cls = shared(cls)
    handle = handle_cls.__new__(handle_cls)
    handle.name, handle.address = name, address
    return handle


def _by_value(cls: type) -> type:
    """``cls``, wrapped so that the service unpickles the class itself (its module may not be importable there)."""
    module = sys.modules.get(cls.__module__)
    if module is None or cls.__module__ == "__main__":
        return cls
    return _ByValue(cls)  # type: ignore[return-value]


class _ByValue:
    """Pickles a class by value (cloudpickle), even when its module is importable here."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __reduce__(self) -> tuple[Any, ...]:
        module = sys.modules[self.cls.__module__]
        with _registry_lock:
            registered = self.cls.__module__ in cloudpickle.cloudpickle._PICKLE_BY_VALUE_MODULES  # the caller's
            if not registered:
                cloudpickle.register_pickle_by_value(module)
            try:
                data = cloudpickle.dumps(self.cls, protocol=5)
            finally:
                if not registered:
                    cloudpickle.unregister_pickle_by_value(module)
        return (pickle.loads, (data,))


_registry_lock = threading.Lock()


def shared(cls: type[T]) -> type[SharedInstance]:
    """Turn a class into a shared one: ``Cls(name, *args)`` creates (with ``Cls.__init__(*args)``) or
    attaches the instance ``name`` on the service, and each public method call runs there atomically
    (one call at a time per instance), Crucial's model.

    Example:
        >>> @shared
        ... class Tally:
        ...     def __init__(self):
        ...         self.n = 0
        ...     def bump(self, k):
        ...         self.n += k
        ...         return self.n
        >>> Tally.__name__
        'Tally'
    """
    handle = type(cls.__name__, (SharedInstance,), {"_cls": cls, "__doc__": cls.__doc__})
    handle.__qualname__ = cls.__qualname__
    handle.__module__ = cls.__module__
    return handle
