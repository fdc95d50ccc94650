"""The embedded issuer: its users file and its token endpoint's refusals (RFC 6749 errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from security_credentials import PASSWORDS, SECRETS

from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig, hash_secret
from xtremehub.security.login import request_token


def test_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    path.write_text(
        '[issuer]\naudience = "xh"\ntoken_lifetime = 60\n'
        f'[users.ann]\npassword_hash = "{hash_secret("pw", rounds=4)}"\nroles = ["research"]\ngroups = ["/g"]\n'
        '[clients.batch]\nsecret_hash = "x"\nroles = ["writer"]\n'
    )
    config = IssuerConfig.from_toml(path)
    assert config.audience == "xh"
    assert config.token_lifetime == 60.0
    assert config.users["ann"].roles == ("research",)
    assert config.users["ann"].groups == ("/g",)
    assert config.clients["batch"].roles == ("writer",)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[issuer]\ntoken_lifetime = -1\n", "issuer.token_lifetime"),
        ('[issuer]\ntoken_lifetime = "long"\n', "issuer.token_lifetime"),
        ('[users.ann]\nroles = "research"\n', "users.ann.roles"),
        ("[users.ann]\npassword_hash = 3\n", "users.ann.password_hash"),
        ("users = 3\n", "[users.<name>]"),
        ("not toml = = 1\n", "not TOML"),
    ],
)
def test_users_file_errors_name_the_field(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        IssuerConfig.from_toml(path)
    assert str(path) in str(info.value)
    assert names in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        IssuerConfig.from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("form", "client", "secret", "error"),
    [
        ({"grant_type": "client_credentials"}, "ingest", "wrong-secret-7", "invalid_client"),
        ({"grant_type": "client_credentials"}, "nobody", "x", "invalid_client"),
        ({"grant_type": "password", "username": "alice", "password": "nope-pw-9"}, "xhub-cli", None, "invalid_grant"),
        ({"grant_type": "password", "username": "zed", "password": "nope-pw-9"}, "xhub-cli", None, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "garbage"}, "xhub-cli", None, "invalid_grant"),
        ({"grant_type": "authorization_code", "code": "x"}, "xhub-cli", None, "unsupported_grant_type"),
    ],
)
def test_token_endpoint_refusals(
    issuer: EmbeddedIssuer, form: dict[str, str], client: str, secret: str | None, error: str
) -> None:
    if secret is None:
        form = {**form, "client_id": client}
    with pytest.raises(AuthenticationFailed, match=error) as info:
        request_token(f"{issuer.url}/token", form, client_id=client, client_secret=secret)
    for value in (*PASSWORDS.values(), *SECRETS.values(), "nope-pw-9", "wrong-secret-7"):
        assert value not in str(info.value)


def test_access_token_not_a_refresh_token(issuer: EmbeddedIssuer) -> None:
    access = issuer.issue("alice", roles=["research"])
    form = {"grant_type": "refresh_token", "refresh_token": access, "client_id": "xhub-cli"}
    with pytest.raises(AuthenticationFailed, match="invalid_grant"):
        request_token(f"{issuer.url}/token", form, client_id="xhub-cli", client_secret=None)
