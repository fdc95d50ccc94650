"""The key-encryption-key protocol shared by encrypted stores and the key service.

Envelope encryption: each object has its own random data key, stored with the object only in
wrapped form. A :class:`KeyEncryptionKeys` wraps and unwraps data keys under a dataset's
key-encryption key (KEK); where the KEK lives (a local keyring, or keys released by the key
service to an attested worker) is its business. Rotating a KEK re-wraps data keys, it never
re-encrypts data.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["KeyEncryptionKeys"]


class KeyEncryptionKeys(Protocol):
    """Wraps and unwraps per-object data keys under a dataset's KEK.

    ``wrap`` returns an opaque blob that names the KEK version it used, so that ``unwrap``
    keeps working after a rotation; ``unwrap`` raises
    :class:`~xtremehub.errors.IntegrityError` on a tampered blob and
    :class:`~xtremehub.errors.KeyReleaseDenied` when the KEK is not available to the caller.
    """

    def wrap(self, dataset: str, data_key: bytes) -> bytes: ...

    def unwrap(self, dataset: str, wrapped: bytes) -> bytes: ...
