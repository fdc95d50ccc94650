"""``xhub demo --serve``'s server: up on the data home's catalog, its URL printed, Ctrl-C stops it."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.web.cockpit.serve import serve_cockpit

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_serves_the_home_catalog_until_interrupted(tmp_path: Path) -> None:
    from xtremehub.catalog import open_catalog

    home = tmp_path / "home"
    catalog = open_catalog(settings=Settings(home=home))
    catalog.register("s3://demo/reads.fastq.gz", actor="local", title="Demo reads", format="fastq.gz",
                     source_version="v1", facts={"reads": 10})  # fmt: skip
    catalog.close()
    code = (
        "from xtremehub.config import Settings; from xtremehub.web.cockpit.serve import serve_cockpit; "
        f"serve_cockpit(Settings(home={str(home)!r}), port=0, echo=lambda s: print(s, flush=True))"
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert select.select([proc.stdout], [], [], 60)[0], "no URL printed in 60 s"
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("cockpit: http://127.0.0.1:"), line
        url = line.split()[1]
        for _ in range(100):  # uvicorn binds right after printing
            try:
                with urllib.request.urlopen(url + "datasets", timeout=5) as answer:
                    page = answer.read().decode()
                break
            except OSError:
                select.select([], [], [], 0.1)
        assert "Demo reads" in page
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "cockpit stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*--port"):
            serve_cockpit(Settings(home=tmp_path), port=port, echo=lambda s: None)
