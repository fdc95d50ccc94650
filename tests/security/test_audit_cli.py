"""``xhub audit verify|show`` and ``xhub policy check|decide`` through click's runner and a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from xtremehub.cli import cli
from xtremehub.security.audit import AuditConfig, AuditLog

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("XHUB_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("XHUB_HOME", str(tmp_path / "home"))
    return CliRunner()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    with AuditLog(AuditConfig(location=str(path), signing_key=tmp_path / "audit.key", checkpoint_every=3)) as log:
        for who in ("alice", "bob", "carol", "dave"):
            log.append("decision", subject=who, action="read", resource="stream:lungs/ct", decision="allow", policy="p")
    return path


def test_verify_ok_and_show(runner: CliRunner, log_path: Path, tmp_path: Path) -> None:
    pub = tmp_path / "audit.key.pub"
    result = runner.invoke(cli, ["audit", "verify", str(log_path), "--public-key", str(pub)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output
    assert "2 checkpoints verified" in result.output
    missing = runner.invoke(cli, ["audit", "verify", str(tmp_path / "nope.log")])
    assert missing.exit_code != 0
    assert "no audit log there" in str(missing.exception)
    unsigned = runner.invoke(cli, ["audit", "verify", str(log_path)])
    assert unsigned.exit_code == 0
    assert "NOT checked" in unsigned.output
    shown = runner.invoke(cli, ["audit", "show", str(log_path), "--kind", "decision", "--json"])
    assert [json.loads(line)["subject"] for line in shown.output.splitlines()] == ["alice", "bob", "carol", "dave"]
    last = runner.invoke(cli, ["audit", "show", str(log_path), "-n", "1", "--subject", "bob"])
    assert "bob read stream:lungs/ct policy=p" in last.output


def test_verify_names_the_tampered_record_in_a_real_process(log_path: Path, tmp_path: Path) -> None:
    lines = log_path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"bob"', '"eve"')
    log_path.write_text("".join(lines))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from xtremehub.cli import main; main()",
            "audit",
            "verify",
            str(log_path),
            "--public-key",
            str(tmp_path / "audit.key.pub"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "TAMPERED: line 2 (seq 1): record edited" in result.stderr
    assert "xhub: error:" in result.stderr


def test_policy_check_and_decide(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.cedar").write_text(
        '@id("research-read") permit(principal in XHub::Role::"research", action == XHub::Action::"read", '
        'resource in XHub::Scope::"lungs") when { context.purpose == "research" };'
    )
    checked = runner.invoke(cli, ["policy", "check", str(tmp_path / "p")])
    assert checked.exit_code == 0, checked.output
    assert "permit  research-read" in checked.output
    args = ["policy", "decide", str(tmp_path / "p"), "--subject", "alice", "--role", "research", "--action", "read"]
    allowed = runner.invoke(cli, [*args, "--resource", "stream:lungs/ct", "--purpose", "research"])
    assert allowed.exit_code == 0
    assert allowed.output.startswith("ALLOW [research-read]")
    denied = runner.invoke(cli, [*args, "--resource", "stream:lungs/ct", "--purpose", "ads"])
    assert denied.exit_code == 1
    assert denied.output.startswith("DENY [default-deny]")
    (tmp_path / "p" / "b.cedar").write_text("permit(principal action resource);")
    broken = runner.invoke(cli, ["policy", "check", str(tmp_path / "p")])
    assert broken.exit_code != 0
    assert "b.cedar: not valid Cedar" in str(broken.exception)


def test_policy_push_from_a_reviewed_directory(runner: CliRunner, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.cedar").write_text('@id("a") permit(principal, action == XHub::Action::"read", resource);')
    target = "mem://policy-push-test/policies/"
    audit = ["--audit-log", str(tmp_path / "audit.log"), "--signing-key", str(tmp_path / "audit.key")]
    first = runner.invoke(cli, ["policy", "push", str(repo), target, "--subject", "ci", *audit])
    assert first.exit_code == 0, first.output
    assert "add     a.cedar" in first.output
    assert "version 1" in first.output
    again = runner.invoke(cli, ["policy", "push", str(repo), target])
    assert "up to date at version 1" in again.output

    (repo / "b.cedar").write_text('@id("b") permit(principal, action == XHub::Action::"write", resource);')
    (repo / "a.cedar").unlink()
    stale = runner.invoke(cli, ["policy", "push", str(repo), target, "--base", "0" * 64])
    assert stale.exit_code != 0
    assert "based on 000000000000" in str(stale.exception)
    second = runner.invoke(cli, ["policy", "push", str(repo), target, "--subject", "ci", *audit])
    assert second.exit_code == 0, second.output
    assert "remove  a.cedar" in second.output
    assert "add     b.cedar" in second.output
    (repo / "c.cedar").write_text("permit(principal, action")
    broken = runner.invoke(cli, ["policy", "push", str(repo), target])
    assert "c.cedar: not valid Cedar" in str(broken.exception)

    shown = runner.invoke(cli, ["audit", "show", str(tmp_path / "audit.log"), "--kind", "policy", "--json"])
    changes = [json.loads(line) for line in shown.output.splitlines()]
    assert [(c["subject"], c["action"], c["resource"].rsplit("/", 1)[1]) for c in changes if c["action"] != "load"] == [
        ("ci", "add", "a.cedar"),
        ("ci", "remove", "a.cedar"),
        ("ci", "add", "b.cedar"),
    ]
    verified = runner.invoke(
        cli, ["audit", "verify", str(tmp_path / "audit.log"), "--public-key", str(tmp_path / "audit.key.pub")]
    )
    assert verified.exit_code == 0, verified.output
