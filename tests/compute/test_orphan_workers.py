"""Worker processes never outlive the program that owns them, however it ends (issue 21, item 16)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, time
    from xtremehub import FunctionExecutor

    def work(x):
        time.sleep(60)
        return x

    def nested(x):
        inner = FunctionExecutor(workers=2)  # created inside a task and never closed
        inner.map(abs, [-x])[0].result()
        return [p.pid for p in inner.backend.processes()]

    if __name__ == "__main__":
        how = sys.argv[1]
        fexec = FunctionExecutor(workers=2)
        pids = [p.pid for p in fexec.backend.processes()] if how != "nested" else []
        if how == "nested":
            for inner in fexec.map(nested, [1, 2]):
                pids += inner.result()
            pids += [p.pid for p in fexec.backend.processes()]
        else:
            fexec.map(work, range(4))  # the workers are busy when the program ends
            time.sleep(0.5)
            pids = [p.pid for p in fexec.backend.processes()]
        print(" ".join(map(str, pids)), flush=True)
        if how == "exception":
            raise RuntimeError("the program fails")
        if how in ("sigkill", "sigterm"):
            time.sleep(120)  # the test kills it
    """
)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie that nobody reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("how", ["normal", "exception", "sigterm", "sigkill", "nested"])
def test_no_worker_outlives_its_program(how: str, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    with subprocess.Popen(
        [sys.executable, str(script), how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as program:
        try:
            assert program.stdout is not None
            pids = [int(p) for p in program.stdout.readline().split()]
            assert len(pids) == (6 if how == "nested" else 2), program.communicate()[1]
            if how == "sigkill":
                program.send_signal(signal.SIGKILL)
            elif how == "sigterm":
                program.send_signal(signal.SIGTERM)
            program.communicate(timeout=60)
            deadline = time.monotonic() + 5  # "no worker survives it by more than a few seconds"
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.1)
            assert [p for p in pids if _alive(p)] == []
        finally:
            if program.poll() is None:
                program.kill()
                program.communicate()
            for pid in pids if "pids" in locals() else []:  # a failing run must not leave them behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


ENGINE_PROGRAM = textwrap.dedent(
    """
    import pathlib, sys, time
    import psutil
    from xtremehub import FunctionExecutor

    def work(x, started):
        pathlib.Path(started, str(x)).touch()  # this task runs in one of the engine's workers
        time.sleep(60)
        return x

    def children():
        return sorted(p.pid for p in psutil.Process().children(recursive=True))

    if __name__ == "__main__":
        started = sys.argv[2]
        fexec = FunctionExecutor(sys.argv[1], workers=2)  # the backend starts its own engine here
        fexec.map(work, range(2), extra_args=(started,))
        deadline = time.monotonic() + 120
        while len(list(pathlib.Path(started).iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # both tasks are running: the engine and its workers are up
        pids, since = children(), time.monotonic()
        while time.monotonic() - since < 1.0 and time.monotonic() < deadline:
            time.sleep(0.1)  # ... and no helper process started for a second
            if children() != pids:
                pids, since = children(), time.monotonic()
        print(" ".join(map(str, pids)), flush=True)
        time.sleep(120)
    """
)


@pytest.mark.parametrize(
    "backend", [pytest.param("dask", marks=pytest.mark.dask), pytest.param("ray", marks=pytest.mark.ray)]
)
def test_no_engine_process_outlives_a_killed_program(backend: str, tmp_path: Path) -> None:
    """Dask's LocalCluster workers watch their nanny; Ray's agents do not, so the backend reaps them."""
    script = tmp_path / "program.py"
    script.write_text(ENGINE_PROGRAM)
    started = tmp_path / "started"
    started.mkdir()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    pids: list[int] = []
    with subprocess.Popen(
        [sys.executable, str(script), backend, str(started)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as program:
        try:
            assert program.stdout is not None
            pids = [int(p) for p in program.stdout.readline().split()]
            assert len(pids) >= 2
            program.send_signal(signal.SIGKILL)
            program.communicate(timeout=60)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.2)
            assert [p for p in pids if _alive(p)] == []
        finally:
            if program.poll() is None:
                program.kill()
                program.communicate()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
