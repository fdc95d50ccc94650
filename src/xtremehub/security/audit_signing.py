"""Ed25519 signing of audit checkpoints, and the canonical JSON both records and checkpoints hash.

A checkpoint signs ``(count, head, time, key)``: the number of audit records before it, the hash
of the last of them, when, and the id of the signing key. Anyone holding the public key can
check that the first ``count`` records are exactly the ones the log's writer saw; the private
key file is created with mode 0600 and its bytes never reach a log or an error message.

Example:
    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> signer = CheckpointSigner(Ed25519PrivateKey.generate())
    >>> body = signer.sign(count=3, head="ab" * 32, time="2026-01-01T00:00:00Z")
    >>> check_checkpoint(body, signer.public_key)
    >>> check_checkpoint(dict(body, count=2), signer.public_key)
    Traceback (most recent call last):
    ...
    xtremehub.errors.AuditLogTampered: checkpoint over 2 records: its Ed25519 signature does not verify ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from xtremehub.errors import AuditLogTampered, ConfigError

__all__ = [
    "CheckpointSigner",
    "canonical",
    "check_checkpoint",
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "public_path",
]

_DOMAIN = b"xhub-audit-checkpoint-v1\n"


def canonical(obj: object) -> bytes:
    """The one JSON encoding hashed and signed: sorted keys, no spaces, UTF-8.

    Example:
        >>> canonical({"b": 1, "a": [1, "x"]})
        b'{"a":[1,"x"],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path``, created (mode 0600, with ``path.pub``) if missing.

    Raises:
        ConfigError: the file exists but is not an unencrypted Ed25519 PEM private key
            (the message names the file, never its content).
    """
    path = Path(path).expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # written whole under a private name, then linked into place: a process opening the same
        # home at the same moment either wins the link or loads the winner's complete file
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            pub_fd, pub_tmp = tempfile.mkstemp(prefix=f".{path.name}.pub.", dir=path.parent)
            with os.fdopen(pub_fd, "wb") as fh:
                fh.write(public)
            os.chmod(pub_tmp, 0o644)
            os.replace(pub_tmp, public_path(path))
            return key
        finally:
            os.unlink(tmp)
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{path}: the audit signing key must be an Ed25519 key")
    return loaded


def public_path(private_path: Path) -> Path:
    """Where the public key of a signing key file is written: ``<file>.pub``."""
    return private_path.with_name(private_path.name + ".pub")


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (``*.pub`` next to the signing key).

    Raises:
        ConfigError: missing, unreadable, or not an Ed25519 public key.
    """
    try:
        loaded = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: public key file not found") from None
    except ValueError:
        raise ConfigError(f"{path}: not a PEM public key") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key")
    return loaded


def _message(body: Mapping[str, object]) -> bytes:
    return _DOMAIN + canonical({k: body.get(k) for k in ("count", "head", "time", "key")})


class CheckpointSigner:
    """Signs checkpoint bodies with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    def sign(self, *, count: int, head: str, time: str) -> dict[str, object]:
        """The signed checkpoint body ``{count, head, time, key, sig}``."""
        body: dict[str, object] = {"count": count, "head": head, "time": time, "key": self.key_id}
        body["sig"] = base64.b64encode(self._key.sign(_message(body))).decode()
        return body


def check_checkpoint(body: Mapping[str, object], public_key: Ed25519PublicKey) -> None:
    """Raise :class:`~xtremehub.errors.AuditLogTampered` unless ``body`` is signed by ``public_key``."""
    count = body.get("count")
    sig = body.get("sig")
    try:
        raw = base64.b64decode(str(sig), validate=True)
        public_key.verify(raw, _message(body))
    except (InvalidSignature, ValueError):
        raise AuditLogTampered(
            f"checkpoint over {count} records: its Ed25519 signature does not verify "
            f"with key {key_id(public_key)} (forged or edited checkpoint)"
        ) from None
