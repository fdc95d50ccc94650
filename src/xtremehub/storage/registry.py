"""URL → store: one registry of storage backends by URL scheme.

Built-in schemes are listed lazily (dotted path + install hint) so that importing
XtremeHub does not import boto3. Third parties add schemes with
:func:`register_store` or the ``xtremehub.stores`` entry-point group; a factory
takes ``(location, settings)`` (the bucket, or ``""`` for local paths) and
returns a :class:`~xtremehub.storage.base.Store`.

Example:
    >>> store, key = open_store("mem://bucket/dir/key.txt")
    >>> store, key
    (MemoryStore('bucket'), 'dir/key.txt')
    >>> open_store("gopher://x/y")
    Traceback (most recent call last):
    ...
    xtremehub.errors.UnsupportedURL: gopher://x/y: unknown scheme 'gopher'; known: file, mem, s3
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from xtremehub.config import Settings, default_settings
from xtremehub.errors import ConfigError, MissingDependency, UnsupportedURL
from xtremehub.storage.base import Store

__all__ = ["StoreFactory", "known_schemes", "open_store", "register_store", "resolve_s3_store", "split_url"]

StoreFactory = Callable[[str, Settings], Store]


@dataclass(frozen=True)
class _Entry:
    target: str | StoreFactory
    install_hint: str = ""


_REGISTRY: dict[str, _Entry] = {
    "file": _Entry("xtremehub.storage.registry:_local_factory"),
    "mem": _Entry("xtremehub.storage.registry:_memory_factory"),
    "s3": _Entry("xtremehub.storage.registry:_s3_factory", "pip install xtremehub (boto3)"),
}
_ENTRY_POINTS_LOADED = False


def register_store(scheme: str, factory: StoreFactory | str, *, install_hint: str = "") -> None:
    """Register a storage backend for ``scheme://`` URLs; refuses to replace one.

    ``factory`` is a callable ``(location, settings) -> Store`` or a dotted path
    ``"package.module:callable"`` imported on first use.
    """
    if scheme in _REGISTRY:
        raise ConfigError(f"storage scheme {scheme!r} is already registered")
    _REGISTRY[scheme] = _Entry(factory, install_hint)


def known_schemes() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group="xtremehub.stores"):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = _Entry(ep.value)


def split_url(url: str) -> tuple[str, str, str]:
    """``(scheme, location, key)`` of a URL; plain paths are ``file`` URLs.

    Example:
        >>> split_url("s3://bucket/a/b")
        ('s3', 'bucket', 'a/b')
        >>> split_url("/data/x.csv")
        ('file', '', 'data/x.csv')
    """
    url = os.fspath(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "file", "", Path(os.path.abspath(os.path.expanduser(url))).as_posix().lstrip("/")
    if scheme == "file":
        return "file", "", Path("/" + rest.lstrip("/")).as_posix().lstrip("/")
    location, _, key = rest.partition("/")
    if not location:
        raise UnsupportedURL(url, "missing bucket name")
    return scheme, location, key


def open_store(url: str | os.PathLike[str], settings: Settings | None = None) -> tuple[Store, str]:
    """The store holding ``url`` and the key of ``url`` in it."""
    url = os.fspath(url)
    scheme, location, key = split_url(url)
    _load_entry_points()
    entry = _REGISTRY.get(scheme)
    if entry is None:
        raise UnsupportedURL(url, f"unknown scheme {scheme!r}; known: {', '.join(known_schemes())}")
    factory = _load_factory(scheme, entry)
    return factory(location, settings or default_settings()), key


def _load_factory(scheme: str, entry: _Entry) -> StoreFactory:
    if callable(entry.target):
        return entry.target
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = entry.install_hint or f"install the package providing {module_name}"
        raise MissingDependency(f"storage scheme {scheme!r} needs {exc.name}: {hint}") from exc
    factory: StoreFactory = getattr(module, attr)
    return factory


def _local_factory(location: str, settings: Settings) -> Store:
    from xtremehub.storage._local import LocalStore

    return LocalStore("/")


def _memory_factory(location: str, settings: Settings) -> Store:
    from xtremehub.storage._memory import MemoryStore

    return MemoryStore(location)


def _s3_factory(location: str, settings: Settings) -> Store:
    return _cached_s3(location, settings.s3_for(location))


@functools.lru_cache(maxsize=256)
def _cached_s3(bucket: str, s3: object) -> Store:
    from xtremehub.config import S3Settings
    from xtremehub.storage._s3 import S3Store

    assert isinstance(s3, S3Settings)
    return S3Store(bucket, s3)


def resolve_s3_store(bucket: str) -> Store:
    """Rebuild an S3 store on a worker from that worker's own configuration."""
    return _s3_factory(bucket, default_settings())
