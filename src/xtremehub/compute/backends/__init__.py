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

from collections.abc import Callable
from typing import Any

from xtremehub.compute.backends.base import Backend, Job
from xtremehub.errors import ConfigError
from xtremehub.plugins import Registry

__all__ = ["BACKENDS", "Backend", "Job", "create_backend", "known_backends", "register_backend"]

BackendFactory = Callable[..., Backend]


BACKENDS: Registry[BackendFactory] = Registry(
    "compute backend", "xtremehub.backends", {"local": "xtremehub.compute.backends._local:LocalBackend"}
)


def register_backend(name: str, factory: BackendFactory | str, *, install_hint: str = "") -> None:
    """Register a backend class (or dotted ``"module:Class"`` path); refuses to replace one."""
    BACKENDS.register(name, factory, install_hint=install_hint)


def known_backends() -> list[str]:
    return BACKENDS.names()


def create_backend(backend: str | Backend, **options: Any) -> Backend:
    """A backend instance from a registered name, or ``backend`` itself if it already is one."""
    if isinstance(backend, Backend):
        if options:
            raise ConfigError(f"backend options {sorted(options)} cannot be applied to an existing backend instance")
        return backend
    return BACKENDS.load(backend)(**options)
