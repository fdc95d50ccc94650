"""The server side of :mod:`xtremehub.state`: named shared objects held by the node service.

:func:`register` adds four handlers to a node service's
:class:`~xtremehub.ephemeral.rpc.RpcServer`: ``state.op`` (one method of one
object, created on first use), ``state.delete``, ``state.names`` and
``state.session``. Every method of an object runs under that object's condition
variable, so each call is atomic; the blocking ones (``Lock.acquire``,
``Barrier.wait``, ``Queue.get``...) wait on it, in the thread of their connection.

Locks and semaphores remember which client session holds them. A client opens
one *session connection* per process (``state.session``) and leaves it open; when
the server sees it close (the process ended, however it ended) it releases what
that session held.

Example:
    >>> states = SharedState()  # what register(rpc) adds to a node service
    >>> states.call("jobs/count", "counter", "add", "s1", (5,), {}, create=True, init=((), {}))
    5
"""

from __future__ import annotations

import collections
import itertools
import logging
import pickle
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import cloudpickle

from xtremehub.ephemeral.rpc import Reply, Request, RpcServer
from xtremehub.errors import (
    BarrierBroken,
    NotLockOwner,
    StateError,
    StateNotFound,
    StateTypeMismatch,
    XHubError,
)

__all__ = ["KINDS", "SharedState", "dumps", "loads", "register"]

log = logging.getLogger(__name__)


