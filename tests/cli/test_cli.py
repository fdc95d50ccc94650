"""The ``xhub`` command line, through click's runner and once as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from xtremehub import storage
from xtremehub.cli import cli
from xtremehub.testing.seaweedfs import SeaweedFS


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("XHUB_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("XHUB_HOME", str(tmp_path / "home"))
    return CliRunner()


def test_help_lists_command_groups(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for word in ("storage", "demo", "--config", "--home", "XHUB_"):
        assert word in result.output
    sub = runner.invoke(cli, ["storage", "--help"])
    for command in ("ls", "put", "get", "cat", "rm", "stat"):
        assert command in sub.output


def test_a_command_imports_only_its_own_module() -> None:
    """``xhub eph serve`` (started by executors and tests) loads no stream, security or catalog code."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from xtremehub.cli import COMMANDS, cli\n"
        "assert CliRunner().invoke(cli, ['eph', 'serve', '--help']).exit_code == 0\n"
        "loaded = {m.split(':')[0] for m in COMMANDS.values()} & set(sys.modules)\n"
        "heavy = [m for m in ('xtremehub.streams', 'xtremehub.security', 'xtremehub.catalog') if m in sys.modules]\n"
        "print(sorted(loaded), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "['xtremehub.cli.eph'] []"


def test_storage_roundtrip_local(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "input.txt"
    src.write_bytes(b"hello\nworld\n")
    dest_root = f"{tmp_path}/store/"
    assert runner.invoke(cli, ["storage", "put", str(src), dest_root + "a/input.txt"]).exit_code == 0
    listed = runner.invoke(cli, ["storage", "ls", "-l", dest_root])
    assert dest_root + "a/input.txt" in listed.output
    assert "12" in listed.output
    cat = runner.invoke(cli, ["storage", "cat", dest_root + "a/input.txt", "--range", "6-11"])
    assert cat.output == "world"
    out = tmp_path / "out.txt"
    assert runner.invoke(cli, ["storage", "get", dest_root + "a/input.txt", str(out)]).exit_code == 0
    assert out.read_bytes() == b"hello\nworld\n"
    stat = runner.invoke(cli, ["storage", "stat", dest_root + "a/input.txt"])
    assert "size:  12" in stat.output
    assert runner.invoke(cli, ["storage", "rm", "-r", dest_root]).exit_code == 0
    assert not storage.exists(dest_root + "a/input.txt")


def test_bad_range_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    result = runner.invoke(cli, ["storage", "cat", str(tmp_path / "f"), "--range", "abc"])
    assert result.exit_code == 2
    assert "START-END" in result.output


def test_demo_small(runner: CliRunner, tmp_path: Path) -> None:
    args = ["--home", str(tmp_path / "h"), "demo", "--size-mb", "2", "--fastq-mb", "3", "--workers", "2"]
    args += ["--genome-kb", "30"]
    result = runner.invoke(cli, [*args, "--stream-seconds", "1"])
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output
    # 1: variant calls, 3: metabolite annotation, 7: streams, 4: video, 5: security
    # 2: ephemeral (part 5c), 4: catalog (part 8)
    assert result.output.count(": OK") == 4 + 5 + 1 + 4 + 3 + 2 + 7 + 4 + 5 + 2 + 4
    assert "XtremeHub demo: variant calling" in result.output
    assert (tmp_path / "h" / "sample" / "variants-30000-25x" / "calls.vcf.gz.qc.png").exists()
    assert "metabolite annotation" in result.output
    assert "epistasis" in result.output.lower()  # part 6, after the streams part
    assert "surgery video on streams" in result.output  # part 5b
    assert "bob          refused: KeyReleaseDenied" in result.output  # part 7
    assert "skipped" not in result.output  # every extra is installed for the tests
    assert "FASTQ.gz connector" in result.output
    assert "imzML connector" in result.output
    ion_png = tmp_path / "h" / "sample" / "imzml" / "ion-images.png"
    assert ion_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(ion_png) in result.output
    assert "terrain model" in result.output
    dtm_png = next((tmp_path / "h" / "sample" / "las").glob("*.png"))
    assert dtm_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(dtm_png) in result.output
    assert "partitions" in result.output
    assert "plan for xtremehub.demo.job.count_variants" in result.output  # the optimizer chose them
    assert (tmp_path / "h" / "sample" / "variants-2MB.csv").exists()
    for kind in ("timeline", "histogram"):  # telemetry of the main job: plots and the per-job table
        png = tmp_path / "h" / "plots" / f"demo_{kind}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(png) in result.output
    assert "fexec.job_summary()" in result.output
    streams, video = result.output.split("XtremeHub demo: streams", 1)[1].split("XtremeHub demo: surgery video")
    assert streams.count(": OK") == 7
    video, security = video.split("XtremeHub demo: security")
    video, ephemeral = video.split("XtremeHub demo: two-stage job through the ephemeral store")
    assert video.count(": OK") == 4
    assert ephemeral.count(": OK") == 2  # part 5c
    assert "bytes moved" in ephemeral
    assert "spills" in ephemeral
    security, catalog = security.split("XtremeHub demo: the data catalog")
    assert security.count(": OK") == 5
    assert catalog.count(": OK") == 4  # part 8
    assert "60 frames" in video
    assert "60 frames" in streams
    assert "1,000 events" in streams
    for line in ("write ack", "end to end"):
        assert re.search(rf"{line} .*video \d+\.\d/\d+\.\d/\d+\.\d ms, sensors \d", streams), streams
    lts = tmp_path / "h" / "streams-demo" / "lts"
    assert sum(p.stat().st_size for p in lts.rglob("*.chunk")) > 60 * 200_000  # the frames reached LTS


def _xhub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("xhub")
    return subprocess.run(
        [str(exe), *args], check=False, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_missing_object_is_one_clear_line(tmp_path: Path) -> None:
    result = _xhub("storage", "cat", str(tmp_path / "nope.txt"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("xhub: error:")
    assert "nope.txt" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.s3
def test_cli_against_real_s3(seaweedfs: SeaweedFS, s3_root: str, tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(100_000))
    env = {**seaweedfs.env(), "XHUB_CONFIG": str(tmp_path / "none.toml")}
    put = _xhub("storage", "put", str(src), s3_root + "data.bin", env=env)
    assert put.returncode == 0, put.stderr
    ls = _xhub("storage", "ls", s3_root, env=env)
    assert ls.stdout.strip() == s3_root + "data.bin"
    out = tmp_path / "back.bin"
    get = _xhub("storage", "get", s3_root + "data.bin", str(out), env=env)
    assert get.returncode == 0, get.stderr
    assert out.read_bytes() == src.read_bytes()
