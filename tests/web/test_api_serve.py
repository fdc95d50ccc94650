"""``xhub serve`` as a user runs it (a subprocess on a free port), and its configuration."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

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
