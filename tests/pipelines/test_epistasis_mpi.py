"""The MPI driver for real: Open MPI's mpiexec with 1, 2 and 3 ranks, and the ``xhub mdr`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import xtremehub
from xtremehub.cli import cli
from xtremehub.pipelines.epistasis.driver import run_mdr

SEED = "mdr/simple_10x30x100"
ENTRY = "from xtremehub.cli import main; main()"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mpiexec(n: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    mpiexec = shutil.which("mpiexec")
    assert mpiexec, "Open MPI is missing: apt-get install openmpi-bin libopenmpi-dev (make test does this)"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(xtremehub.__file__).resolve().parents[1])
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    cmd = [mpiexec, "-n", str(n), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return subprocess.run(
        [*cmd, sys.executable, "-c", ENTRY, *args], check=False, capture_output=True, text=True, timeout=240, env=env
    )


@pytest.mark.slow
def test_mpi_1_2_3_ranks_write_the_executors_files(testdata: Path, tmp_path: Path) -> None:
    root = testdata / SEED
    files = [str(root / "samples" / f"chr0_synth000{i}.gz") for i in range(5)]
    run_mdr(files, str(root / "labels.sample"), str(tmp_path / "executor"), tasks=1)
    expected = _tree(tmp_path / "executor")
    for n in (1, 2, 3):
        out = tmp_path / f"mpi{n}"
        args = ["mdr", "run", "--mpi", "-g", str(root / "samples" / "chr0_synth000[0-4].gz")]
        result = _mpiexec(n, [*args, "-l", str(root / "labels.sample"), "-o", str(out)])
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"11,175 pairs (15 tiles computed, 0 already done) by {n} workers" in result.stdout
        assert _tree(out) == expected


def test_mpi_failure_on_a_rank_fails_the_run(tmp_path: Path) -> None:
    labels = tmp_path / "labels.sample"
    labels.write_text("ID bin1\n0 B\n" + "$ 0\n$ 1\n" * 3)
    for i in range(3):
        (tmp_path / f"g{i}.gen").write_text("chr1 $ rs1 $ $ " + "1 0 0 " * (6 if i != 1 else 5) + "\n")
    args = ["mdr", "run", "--mpi", "--cv-sets", "2", "-g", str(tmp_path / "g*.gen"), "-l", str(labels)]
    result = _mpiexec(2, [*args, "-o", str(tmp_path / "out")])
    assert result.returncode != 0
    assert "g1.gen: row 1 (line 1) holds 5 patients but" in result.stderr


def test_cli_runs_on_the_executor(testdata: Path, tmp_path: Path) -> None:
    root = testdata / SEED
    args = ["mdr", "run", "-g", str(root / "samples" / "chr0_synth000[0-1].gz"), "-l", str(root / "labels.sample")]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "out"), "--tasks", "2", "--mode", "compat"])
    assert result.exit_code == 0, result.output
    assert "1,770 pairs (3 tiles computed, 0 already done) by 2 workers" in result.output
    assert (tmp_path / "out" / "interactions.png").stat().st_size > 1000
    again = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "out"), "--mode", "compat"])
    assert "(0 tiles computed, 3 already done)" in again.output
    other = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "out")])  # default mode: not the same run
    assert other.exit_code != 0
    assert "run.json describes another run" in str(other.exception)
