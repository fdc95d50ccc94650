"""Sealing a secret to a public key, and a secret at rest under a symmetric key.

Key release sends a dataset's key-encryption key (KEK) to a worker sealed to the worker's
ephemeral X25519 public key with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM) from ``cryptography``; the ``info`` binds the sealed key to the
request it answers (dataset, version, job, nonce), so a sealed answer cannot be replayed
for another request. At rest, the key service keeps KEKs encrypted with AES-256-GCM under
its master key, with the dataset and version as associated data.

Example:
    >>> pair = EphemeralKeyPair.generate()
    >>> sealed = seal(b"k" * 32, pair.public_bytes, context=b"dataset=a")
    >>> pair.open(sealed, context=b"dataset=a") == b"k" * 32
    True
    >>> box = aead_encrypt(b"m" * 32, b"secret", aad=b"a|1")
    >>> aead_decrypt(b"m" * 32, box, aad=b"a|1")
    b'secret'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from xtremehub.errors import IntegrityError, KeyReleaseDenied

__all__ = ["SUITE_NAME", "EphemeralKeyPair", "aead_decrypt", "aead_encrypt", "open_sealed", "seal"]

#: The HPKE suite, as named in the key-release protocol.
SUITE_NAME = "HPKE-Base-X25519-HKDF-SHA256-AES-256-GCM"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_NONCE = 12


def seal(plaintext: bytes, public_key: bytes, context: bytes) -> bytes:
    """Encrypt ``plaintext`` to the raw 32-byte X25519 ``public_key``; ``context`` becomes the HPKE info."""
    if len(public_key) != 32:
        raise KeyReleaseDenied(f"the ephemeral public key must be 32 raw X25519 bytes, got {len(public_key)}")
    return _SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(public_key), info=context)


def open_sealed(sealed: bytes, private_key: X25519PrivateKey, context: bytes) -> bytes:
    """Decrypt what :func:`seal` made; :class:`IntegrityError` if it was tampered or the context differs."""
    try:
        return _SUITE.decrypt(sealed, private_key, info=context)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError("the sealed key does not open with this request's key and context") from exc


@dataclass(frozen=True, repr=False)
class EphemeralKeyPair:
    """A one-request X25519 key pair; only the public half ever leaves the worker."""

    private_key: X25519PrivateKey

    @classmethod
    def generate(cls) -> EphemeralKeyPair:
        return cls(X25519PrivateKey.generate())

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """:func:`open_sealed` with this pair's private key."""
        return open_sealed(sealed, self.private_key, context)

    def __repr__(self) -> str:
        return "EphemeralKeyPair(<private>)"


def aead_encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a random 96-bit nonce: ``nonce || ciphertext || tag``."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(key: bytes, box: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`aead_encrypt`; :class:`IntegrityError` on a tampered box or other ``aad``."""
    if len(box) < _NONCE + 16:
        raise IntegrityError(f"sealed box of {len(box)} bytes is shorter than a nonce and a tag")
    try:
        return AESGCM(key).decrypt(box[:_NONCE], box[_NONCE:], aad)
    except InvalidTag as exc:
        raise IntegrityError("sealed box failed authentication (tampered, or another key or context)") from exc
