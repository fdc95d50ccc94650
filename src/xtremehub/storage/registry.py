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
    xtremehub.errors.UnsupportedURL: gopher://x/y: unknown scheme 'gopher'; known: file, http, https, mem, s3, xhub-eph
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from xtremehub.config import Settings, default_settings
from xtremehub.errors import UnsupportedURL
from xtremehub.plugins import Registry
from xtremehub.storage.base import Store

__all__ = ["StoreFactory", "known_schemes", "open_store", "register_store", "resolve_s3_store", "split_url"]

StoreFactory = Callable[[str, Settings], Store]

#: ``enc+<scheme>://...`` is the ``<scheme>`` store, encrypted at rest (:mod:`xtremehub.storage.encrypted`).
ENC_PREFIX = "enc+"


STORES: Registry[StoreFactory] = Registry(
    "storage scheme",
    "xtremehub.stores",
    {
        "file": "xtremehub.storage.registry:_local_factory",
        "http": "xtremehub.storage.registry:_http_factory",
        "https": "xtremehub.storage.registry:_https_factory",
        "mem": "xtremehub.storage.registry:_memory_factory",
        "s3": ("xtremehub.storage.registry:_s3_factory", "pip install xtremehub (boto3)"),
        "xhub-eph": "xtremehub.storage.registry:_ephemeral_factory",
    },
)


def register_store(scheme: str, factory: StoreFactory | str, *, install_hint: str = "") -> None:
    """Register a storage backend for ``scheme://`` URLs; refuses to replace one.

    ``factory`` is a callable ``(location, settings) -> Store`` or a dotted path
    ``"package.module:callable"`` imported on first use.
    """
    STORES.register(scheme, factory, install_hint=install_hint)


def known_schemes() -> list[str]:
    return STORES.names()


def split_url(url: str) -> tuple[str, str, str]:
    """``(scheme, location, key)`` of a URL; plain paths are ``file`` URLs.

    Example:
        >>> split_url("s3://bucket/a/b")
        ('s3', 'bucket', 'a/b')
        >>> split_url("/data/x.csv")
        ('file', '', 'data/x.csv')
        >>> split_url("enc+file:///data/x.csv")
        ('enc+file', '', 'data/x.csv')
    """
    url = os.fspath(url)
    scheme, sep, rest = url.partition("://")
    if scheme.startswith(ENC_PREFIX) and sep:  # enc+<scheme>:// parses as <scheme>://
        inner, location, key = split_url(url[len(ENC_PREFIX) :])
        return ENC_PREFIX + inner, location, key
    if not sep:
        return "file", "", Path(os.path.abspath(os.path.expanduser(url))).as_posix().lstrip("/")
    if scheme == "file":
        return "file", "", Path("/" + rest.lstrip("/")).as_posix().lstrip("/")
    location, _, key = rest.partition("/")
    if not location:
        raise UnsupportedURL(url, "missing bucket name")
    return scheme, location, key


def open_store(url: str | os.PathLike[str], settings: Settings | None = None) -> tuple[Store, str]:
    """The store holding ``url`` and the key of ``url`` in it.

    ``enc+<scheme>://`` URLs open the ``<scheme>`` store wrapped in an
    :class:`~xtremehub.storage.encrypted.EncryptedStore` (keys from ``settings.encryption``).
    """
    url = os.fspath(url)
    scheme, location, key = split_url(url)
    if scheme.startswith(ENC_PREFIX):
        from xtremehub.storage.encrypted import encrypted_store

        settings = settings or default_settings()
        inner, key = open_store(url[len(ENC_PREFIX) :], settings)
        return encrypted_store(inner, settings), key
    if scheme not in STORES:
        raise UnsupportedURL(url, f"unknown scheme {scheme!r}; known: {', '.join(known_schemes())}")
    factory = STORES.load(scheme)
    return factory(location, settings or default_settings()), key


def _local_factory(location: str, settings: Settings) -> Store:
    from xtremehub.storage._local import LocalStore

    return LocalStore("/")


def _http_factory(location: str, settings: Settings) -> Store:
    from xtremehub.storage._http import HttpStore

    return HttpStore(f"http://{location}")


def _https_factory(location: str, settings: Settings) -> Store:
    from xtremehub.storage._http import HttpStore

    return HttpStore(f"https://{location}")


def _memory_factory(location: str, settings: Settings) -> Store:
    from xtremehub.storage._memory import MemoryStore

    return MemoryStore(location)


def _ephemeral_factory(location: str, settings: Settings) -> Store:
    from xtremehub.ephemeral.client import EphemeralStore

    return EphemeralStore(location, settings)


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