def dumps(value: Any) -> bytes:
    """Pickle, with cloudpickle for what plain pickle refuses (lambdas, classes of ``__main__``)."""
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        return bytes(cloudpickle.dumps(value, protocol=5))


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(0.0, float(timeout))


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class _Object:
    """One shared object; methods ``op_<name>(owner, *args, **kwargs)`` run under :attr:`cond`."""

    kind: ClassVar[str]
    forward: ClassVar[frozenset[str]] = frozenset()  # methods of :attr:`data` callable as they are

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.data: Any = None

    def call(self, method: str, owner: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        op = getattr(self, f"op_{method}", None)
        with self.cond:
            if op is not None:
                return op(owner, *args, **kwargs)
            if method in self.forward:
                result = getattr(self.data, method)(*args, **kwargs)
                if result is self.data:
                    return None
                if isinstance(
                    result, collections.abc.KeysView | collections.abc.ValuesView | collections.abc.ItemsView
                ):
                    return list(result)
                return result
        raise StateError(f"{self.kind} has no method {method!r}")

    def session_ended(self, session: str) -> None:
        """Give back what ``session`` held (locks, semaphores)."""


class _Counter(_Object):
    kind = "counter"

    def __init__(self, value: Any = 0) -> None:
        super().__init__()
        self.data = value

    def op_get(self, owner: str) -> Any:
        return self.data

    def op_set(self, owner: str, value: Any) -> None:
        self.data = value

    def op_add(self, owner: str, n: Any = 1) -> Any:
        self.data += n
        return self.data

    def op_compare_and_set(self, owner: str, expected: Any, new: Any) -> bool:
        if self.data != expected:
            return False
        self.data = new
        return True


_DICT_METHODS = ["__getitem__", "__setitem__", "__delitem__", "__contains__", "__len__", "get", "pop", "popitem"]
_DICT_METHODS += ["setdefault", "update", "keys", "values", "items", "clear", "copy"]
_LIST_METHODS = ["__getitem__", "__setitem__", "__delitem__", "__contains__", "__len__", "append", "extend"]
_LIST_METHODS += ["insert", "pop", "remove", "index", "count", "reverse", "sort", "clear", "copy", "__iadd__"]
_LIST_METHODS += ["__imul__", "__add__", "__mul__", "__rmul__"]


class _Dict(_Object):
    kind = "dict"
    forward = frozenset(_DICT_METHODS)

    def __init__(self, initial: Any = ()) -> None:
        super().__init__()
        self.data = dict(initial)

    def op_add(self, owner: str, key: Any, n: Any = 1, default: Any = 0) -> Any:
        self.data[key] = self.data.get(key, default) + n
        return self.data[key]

    def op_key_at(self, owner: str, position: int, size: int) -> Any:
        """The key at ``position`` of an iteration that started at ``size`` keys."""
        if len(self.data) != size:
            raise RuntimeError("dictionary changed size during iteration")
        if position >= size:
            raise IndexError(position)
        return next(itertools.islice(self.data, position, None))

    def op_compare_and_set(self, owner: str, key: Any, expected: Any, new: Any) -> bool:
        if self.data.get(key) != expected:
            return False
        self.data[key] = new
        return True


class _List(_Object):
    kind = "list"
    forward = frozenset(_LIST_METHODS)

    def __init__(self, initial: Any = ()) -> None:
        super().__init__()
        self.data = list(initial)


class _Queue(_Object):
    kind = "queue"

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__()
        self.data: collections.deque[Any] = collections.deque()
        self.maxsize = maxsize
        self.unfinished = 0

    def op_put(self, owner: str, item: Any, block: bool = True, timeout: float | None = None) -> None:
        deadline = _deadline(timeout if block else 0)
        while 0 < self.maxsize <= len(self.data):
            left = _left(deadline)
            if left is not None and left <= 0:
                raise queue.Full
            self.cond.wait(left)
        self.data.append(item)
        self.unfinished += 1
        self.cond.notify_all()

    def op_get(self, owner: str, block: bool = True, timeout: float | None = None) -> Any:
        deadline = _deadline(timeout if block else 0)
        while not self.data:
            left = _left(deadline)
            if left is not None and left <= 0:
                raise queue.Empty
            self.cond.wait(left)
        item = self.data.popleft()
        self.cond.notify_all()
        return item

    def op_qsize(self, owner: str) -> int:
        return len(self.data)

    def op_task_done(self, owner: str) -> None:
        if self.unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self.unfinished -= 1
        self.cond.notify_all()

    def op_join(self, owner: str, timeout: float | None = None) -> bool:
        return self.cond.wait_for(lambda: self.unfinished == 0, timeout)


class _Event(_Object):
    kind = "event"

    def __init__(self) -> None:
        super().__init__()
        self.data = False

    def op_set(self, owner: str) -> None:
        self.data = True
        self.cond.notify_all()

    def op_clear(self, owner: str) -> None:
        self.data = False

    def op_is_set(self, owner: str) -> bool:
        return bool(self.data)

    def op_wait(self, owner: str, timeout: float | None = None) -> bool:
        return bool(self.cond.wait_for(lambda: self.data, timeout))


class _Barrier(_Object):
    """``parties`` meet; each generation releases them together. A timeout breaks it for everyone.

    With ``action``, the last party to arrive gets ``("trip", index)`` back and the
    others wait until it calls ``release`` (the action ran) or ``abort``.
    """

    kind = "barrier"

    def __init__(self, parties: int, action: bool = False) -> None:
        super().__init__()
        if parties < 1:
            raise ValueError(f"a barrier needs at least one party, not {parties}")
        self.parties, self.action = parties, action
        self.generation, self.count, self.broken = 0, 0, False
        self.reset_generations: set[int] = set()
        self.tripping = False

    def op_wait(self, owner: str, timeout: float | None = None) -> Any:
        if self.broken:
            raise BarrierBroken(f"barrier broken (generation {self.generation})")
        while self.tripping:  # the previous generation's action still runs
            self.cond.wait()
        generation, index = self.generation, self.count
        self.count += 1
        if self.count == self.parties:
            if self.action:
                self.tripping = True
                return ("trip", index, generation)
            self._next()
            return index
        deadline = _deadline(timeout)
        while True:
            if self.generation != generation:
                if generation in self.reset_generations:
                    raise BarrierBroken(f"barrier reset while waiting (generation {generation})")
                return index
            if self.broken:
                raise BarrierBroken(f"barrier broken while waiting (generation {generation})")
            left = _left(deadline)
            if left is not None and left <= 0:
                self.broken = True
                self.cond.notify_all()
                raise BarrierBroken(
                    f"barrier timed out after {timeout}s with {self.count} of {self.parties} parties "
                    f"(generation {generation}); it is broken until reset"
                )
            self.cond.wait(left)

    def _next(self) -> None:
        self.count, self.tripping = 0, False
        self.generation += 1
        self.cond.notify_all()

    def op_release(self, owner: str) -> None:
        self._next()

    def op_abort(self, owner: str) -> None:
        self.broken, self.tripping = True, False
        self.cond.notify_all()

    def op_reset(self, owner: str) -> None:
        if self.count > 0 or self.tripping:
            self.reset_generations.add(self.generation)
            self.generation += 1
        self.count, self.broken, self.tripping = 0, False, False
        self.cond.notify_all()

    def op_info(self, owner: str) -> dict[str, Any]:
        return {
            "parties": self.parties,
            "n_waiting": 0 if self.broken else self.count,
            "broken": self.broken,
            "generation": self.generation,
        }


class _Lock(_Object):
    """A lock held by an owner (``<session>/<thread>``); ``reentrant`` counts re-acquisitions."""

    kind = "lock"

    def __init__(self, reentrant: bool = False) -> None:
        super().__init__()
        self.reentrant = reentrant
        self.owner: str | None = None
        self.depth = 0

    def op_acquire(self, owner: str, blocking: bool = True, timeout: float | None = None) -> bool:
        if self.reentrant and self.owner == owner:
            self.depth += 1
            return True
        deadline = _deadline(timeout if blocking else 0)
        while self.owner is not None:
            left = _left(deadline)
            if left is not None and left <= 0:
                return False
            self.cond.wait(left)
        self.owner, self.depth = owner, 1
        return True

    def op_release(self, owner: str, force: bool = False) -> None:
        if self.owner is None:
            raise NotLockOwner("release of an unlocked lock")
        if self.owner != owner and not force:
            raise NotLockOwner(f"the lock is held by {self.owner}, not by this client ({owner})")
        self.depth -= 1
        if self.depth == 0 or force:
            self.owner, self.depth = None, 0
            self.cond.notify_all()

    def op_info(self, owner: str) -> dict[str, Any]:
        return {"owner": self.owner, "depth": self.depth, "mine": self.owner == owner}

    def session_ended(self, session: str) -> None:
        if self.owner is not None and self.owner.split("/", 1)[0] == session:
            log.warning("shared lock released: its holder %s is gone", self.owner)
            self.owner, self.depth = None, 0
            self.cond.notify_all()


class _Semaphore(_Object):
    kind = "semaphore"

    def __init__(self, value: int = 1, bound: int | None = None) -> None:
        super().__init__()
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self.data, self.bound = value, bound
        self.held: collections.Counter[str] = collections.Counter()

    def op_acquire(self, owner: str, blocking: bool = True, timeout: float | None = None) -> bool:
        deadline = _deadline(timeout if blocking else 0)
        while self.data <= 0:
            left = _left(deadline)
            if left is not None and left <= 0:
                return False
            self.cond.wait(left)
        self.data -= 1
        self.held[owner.split("/", 1)[0]] += 1
        return True

    def op_release(self, owner: str, n: int = 1) -> None:
        if self.bound is not None and self.data + n > self.bound:
            raise ValueError("semaphore or lock released too many times")
        self.data += n
        session = owner.split("/", 1)[0]
        self.held[session] = max(0, self.held[session] - n)
        self.cond.notify_all()

    def op_get_value(self, owner: str) -> int:
        return int(self.data)

    def session_ended(self, session: str) -> None:
        if self.held.get(session):
            self.data += self.held.pop(session)
            self.cond.notify_all()


class _Custom(_Object):
    """An instance of a user's class (``@state.shared``): each public method call is atomic."""

    kind = "custom"

    def __init__(self, cls: type, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cls_name = f"{cls.__module__}.{cls.__qualname__}"
        self.data = cls(*args, **(kwargs or {}))

    def op_invoke(self, owner: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if method.startswith("_"):
            raise StateError(f"{self.cls_name}.{method} is private: only public methods run on the server")
        return getattr(self.data, method)(*args, **kwargs)


KINDS: dict[str, Callable[..., _Object]] = {
    cls.kind: cls for cls in (_Counter, _Dict, _List, _Queue, _Event, _Barrier, _Lock, _Semaphore, _Custom)
}


class SharedState:
    """The named objects of one node service, and the sessions of its clients."""

    def __init__(self) -> None:
        self._objects: dict[str, _Object] = {}
        self._lock = threading.Lock()
        self._ended: set[str] = set()

    def _get(self, name: str, kind: str, create: bool, init: tuple[tuple[Any, ...], dict[str, Any]] | None) -> _Object:
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                if not create or init is None:
                    raise StateNotFound(f"no shared object named {name!r} (was the node service restarted?)")
                args, kwargs = init
                obj = self._objects[name] = KINDS[kind](*args, **kwargs)
        if obj.kind != kind:
            raise StateTypeMismatch(f"shared object {name!r} is a {obj.kind}, not a {kind}")
        if create and isinstance(obj, _Custom) and init is not None and init[0]:
            cls = init[0][0]
            wanted = f"{cls.__module__}.{cls.__qualname__}"
            if obj.cls_name != wanted:
                raise StateTypeMismatch(f"shared object {name!r} is a {obj.cls_name}, not a {wanted}")
        return obj

    def call(
        self,
        name: str,
        kind: str,
        method: str,
        owner: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        create: bool = False,
        init: tuple[tuple[Any, ...], dict[str, Any]] | None = None,
    ) -> Any:
        """``method(*args, **kwargs)`` of the object ``name`` (created from ``init`` if missing and ``create``)."""
        if kind not in KINDS:
            raise StateError(f"unknown kind of shared object {kind!r}; known: {sorted(KINDS)}")
        if owner.split("/", 1)[0] in self._ended:
            raise StateError(f"client session {owner} has ended")
        obj = self._get(name, kind, create, init)
        if method == "__create__":
            return None
        return obj.call(method, owner, args, kwargs)

    def delete(self, name: str) -> bool:
        with self._lock:
            return self._objects.pop(name, None) is not None

    def names(self, prefix: str = "") -> dict[str, str]:
        with self._lock:
            return {n: o.kind for n, o in sorted(self._objects.items()) if n.startswith(prefix)}

    def session_ended(self, session: str) -> None:
        self._ended.add(session)
        with self._lock:
            objects = list(self._objects.values())
        for obj in objects:
            with obj.cond:
                obj.session_ended(session)


def register(rpc: RpcServer) -> SharedState:
    """Add the ``state.*`` handlers to ``rpc``; the objects live as long as the server's process."""
    states = SharedState()

    @rpc.handler("state.op")
    def op(req: Request) -> Reply:
        q = req.header
        init, args, kwargs = loads(req.payload) if req.payload else (None, (), {})
        try:
            result = states.call(
                q["name"],
                q["kind"],
                q["method"],
                q.get("owner", ""),
                args,
                kwargs,
                create=q.get("create", False),
                init=init,
            )
        except XHubError:
            raise
        except Exception as exc:  # the caller's own error (KeyError, queue.Empty, a custom method's), as it is
            try:
                return Reply({"raised": True}, dumps(exc))
            except Exception:
                raise StateError(f"{q['name']}.{q['method']}: {type(exc).__name__}: {exc}") from exc
        return Reply({}, dumps(result) if result is not None else b"")

    @rpc.handler("state.delete")
    def delete(req: Request) -> Reply:
        return Reply({"deleted": states.delete(req.header["name"])})

    @rpc.handler("state.names")
    def names(req: Request) -> Reply:
        return Reply({"names": states.names(req.header.get("prefix", ""))})

    @rpc.handler("state.session")
    def session(req: Request) -> Reply:
        """Held open by a client process; what it held is released when it closes."""
        sid = str(req.header["session"])
        req.conn.send({"ok": True})
        try:
            while True:
                req.conn.recv()
        except (ConnectionError, OSError):
            pass
        finally:
            states.session_ended(sid)
        raise ConnectionError("session closed")

    return states
