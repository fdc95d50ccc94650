"""Fixtures of the security tests: a running embedded issuer and a validator trusting it."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from security_credentials import PASSWORDS, SECRETS

from xtremehub.security.issuer import ClientEntry, EmbeddedIssuer, IssuerConfig, UserEntry, hash_secret
from xtremehub.security.oidc import OIDCConfig, OIDCValidator


def issuer_config(**overrides: object) -> IssuerConfig:
    users = {
        "alice": UserEntry("alice", hash_secret(PASSWORDS["alice"], rounds=4), ("research",), ("/lungs",)),
        "bob": UserEntry("bob", hash_secret(PASSWORDS["bob"], rounds=4), (), ()),
    }
    clients = {"ingest": ClientEntry("ingest", hash_secret(SECRETS["ingest"], rounds=4), ("writer",))}
    fields: dict[str, object] = {"audience": "xtremehub", "users": users, "clients": clients}
    fields.update(overrides)
    return IssuerConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def issuer() -> Iterator[EmbeddedIssuer]:
    """An embedded issuer on a free loopback port."""
    with EmbeddedIssuer(issuer_config()) as running:
        yield running


@pytest.fixture
def validator(issuer: EmbeddedIssuer) -> OIDCValidator:
    return OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", leeway=2.0))


OIDC_PROVIDER_DIR = Path(__file__).resolve().parent.parent / "oidc_provider"
_FIX = (
    "install it with `make .venv/.installed-test` (runs `npm ci` there) or "
    f"`npm ci --prefix {OIDC_PROVIDER_DIR}`; node >= 20 and npm must be on PATH"
)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[str]:
    """The npm ``oidc-provider`` (OpenID Certified) on a free loopback port; yields its issuer URL.

    Fails (never skips) with how to fix it when node or the package is missing.
    """
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed: the independent OpenID Provider cannot run; {_FIX}")
    if not (OIDC_PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"the npm package oidc-provider is not installed in {OIDC_PROVIDER_DIR}; {_FIX}")
    process = subprocess.Popen(
        [node, "server.mjs", "0"],
        cwd=OIDC_PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = select.select([process.stdout], [], [], 30)[0]
        line = process.stdout.readline() if ready and process.stdout else ""
        if not line.startswith("{"):
            process.kill()
            _, err = process.communicate(timeout=10)  # closes the pipes too
            pytest.fail(f"oidc-provider did not start (exit {process.returncode}): {err[-2000:]}; {_FIX}")
        yield str(json.loads(line)["issuer"])
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
