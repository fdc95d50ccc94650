"""``xhub serve`` as a user runs it (a subprocess on a free port), and its configuration."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import bearer
from xtremehub.catalog import open_catalog
from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.security.issuer import EmbeddedIssuer
from xtremehub.web import WebConfig


@contextmanager
def served(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    xhub = [sys.executable, "-c", "from xtremehub.cli import main; main()"]
    command = [*xhub, "--home", str(tmp_path / "home"), "serve", "--port", "0", *args]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "XHUB_CONFIG": str(tmp_path / "none.toml")}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**full_env, **(env or {})}
    )
    try:
        assert process.stdout is not None
        assert select.select([process.stdout], [], [], 90)[0], "xhub serve printed nothing"
        line = process.stdout.readline()
        assert line.startswith("xhub serve: http://127.0.0.1:"), line + (
            process.stderr.read() if process.stderr else ""
        )
        yield line.split()[2]
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def test_serve_embedded_defaults_prints_its_url_and_answers(tmp_path: Path) -> None:
    with served(tmp_path) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/v1/health").json()["security"] is False
        body = {"url": "s3://lab/a.csv", "facts": {"rows": 3}, "source_version": "v1", "title": "A"}
        made = http.post("/api/v1/datasets", json=body)
        assert made.status_code == 201, made.text
        got = http.get(f"/api/v1/datasets/{made.json()['id']}")
        assert got.json()["owner"] == "local"
        assert "/api/v1/datasets" in http.get("/api/v1/openapi.json").json()["paths"]
    assert (tmp_path / "home" / "catalog.db").is_file()  # the embedded catalog, kept


def test_serve_with_an_issuer_needs_tokens(tmp_path: Path, issuer: EmbeddedIssuer) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.cedar").write_text('@id("readers") permit(principal in XHub::Role::"reader", action, resource);')
    log = tmp_path / "audit.jsonl"
    args = ("--oidc-issuer", issuer.url, "--policy", str(policies), "--audit-log", str(log))
    with served(tmp_path, *args) as url, httpx.Client(base_url=url) as http:
        r = http.get("/api/v1/datasets")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        bob = {"Authorization": f"Bearer {issuer.issue('bob')}"}
        assert http.get("/api/v1/datasets", headers=bob).status_code == 403
        reader = {"Authorization": f"Bearer {issuer.issue('rita', roles=['reader'])}"}
        assert http.get("/api/v1/datasets", headers=reader).status_code == 200
    decisions = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(d.get("subject"), d.get("decision")) for d in decisions if d.get("kind") == "decision"} >= {
        ("bob", "deny"),
        ("rita", "allow"),
    }


def test_serve_applies_approved_access_requests(tmp_path: Path, issuer: EmbeddedIssuer) -> None:
    """Approvals become usage policies the server decides with: at once when approved through it,
    within the reload interval when another process approves; only for the purpose, until expiry."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.cedar").write_text(
        '@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");\n'
        '@id("curate") permit(principal in XHub::Role::"curator", action, resource);\n'
    )
    bob, dave, carol = bearer(issuer, "bob"), bearer(issuer, "dave"), bearer(issuer, "carol", "curator")
    with (
        served(tmp_path, "--oidc-issuer", issuer.url, "--policy", str(policies)) as url,
        httpx.Client(base_url=url) as http,
    ):
        body = {"url": "s3://clinic/cohort.csv", "facts": {}, "source_version": "1"}
        made = http.post("/api/v1/datasets", json=body, headers=carol)
        assert made.status_code == 201, made.text
        path = f"/api/v1/datasets/{made.json()['id']}"

        def status(who: dict[str, str], purpose: str | None) -> int:
            return http.get(path, headers={**who, **({"X-XHub-Purpose": purpose} if purpose else {})}).status_code

        expires = datetime.now(UTC) + timedelta(seconds=5)
        asked = http.post(
            f"{path}/access-requests", json={"purpose": "study", "expires": expires.isoformat()}, headers=bob
        )
        assert asked.status_code == 201, asked.text
        assert status(bob, "study") == 403
        approve = {**carol, "If-Match": asked.headers["etag"]}
        assert http.post(f"/api/v1/access-requests/{asked.json()['id']}/approve", headers=approve).status_code == 200
        assert [status(bob, p) for p in ("study", None, "marketing")] == [200, 403, 403]  # at once

        # another process (the CLI, a second server) approves: seen within the reload interval (2 s)
        other = http.post(f"{path}/access-requests", json={"purpose": "audit"}, headers=dave).json()
        with open_catalog(None, settings=Settings(home=tmp_path / "home")) as catalog:
            catalog.decide(other["id"], approve=True, actor="carol", if_match=other["etag"])
        deadline = time.monotonic() + 10
        while status(dave, "audit") != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status(dave, "audit") == 200

        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
        assert status(bob, "study") == 403  # expired


def test_serve_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from xtremehub.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "serve", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "refusing to serve on 0.0.0.0 without tokens" in result.output


def test_config_precedence_args_env_file(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text('home = "/tmp/x"\n[web]\nport = 7001\nmax_body_bytes = 4096\nhost = "127.0.0.1"\n')
    env = {"XHUB_WEB_PORT": "7002"}
    assert WebConfig.load(config_file=file, env={}).port == 7001
    assert WebConfig.load(config_file=file, env=env).port == 7002
    assert WebConfig.load(config_file=file, env=env, port=7003).port == 7003
    assert WebConfig.load(config_file=file, env=env).max_body_bytes == 4096
    on = WebConfig.load(config_file=None, env={"XHUB_WEB_OIDC_ISSUER": "https://idp.example"})
    assert on.security is True
    with pytest.raises(ConfigError, match="unknown setting"):
        WebConfig.load(config_file=None, env={}, colour="red")
    with pytest.raises(ConfigError, match=r"web\.port"):
        WebConfig.load(config_file=None, env={"XHUB_WEB_PORT": "eighty"})
    with pytest.raises(ConfigError, match=r"web\.policy needs web\.security"):
        WebConfig(policy=("/p",))
    from xtremehub.config import Settings

    assert str(Settings.load(config_file=file, env={}).home) == "/tmp/x"  # the [web] table is ours, not an error


def test_serve_decides_with_the_catalog_policy_store_once(tmp_path: Path, issuer: EmbeddedIssuer) -> None:
    from xtremehub.cli.serve import security
    from xtremehub.security.policy import CedarAuthorizer

    web, usage = str(tmp_path / "web"), str(tmp_path / "home" / "policies")
    settings = Settings(home=tmp_path / "home")
    for given, expected in (((web,), (web, usage)), ((web, usage + "/"), (web, usage + "/"))):
        _, authorizer = security(WebConfig(security=True, oidc_issuer=issuer.url, policy=given), settings)
        assert isinstance(authorizer, CedarAuthorizer)
        assert authorizer.config.sources == expected
    assert security(WebConfig(security=True, oidc_issuer=issuer.url), settings)[1] is None  # no --policy
    assert security(WebConfig(), settings) == (None, None)


def test_serve_with_a_broken_policy_says_so_in_one_line(tmp_path: Path) -> None:
    """A policy that does not parse: a one-line error naming the file, no traceback."""
    from click.testing import CliRunner

    from xtremehub.cli import cli

    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "broken.cedar").write_text("permit(principal, action, resource")
    args = ["--home", str(tmp_path / "home"), "serve", "--port", "0", "--oidc-issuer", "http://127.0.0.1:9"]
    result = CliRunner().invoke(cli, [*args, "--policy", str(tmp_path / "pol")])
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output
    assert "broken.cedar" in result.output
    assert "Traceback" not in result.output
