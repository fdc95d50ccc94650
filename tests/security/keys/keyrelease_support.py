"""Helpers of the key-release tests: a stand-in token validator, the allowed and the other task, a clock."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xtremehub.errors import AuthenticationFailed
from xtremehub.security.attest import measure
from xtremehub.security.identity import Identity
from xtremehub.security.keypolicy import KeyPolicy


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class EdDSAIssuer:
    """Mints EdDSA-signed JWTs and validates them: a stand-in for the OIDC validator of branch
    ``secid`` (issuer, expiry and signature checked; roles from ``realm_access.roles``)."""

    issuer: str = "https://idp.test"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def mint(self, subject: str, roles: list[str], lifetime: float = 300.0) -> str:
        header = _b64(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode())
        claims = {"iss": self.issuer, "sub": subject, "exp": time.time() + lifetime, "realm_access": {"roles": roles}}
        body = _b64(json.dumps(claims).encode())
        return f"{header}.{body}.{_b64(self.key.sign(f'{header}.{body}'.encode()))}"

    def validate(self, token: str) -> Identity:
        try:
            header, body, sig = token.split(".")
            self.key.public_key().verify(_unb64(sig), f"{header}.{body}".encode())
            claims = json.loads(_unb64(body))
        except (ValueError, InvalidSignature):
            raise AuthenticationFailed("token signature or format is invalid") from None
        if claims["iss"] != self.issuer:
            raise AuthenticationFailed("wrong issuer")
        if claims["exp"] < time.time():
            raise AuthenticationFailed("token expired")
        roles = frozenset(claims["realm_access"]["roles"])
        return Identity(claims["sub"], roles=roles, issuer=claims["iss"], expires_at=claims["exp"])


def allowed_task(x: int) -> int:
    """The code the policies allow."""
    return x * 2


def other_task(x: int) -> int:
    """Code the policies do not allow."""
    return x * 3


RESEARCHER = Identity("alice", roles=frozenset({"research"}))
OUTSIDER = Identity("mallory", roles=frozenset({"marketing"}))
MASTER = b"M" * 32


class Clock:
    """A clock tests move."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def genomes_policy(**changes: Any) -> KeyPolicy:
    base: dict[str, Any] = {
        "dataset": "genomes",
        "roles": frozenset({"research"}),
        "purposes": frozenset({"research"}),
        "measurements": frozenset({measure(allowed_task)}),
    }
    return KeyPolicy(**{**base, **changes})
