"""Fixtures of the security tests: a running embedded issuer and a validator trusting it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xtremehub.security.issuer import ClientEntry, EmbeddedIssuer, IssuerConfig, UserEntry, hash_secret
from xtremehub.security.oidc import OIDCConfig, OIDCValidator

#: Test credentials (bcrypt with 4 rounds: fast).
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
SECRETS = {"ingest": "ingest-secret-3"}


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
