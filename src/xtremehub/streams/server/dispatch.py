"""Calls of contract methods by name, checked against the contract before anything runs.

The server exposes objects implementing an abstract contract (the segment store, the
controller) under a target name. A remote call names the target and the method; only the
contract's abstract methods can be called (never ``close``, dunders or helpers of the
implementation), and the arguments are bound to the contract's signature first, so a bad call
is a :class:`~xtremehub.errors.ProtocolError` and never reaches the implementation.

Example:
    >>> from abc import ABC, abstractmethod
    >>> class Echo(ABC):
    ...     @abstractmethod
    ...     def echo(self, text: str, *, times: int = 1) -> str: ...
    ...     @abstractmethod
    ...     def close(self) -> None: ...
    >>> class Impl(Echo):
    ...     def echo(self, text: str, *, times: int = 1) -> str:
    ...         return text * times
    ...     def close(self) -> None: ...
    >>> d = Dispatcher({"echo": (Impl(), Echo)})
    >>> d.call("echo", "echo", ["ab"], {"times": 2})
    'abab'
    >>> d.call("echo", "close", [], {})
    Traceback (most recent call last):
    ...
    xtremehub.errors.ProtocolError: echo has no remote method 'close'
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from xtremehub.errors import ProtocolError

__all__ = ["NOT_REMOTE", "Dispatcher", "remote_methods"]

#: Contract methods a client may never call: the server owns the object's life.
NOT_REMOTE = frozenset({"close"})


def remote_methods(contract: type) -> frozenset[str]:
    """The abstract methods of ``contract`` that may be called remotely."""
    return frozenset(getattr(contract, "__abstractmethods__", frozenset())) - NOT_REMOTE


class Dispatcher:
    """Target name -> (implementation, contract); :meth:`call` runs one checked method call."""

    def __init__(self, targets: Mapping[str, tuple[object, type]]) -> None:
        self._targets: dict[str, tuple[object, dict[str, inspect.Signature]]] = {}
        for name, (impl, contract) in targets.items():
            if not isinstance(impl, contract):
                raise TypeError(f"target {name!r}: {type(impl).__name__} does not implement {contract.__name__}")
            signatures = {m: inspect.signature(getattr(contract, m)) for m in remote_methods(contract)}
            self._targets[name] = (impl, signatures)

    def check(self, target: object, method: object, args: object, kwargs: object) -> Any:
        """Validate a call and return the bound method, or raise ``ProtocolError``."""
        if not isinstance(target, str) or target not in self._targets:
            raise ProtocolError(f"unknown call target {target!r:.80} (known: {', '.join(sorted(self._targets))})")
        impl, signatures = self._targets[target]
        if not isinstance(method, str) or method not in signatures:
            raise ProtocolError(f"{target} has no remote method {method!r:.80}")
        if not isinstance(args, list) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ProtocolError(f"{target}.{method}: arguments must be an array and a map with string keys")
        try:
            signatures[method].bind(impl, *args, **kwargs)
        except TypeError as exc:
            raise ProtocolError(f"{target}.{method}: {exc}") from exc
        return getattr(impl, method)

    def arguments(self, target: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments of a checked call by parameter name (defaults filled in)."""
        impl, signatures = self._targets[target]
        bound = signatures[method].bind(impl, *args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def call(self, target: object, method: object, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Check and run ``target.method(*args, **kwargs)`` (blocking)."""
        return self.check(target, method, args, kwargs)(*args, **kwargs)
