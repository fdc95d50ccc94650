"""As a new user: build the wheel, install it with no extras in a fresh venv, run ``xhub --help`` and the demo.

The demo must run every part whose dependencies the plain install has, skip the point-cloud
part with one line naming the ``geo`` extra, and exit 0. Dependencies come from the
machine's configured package index (``pip install`` of the wheel, as a user would).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a cold pip cache downloads numpy, boto3...

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str | Path], *, env: dict[str, str], timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_without_extras_installs_and_runs_the_demo_parts_it_can(tmp_path: Path) -> None:
    # Only what an sdist would hold: no caches, no egg-info, nothing written into the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XHUB_", "AWS_", "PYTHON", "VIRTUAL_ENV"))}

    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", source], env=env,
         timeout=600, cwd=tmp_path)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("xtremehub-*.whl")
    venv = tmp_path / "venv"
    # --without-pip and pip --python: the installing pip is the test environment's, so the venv skips
    # ensurepip (bootstrapping a pip of its own takes seconds, minutes on a loaded machine).
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env=env, timeout=300, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel], env=env, timeout=1200,
         cwd=tmp_path)  # fmt: skip

    probe = "import importlib.util as u; print([m for m in ('laspy', 'lazrs', 'ray') if u.find_spec(m)])"
    assert _run([python, "-c", probe], env=env, timeout=60, cwd=tmp_path).stdout.strip() == "[]"

    xhub = venv / "bin" / "xhub"
    helped = _run([xhub, "--help"], env=env, timeout=60, cwd=tmp_path)
    assert "demo" in helped.stdout
    assert "storage" in helped.stdout

    small = ["--size-mb", "1", "--fastq-mb", "1", "--workers", "2", "--stream-seconds", "0.5", "--no-progress"]
    demo = _run([xhub, "--home", tmp_path / "home", "demo", *small], env=env, timeout=600, cwd=tmp_path)
    out = demo.stdout
    assert "Traceback" not in out + demo.stderr
    for part in ("partitioned map_reduce", "FASTQ.gz connector", "imzML connector", "streams"):
        assert f"XtremeHub demo: {part}" in out
    assert "FAILED" not in out
    skipped = [line for line in out.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1  # one line names every part that did not run and how to add it
    for part, extra in (
        ("part 2b", "genomics"),
        ("part 3b", "metabolomics"),
        ("part 4", "geo"),
        ("part 5b", "video"),
        ("part 6", "hpc"),
        ("part 7", "security"),
        ("part 8", "catalog"),
        ("every part", "demo"),
    ):
        assert part in skipped[0]
        assert f"pip install 'xtremehub[{extra}]'" in skipped[0]
