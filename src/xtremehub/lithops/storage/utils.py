"""Lithops's storage value types: :class:`CloudObject` and :class:`StorageNoSuchKeyError`."""

from __future__ import annotations

from typing import NamedTuple

from xtremehub.errors import ObjectNotFound

__all__ = ["CloudObject", "StorageNoSuchKeyError"]


class CloudObject(NamedTuple):
    """An object put with ``Storage.put_cloudobject``: where it lives, as in Lithops.

    Example:
        >>> CloudObject("localhost", "storage", "a/b").key
        'a/b'
    """

    backend: str
    bucket: str
    key: str


class StorageNoSuchKeyError(ObjectNotFound):
    """The key does not exist in the bucket (Lithops's name for :class:`~xtremehub.errors.ObjectNotFound`)."""

    default_detail = "no such key"
