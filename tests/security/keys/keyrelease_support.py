"""Helpers of the key-release tests: a stand-in token validator, the allowed and the other task, a clock."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import xtremehub
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


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an ``xhub`` subprocess: this source tree, the test master key, a home in
    ``tmp_path/home`` and no config file."""
    src = str(Path(xtremehub.__file__).resolve().parents[1])
    return {
        **os.environ,
        "PYTHONPATH": src,
        "XHUB_MASTER_KEY": MASTER.hex(),
        "XHUB_HOME": str(tmp_path / "home"),
        "XHUB_CONFIG": str(tmp_path / "none.toml"),
    }


@dataclass
class ServedKeys:
    """A running ``xhub keys serve``: its first line, its URL; ``stderr`` and ``returncode`` once stopped."""

    line: str
    url: str
    stderr: str = ""
    returncode: int | None = None


@contextlib.contextmanager
def keys_serve(keys_dir: Path, *options: str, env: dict[str, str], expect: str = "") -> Iterator[ServedKeys]:
    """``xhub keys --dir KEYS_DIR serve --port 0 OPTIONS`` in a subprocess until the block ends
    (then SIGTERM); its first line must hold ``expect``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from xtremehub.cli import main; main()", "keys", "--dir", str(keys_dir),
         "serve", "--port", "0", *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    served = ServedKeys("", "")
    try:
        assert proc.stdout is not None
        served.line = proc.stdout.readline()
        if " on " not in served.line or expect not in served.line:
            raise AssertionError(served.line + (proc.stderr.read() if proc.stderr else ""))
        served.url = served.line.split(" on ")[1].split()[0]
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        _, served.stderr = proc.communicate(timeout=30)
        served.returncode = proc.returncode
