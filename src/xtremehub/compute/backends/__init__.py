"""Compute backends: one registry, name → dotted path with an install hint.

Example:
    >>> from xtremehub.compute.backends import create_backend, known_backends
    >>> "local" in known_backends()
    True
    >>> create_backend("quantum")
    Traceback (most recent call last):
    ...
    xtremehub.errors.PluginNotFound: unknown compute backend 'quantum'; valid: dask, lithops, local, ray

An engine's own client object picks its backend: ``create_backend(dask_client)`` is
``create_backend("dask", client=dask_client)``, and a ``lithops.FunctionExecutor``
or a Lithops config given as ``executor``/``config`` works the same way.
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
    "compute backend",
    "xtremehub.backends",
    {
        "local": "xtremehub.compute.backends._local:LocalBackend",
        "ray": ("xtremehub.compute.backends._ray:RayBackend", "pip install 'xtremehub[ray]'"),
        "dask": ("xtremehub.compute.backends._dask:DaskBackend", "pip install 'xtremehub[dask]'"),
        "lithops": ("xtremehub.compute.backends._lithops:LithopsBackend", "pip install 'xtremehub[lithops]'"),
    },
)

#: Engine objects accepted in place of a backend name: (module prefix of the type, backend, option name).
_ENGINE_OBJECTS = (("distributed.", "dask", "client"), ("lithops.", "lithops", "executor"))


def register_backend(name: str, factory: BackendFactory | str, *, install_hint: str = "") -> None:
    """Register a backend class (or dotted ``"module:Class"`` path); refuses to replace one."""
    BACKENDS.register(name, factory, install_hint=install_hint)


def known_backends() -> list[str]:
    return BACKENDS.names()


def create_backend(backend: str | Backend | object, **options: Any) -> Backend:
    """A backend instance from a registered name, an engine's client object, or ``backend`` itself."""
    if not isinstance(backend, str | Backend):
        module = type(backend).__module__ + "."
        for prefix, name, option in _ENGINE_OBJECTS:
            if module.startswith(prefix):
                return BACKENDS.load(name)(**{option: backend}, **options)
        raise ConfigError(f"cannot run calls on a {type(backend).__name__}; give a backend name or instance")
    if isinstance(backend, Backend):
        if options:
            raise ConfigError(f"backend options {sorted(options)} cannot be applied to an existing backend instance")
        return backend
    return BACKENDS.load(backend)(**options)
