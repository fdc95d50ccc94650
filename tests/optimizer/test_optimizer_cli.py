"""``xhub telemetry ls|show|plot`` and ``xhub plan`` on telemetry a real executor wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from optimizer_synthetic import synthetic_calls

from xtremehub.cli import cli
from xtremehub.compute.telemetry import to_jsonl
from xtremehub.optimizer.store import write_job_meta


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("XHUB_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("XHUB_HOME", str(tmp_path / "home"))
    return CliRunner()


@pytest.fixture
def teldir(tmp_path: Path) -> Path:
    d = tmp_path / "tel"
    d.mkdir()
    rows, sizes = synthetic_calls(40, job="abc-M000")
    (d / "abc-M000.jsonl").write_bytes(to_jsonl(rows))
    write_job_meta(d, "abc-M000", function="pkg.scan", input_bytes=sizes)
    return d


def test_ls_show_plot(runner: CliRunner, teldir: Path, tmp_path: Path) -> None:
    out = runner.invoke(cli, ["telemetry", "ls", "--dir", str(teldir)])
    assert out.exit_code == 0, out.output
    assert "abc-M000" in out.output
    assert "pkg.scan" in out.output
    show = runner.invoke(cli, ["telemetry", "show", "abc-M000", "--dir", str(teldir)])
    assert show.exit_code == 0, show.output
    assert len(show.output.splitlines()) >= 42
    assert "cost model of pkg.scan" in show.output
    plot = runner.invoke(cli, ["telemetry", "plot", "abc-M000", str(tmp_path / "p"), "--dir", str(teldir)])
    assert plot.exit_code == 0, plot.output
    pngs = plot.output.split()
    assert [Path(p).name for p in pngs] == ["p_timeline.png", "p_histogram.png", "p_costmodel.png"]
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    missing = runner.invoke(cli, ["telemetry", "show", "nope", "--dir", str(teldir)])
    assert missing.exit_code != 0


def test_plan_command(runner: CliRunner, teldir: Path) -> None:
    out = runner.invoke(cli, ["plan", "pkg.scan", "2GB", "--dir", str(teldir), "--workers", "4"])
    assert out.exit_code == 0, out.output
    assert "plan for pkg.scan" in out.output
    assert "(model)" in out.output
    unseen = runner.invoke(cli, ["plan", "other.func", "1GiB", "--dir", str(teldir), "--workers", "4"])
    assert "8 slices" in unseen.output
    assert "(default)" in unseen.output
    tight = runner.invoke(cli, ["plan", "pkg.scan", "2GB", "--dir", str(teldir), "--memory-limit", "10MiB"])
    assert tight.exit_code != 0
    assert "memory limit 10 MiB" in str(tight.exception)


def test_corrupt_telemetry_is_reported_with_file_and_line(runner: CliRunner, teldir: Path) -> None:
    (teldir / "bad.jsonl").write_bytes(b'{"schema":"1"}\n')
    out = runner.invoke(cli, ["telemetry", "ls", "--dir", str(teldir)])
    assert out.exit_code != 0
    assert "bad.jsonl:1:" in str(out.exception)
