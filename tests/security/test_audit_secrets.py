"""No token, key or secret reaches the audit log, an error message or a log line."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from xtremehub.errors import Forbidden
from xtremehub.security.audit import AuditConfig, Audited, AuditLog
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig

# a JWT-shaped bearer token and a 256-bit key, as a validator and a key service would hold them
TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsInJlYWxtX2FjY2VzcyI6eyJyb2xlcyI6WyJyZXNlYXJjaCJdfX0."
    "c2lnbmF0dXJlLW5vdC1hLXJlYWwtb25lLWJ1dC1sb25nLWVub3VnaA"
)
KEY = bytes(range(32))


def secrets_in(text: str) -> list[str]:
    forms = {"token": TOKEN, "key-hex": KEY.hex(), "key-b64": base64.b64encode(KEY).decode()}
    return [name for name, form in forms.items() if form in text]


def test_no_token_or_key_in_log_errors_or_log_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.cedar").write_text(
        '@id("research-key") permit(principal in XHub::Role::"research", action == XHub::Action::"read", '
        'resource in XHub::Dataset::"lungs") when { context.purpose == "research" };'
    )
    log = AuditLog(AuditConfig(location=str(tmp_path / "audit.log"), signing_key=tmp_path / "k" / "audit.key"))
    authz = Audited(CedarAuthorizer(PolicyConfig(sources=(str(tmp_path / "p"),), reload_interval=0), audit=log), log)
    alice = Identity(
        "alice",
        roles=frozenset({"research"}),
        issuer="https://idp",
        claims={"access_token": TOKEN, "raw": TOKEN, "cnf": {"jwk": KEY.hex()}},
    )
    key = Resource("key", "lungs#1", attributes={"material": KEY.hex(), "wrapped": base64.b64encode(KEY).decode()})
    messages: list[str] = []
    assert authz.check(AccessRequest(alice, Action.READ, key, purpose="research")).allowed
    with pytest.raises(Forbidden) as info:
        authz.check(AccessRequest(alice, Action.READ, key, purpose="marketing"))
    messages += [str(info.value), repr(info.value)]
    with pytest.raises(Forbidden) as info:
        authz.check(AccessRequest(Identity("bob", claims={"token": TOKEN}), Action.ADMIN, key))
    messages += [str(info.value), repr(info.value)]
    log.close()
    written = (tmp_path / "audit.log").read_text() + (tmp_path / "audit.log.checkpoints").read_text()
    assert "alice" in written
    assert "research" in written
    assert secrets_in(written) == []
    assert "marketing" in messages[0]
    assert "bob may not admin key 'lungs#1'" in messages[2]
    assert secrets_in("\n".join(messages)) == []
    assert secrets_in(caplog.text) == []
    private_pem = (tmp_path / "k" / "audit.key").read_text()
    body = "".join(private_pem.splitlines()[1:-1])
    assert body not in written
    assert body not in caplog.text
