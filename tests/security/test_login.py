"""``xhub login``, the stored token and its refresh, ``xhub auth serve``."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from security_credentials import PASSWORDS, SECRETS

from xtremehub.cli import cli
from xtremehub.errors import AuthenticationFailed
from xtremehub.security.issuer import EmbeddedIssuer, hash_secret
from xtremehub.security.login import StoredToken, login, token_path
from xtremehub.security.oidc import OIDCConfig, OIDCValidator, fetch_json
from xtremehub.streams import StreamManager
from xtremehub.streams.server import ServerConfig, serve_background


def test_password_login_stores_0600_and_refreshes(
    tmp_path: Path, issuer: EmbeddedIssuer, validator: OIDCValidator
) -> None:
    path = tmp_path / "cfg" / "token.json"
    shown = login(issuer.url, username="alice", password=PASSWORDS["alice"], path=path)
    assert "access_token" not in shown
    assert "refresh_token" not in shown
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert PASSWORDS["alice"] not in path.read_text()
    first = StoredToken(path).token()
    who = validator.validate(first)
    assert who.subject == "alice"
    assert who.roles == frozenset({"research"})
    assert StoredToken(path).token() == first  # not near expiry: no request
    # An hour later the stored token is near expiry: refreshed with the refresh token.
    later = StoredToken(path, clock=lambda: time.time() + 3600)
    time.sleep(1.1)  # a new iat, so a new token
    second = later.token()
    assert second != first
    assert validator.validate(second).subject == "alice"
    assert json.loads(path.read_text())["access_token"] == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_client_credentials_login_refreshes_with_the_secret_file(tmp_path: Path, issuer: EmbeddedIssuer) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRETS["ingest"] + "\n")
    path = tmp_path / "token.json"
    login(issuer.url, client_id="ingest", client_secret_file=secret, path=path)
    assert SECRETS["ingest"] not in path.read_text()  # only the secret file's name is kept
    refreshed = StoredToken(path, clock=lambda: time.time() + 3600).refresh()
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub"))
    assert validator.validate(str(refreshed["access_token"])).roles == frozenset({"writer"})


def test_wrong_password_and_missing_file(tmp_path: Path, issuer: EmbeddedIssuer) -> None:
    with pytest.raises(AuthenticationFailed, match="invalid_grant") as info:
        login(issuer.url, username="alice", password="wrong-pw-xyz", path=tmp_path / "t.json")
    assert "wrong-pw-xyz" not in str(info.value)
    with pytest.raises(AuthenticationFailed, match="run `xhub login` first"):
        StoredToken(tmp_path / "none.json").token()


def test_cli_login_and_stream_manager_with_stored_token(
    tmp_path: Path, issuer: EmbeddedIssuer, validator: OIDCValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XHUB_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        cli, ["login", "--issuer", issuer.url, "--username", "alice", "--password-stdin"], input="alice-pw-1\n"
    )
    assert result.exit_code == 0, result.output
    assert str(token_path()) in result.output
    assert token_path() == tmp_path / "home" / "token.json"
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    try:
        config = ServerConfig(validator=validator)
        with (
            serve_background(embedded.store, embedded.controller, config) as server,
            StreamManager(server.url, token=StoredToken()) as manager,
        ):
            assert manager.create_scope("alice-scope")
    finally:
        embedded.close()


def test_xhub_auth_serve(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text(
        f'[issuer]\naudience = "xtremehub"\n[users.dora]\npassword_hash = "{hash_secret("dora-pw", rounds=4)}"\n'
        'roles = ["research"]\n'
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from xtremehub.cli import main; main()",
            "auth",
            "serve",
            "--config",
            str(users),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert select.select([process.stdout], [], [], 60)[0], "xhub auth serve printed nothing"
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("xhub auth: issuer http://127.0.0.1:"), line
        url = line.split()[3]
        assert fetch_json(f"{url}/.well-known/openid-configuration", timeout=5)["issuer"] == url
        path = tmp_path / "token.json"
        login(url, username="dora", password="dora-pw", path=path)
        who = OIDCValidator(OIDCConfig(issuer=url, audience="xtremehub")).validate(StoredToken(path).token())
        assert who.roles == frozenset({"research"})
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_streams_cli_with_login(
    tmp_path: Path, issuer: EmbeddedIssuer, validator: OIDCValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XHUB_HOME", str(tmp_path / "home"))
    secret = tmp_path / "secret"
    secret.write_text(SECRETS["ingest"])
    login(issuer.url, client_id="ingest", client_secret_file=secret)
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    try:
        with serve_background(embedded.store, embedded.controller, ServerConfig(validator=validator)) as server:
            runner = CliRunner()
            refused = runner.invoke(cli, ["streams", "--url", server.url, "create", "lab/frames"])
            assert refused.exit_code != 0
            assert isinstance(refused.exception, AuthenticationFailed)
            result = runner.invoke(cli, ["streams", "--url", server.url, "--login", "create", "lab/frames"])
            assert result.exit_code == 0, result.output
            assert "created lab/frames" in result.output
    finally:
        embedded.close()
