"""``xhub streams`` through click's runner on an embedded data directory."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from xtremehub.cli import cli
from xtremehub.config import Settings
from xtremehub.errors import ScopeNotFound
from xtremehub.streams import StreamManager
from xtremehub.testing.seaweedfs import ADMIN_KEY, ADMIN_SECRET, SeaweedFS


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


@pytest.mark.s3
def test_config_file_reaches_an_s3_lts(
    tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``xhub --config FILE streams --lts s3://...``: the S3 endpoint and keys come from FILE alone."""
    for var in list(os.environ):
        if var.startswith(("XHUB_S3_", "AWS_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XHUB_CONFIG", str(tmp_path / "no-config.toml"))
    config = tmp_path / "xhub.toml"
    config.write_text(
        f'[s3]\nendpoint_url = "{seaweedfs.endpoint_url}"\nregion = "us-east-1"\n'
        f'access_key_id = "{ADMIN_KEY}"\nsecret_access_key = "{ADMIN_SECRET}"\naddressing_style = "path"\n'
    )
    lts = f"s3://{s3_bucket}/cli-lts-{tmp_path.name}/"
    # Events written, sealed and tiered to S3 with explicit settings; the reopened store's WAL
    # holds no data any more, so reading them back needs the S3 LTS.
    settings = Settings.load(config_file=str(config))
    with StreamManager.embedded(tmp_path / "data", lts, settings=settings, tiering_interval=0.05) as m:
        m.create_scope("lab")
        m.create_stream("lab", "s")
        with m.create_writer("lab", "s") as w:
            for word in ("one", "two"):
                w.write_event(word.encode())
        m.seal_stream("lab", "s")
        names = m.store.list_segments("lab/s/")
        deadline = time.monotonic() + 30
        while any(m.store.info(n).tiered_length < m.store.info(n).length for n in names):
            assert time.monotonic() < deadline, f"not tiered: {names}"
            time.sleep(0.05)
    base = ["--config", str(config), "streams", "--data", str(tmp_path / "data"), "--lts", lts]
    result = CliRunner().invoke(cli, [*base, "tail", "lab/s", "--timeout", "0.5"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["one", "two"]
