"""Compute backends: one registry, name → dotted path with an install hint.

Example:
    >>> from xtremehub.compute.backends import create_backend, known_backends
    >>> "local" in known_backends()
    True
    >>> create_backend("quantum")
    Traceback (most recent call last):
    ...
    xtremehub.errors.PluginNotFound: unknown compute backend 'quantum'; valid: local
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from xtremehub.compute.backends.base import Backend, Job
from xtremehub.errors import ConfigError, MissingDependency, PluginNotFound

__all__ = ["Backend", "Job", "create_backend", "known_backends", "register_backend"]

BackendFactory = Callable[..., Backend]


@dataclass(frozen=True)
class _Entry:
    target: str | BackendFactory
    install_hint: str = ""


_REGISTRY: dict[str, _Entry] = {
    "local": _Entry("xtremehub.compute.backends._local:LocalBackend"),
}
_loaded_entry_points = False


def register_backend(name: str, factory: BackendFactory | str, *, install_hint: str = "") -> None:
    """Register a backend class (or dotted ``"module:Class"`` path); refuses to replace one."""
    if name in _REGISTRY:
        raise ConfigError(f"compute backend {name!r} is already registered")
    _REGISTRY[name] = _Entry(factory, install_hint)


def known_backends() -> list[str]:
    global _loaded_entry_points
    if not _loaded_entry_points:
        _loaded_entry_points = True
        for ep in entry_points(group="xtremehub.backends"):
            _REGISTRY.setdefault(ep.name, _Entry(ep.value))
    return sorted(_REGISTRY)


def create_backend(backend: str | Backend, **options: Any) -> Backend:
    """A backend instance from a registered name, or ``backend`` itself if it already is one."""
    if isinstance(backend, Backend):
        if options:
            raise ConfigError(f"backend options {sorted(options)} cannot be applied to an existing backend instance")
        return backend
    names = known_backends()
    entry = _REGISTRY.get(backend)
    if entry is None:
        raise PluginNotFound(f"unknown compute backend {backend!r}; valid: {', '.join(names)}")
    factory: BackendFactory
    if isinstance(entry.target, str):
        module_name, _, attr = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = entry.install_hint or f"pip install xtremehub[{backend}]"
            raise MissingDependency(f"compute backend {backend!r} needs {exc.name}: {hint}") from exc
        factory = getattr(module, attr)
    else:
        factory = entry.target
    return factory(**options)
