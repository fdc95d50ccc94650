"""``xhub streams`` through click's runner on an embedded data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from xtremehub.cli import cli
from xtremehub.errors import ScopeNotFound


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XHUB_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("XHUB_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None, code: int = 0) -> str:
        result = runner.invoke(cli, ["streams", *args], input=stdin)
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_create_write_tail_describe_cut_delete(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "created lab/frames (2 segments)" in run("create", "lab/frames", "--segments", "2")
    assert "already exists" in run("create", "lab/frames")
    assert run("list").splitlines() == ["lab/frames"]
    run("write", "lab/frames", "--key", "cam1", "one", "two")
    run("write", "lab/frames", stdin="three\nfour\n")
    out = run("tail", "lab/frames", "--timeout", "0.5")
    assert sorted(out.splitlines()) == ["four", "one", "three", "two"]
    keyed = run("tail", "lab/frames", "--keys", "-n", "1", "--timeout", "0.5").splitlines()
    assert len(keyed) == 1
    assert keyed[0].count("\t") == 2
    described = run("describe", "lab/frames")
    assert "epoch:     0" in described
    assert described.count("lab/frames/") == 2
    cut = run("cut", "lab/frames").strip()
    assert json.loads(cut)["stream"] == "frames"
    run("write", "lab/frames", "five")
    assert run("tail", "lab/frames", "--cut", cut, "--timeout", "0.5").splitlines() == ["five"]
    run("cut", "lab/frames", "--truncate", cut)
    assert run("tail", "lab/frames", "--timeout", "0.5").splitlines() == ["five"]
    assert (tmp_path / "home" / "streams").is_dir()
    assert "deleted lab/frames" in run("delete", "lab/frames", "--yes")
    assert run("list") == ""


def test_bad_names_and_unknown_streams(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "not SCOPE/STREAM" in run("create", "nostream", code=2)
    result = CliRunner().invoke(cli, ["streams", "--data", str(tmp_path / "d"), "describe", "lab/missing"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ScopeNotFound)
    assert "scope 'lab' does not exist" in str(result.exception)
