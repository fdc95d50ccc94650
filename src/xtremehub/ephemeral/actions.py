"""Storage actions: Python functions that run next to the data of the ephemeral store.

Register a function on a prefix (or one key) of ``xhub-eph://bucket/``; the node service
runs it in its action worker processes, on the Tier-0 files themselves:

* ``on_write``: ``f(data: bytes) -> bytes`` transforms each object written under the
  prefix before it is stored (filter, encode, compress);
* ``on_read``: ``f(data: bytes, **params) -> bytes`` serves a view of an object
  (a filter, a projection) to :func:`read_view`, with parameters from the reader; plain
  reads still return the stored object;
* ``reducer``: a :class:`~xtremehub.ephemeral.reducers.Reducer` (``"sum_counts"``,
  ``"concatenate"``, ``"sort_merge"``, ``top_k(k)``, or your own associative merge) merges
  every object written under the prefix into the object ``into`` as it arrives. When a
  write's commit returns, the merged object includes it; a partial written again replaces
  its earlier contribution (retries never count twice), a deleted one leaves.

Each action has :class:`ActionLimits` (time, memory, concurrency); a failure is a typed
:class:`~xtremehub.errors.ActionError` for the writer or reader (``ActionFailed`` with
the worker's traceback, ``ActionTimeout``, ``ActionMemoryExceeded``), and keys without
actions never wait for them. Functions must pickle (cloudpickle: lambdas and closures
work); one that does not, or that does not load in a worker, is an
:class:`~xtremehub.errors.InvalidAction` at registration.

Registrations live in the node service's memory: a restarted service has none (register
again; a reducer then rebuilds its object from the partials that survived).

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from xtremehub import storage
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> settings = Settings(home=Path(tempfile.mkdtemp()))
    >>> with NodeService(TierConfig(memory_limit="16MiB"), settings).start():
    ...     _ = register("xhub-eph://job/partials/", reducer="sum_counts",
    ...                  into="xhub-eph://job/counts.json", settings=settings)
    ...     _ = storage.put("xhub-eph://job/partials/0", b'{"ACGTA": 2}', settings=settings)
    ...     _ = storage.put("xhub-eph://job/partials/1", b'{"ACGTA": 1, "TTTTT": 5}', settings=settings)
    ...     json.loads(storage.get("xhub-eph://job/counts.json", settings=settings))
    {'ACGTA': 3, 'TTTTT': 5}
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from xtremehub.config import Settings, default_settings
from xtremehub.ephemeral.action_worker import dumps_function
from xtremehub.ephemeral.client import EphemeralClient, client_for
from xtremehub.ephemeral.config import Size, parse_size
from xtremehub.ephemeral.reducers import Reducer, concatenate, sort_merge, sum_counts, top_k
from xtremehub.errors import ConfigError, InvalidAction, UnsupportedURL

__all__ = [
    "ActionLimits",
    "Reducer",
    "concatenate",
    "list_actions",
    "read_view",
    "register",
    "sort_merge",
    "sum_counts",
    "top_k",
    "unregister",
]

#: Reducers that :func:`register` accepts by name.
BUILTIN_REDUCERS: dict[str, Callable[[], Reducer]] = {
    "sum_counts": sum_counts,
    "sum": sum_counts,
    "concatenate": concatenate,
    "concat": concatenate,
    "sort_merge": sort_merge,
}


@dataclass(frozen=True)
class ActionLimits:
    """Limits of one action, per run.

    Attributes:
        timeout: seconds a run may take; past it its worker is killed (``ActionTimeout``).
        memory: bytes of memory a run may add to its worker (``RLIMIT_AS``; ``"256MiB"``),
            ``None`` for no limit; over it: ``ActionMemoryExceeded``.
        concurrency: how many action workers this action may use at once (the others stay
            free for other prefixes). A reducer merges one write at a time whatever this says.

    Example:
        >>> ActionLimits(timeout=5, memory="64MiB").memory_bytes()
        67108864
    """

    timeout: float = 30.0
    memory: Size | None = "1GiB"
    concurrency: int = 2

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError(f"action timeout must be > 0 seconds, not {self.timeout}")
        if self.concurrency < 1:
            raise ConfigError(f"action concurrency must be >= 1, not {self.concurrency}")
        if self.memory is not None and not isinstance(parse_size(self.memory, "action memory"), int):
            raise ConfigError(f"action memory must be a byte count ('256MiB'), not a fraction: {self.memory!r}")

    def memory_bytes(self) -> int | None:
        return None if self.memory is None else int(parse_size(self.memory, "action memory"))


def _split(url: str) -> tuple[str, str]:
    if not url.startswith("xhub-eph://"):
        raise UnsupportedURL(url, "storage actions work on xhub-eph://bucket/prefix URLs")
    bucket, _, key = url[len("xhub-eph://") :].partition("/")
    if not bucket:
        raise UnsupportedURL(url, "no bucket in the URL")
    return bucket, key


def _client(settings: Settings | None) -> EphemeralClient:
    return client_for(settings or default_settings())


def _pickled(url: str, kind: str, func: Any) -> tuple[bytes | None, bytes]:
    try:
        return dumps_function(func)
    except Exception as exc:
        raise InvalidAction(url, f"the {kind} function cannot be pickled: {type(exc).__name__}: {exc}") from exc


def register(
    url: str,
    *,
    on_write: Callable[[bytes], bytes] | None = None,
    on_read: Callable[..., bytes] | None = None,
    reducer: Reducer | str | None = None,
    into: str | None = None,
    limits: ActionLimits | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Register actions on the prefix ``url`` (``xhub-eph://bucket/prefix``), replacing any there.

    A reducer needs ``into``, the ``xhub-eph://`` URL of its merged object (same bucket,
    outside the prefix); partials already under the prefix are merged at once. Returns
    the registration as :func:`list_actions` shows it.
    """
    bucket, prefix = _split(url)
    limits = limits or ActionLimits()
    blobs: dict[str, tuple[bytes | None, bytes]] = {}
    for kind, func in (("on_write", on_write), ("on_read", on_read)):
        if func is not None:
            if not callable(func):
                raise InvalidAction(url, f"{kind} must be a function, not {type(func).__name__}")
            blobs[kind] = _pickled(url, kind, func)
    header: dict[str, Any] = {
        "bucket": bucket,
        "prefix": prefix,
        "timeout": limits.timeout,
        "memory": limits.memory_bytes(),
        "concurrency": limits.concurrency,
    }
    if reducer is not None:
        if isinstance(reducer, str):
            if reducer not in BUILTIN_REDUCERS:
                raise InvalidAction(url, f"unknown reducer {reducer!r}; built-in: {sorted(BUILTIN_REDUCERS)}")
            reducer = BUILTIN_REDUCERS[reducer]()
        if not isinstance(reducer, Reducer):
            raise InvalidAction(url, f"reducer must be a Reducer or a built-in name, not {type(reducer).__name__}")
        if into is None:
            raise InvalidAction(url, "a reducer needs into=, the xhub-eph:// URL of the merged object")
        into_bucket, header["into"] = _split(into)
        if into_bucket != bucket:
            raise InvalidAction(url, f"the reducer's object {into} must be in the same bucket")
        blobs["reducer"] = _pickled(url, "reducer", reducer)
        header |= {"reducer_name": reducer.name, "commutative": reducer.commutative}
    payload = msgpack.packb({k: list(v) for k, v in blobs.items()}, use_bin_type=True)
    return dict(_client(settings).rpc.call("action_register", header, payload)[0]["action"])


def unregister(url: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Remove the actions registered on exactly this prefix (``ObjectNotFound`` if none)."""
    bucket, prefix = _split(url)
    return dict(_client(settings).rpc.call("action_unregister", {"bucket": bucket, "prefix": prefix})[0]["action"])


def list_actions(bucket: str | None = None, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The registered actions (of one bucket, or all) with their limits and counters."""
    return list(_client(settings).rpc.call("action_list", {"bucket": bucket})[0]["actions"])


def read_view(url: str, *, settings: Settings | None = None, **params: Any) -> bytes:
    """The ``on_read`` view of the object ``url``: the action's ``f(data, **params)``, computed
    next to the data (only the view travels). ``params`` must be msgpack-able (str, numbers,
    lists, dicts). ``InvalidAction`` when no ``on_read`` action covers ``url``."""
    bucket, key = _split(url)
    try:
        msgpack.packb(params)
    except (TypeError, ValueError, pickle.PicklingError) as exc:
        raise InvalidAction(url, f"view parameters must be plain values (str, numbers, lists, dicts): {exc}") from None
    return _client(settings).rpc.call("action_read", {"bucket": bucket, "key": key, "params": params})[1]
