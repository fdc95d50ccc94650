"""Shared state on an authenticated node service: handles carry the key, strangers are refused."""

from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from xtremehub import state
from xtremehub.ephemeral import rpc
from xtremehub.errors import AuthenticationFailed
from xtremehub.state.client import StateClient


def _add(counter: state.Counter, n: int) -> None:
    counter.add(n)


def test_a_pickled_handle_works_in_a_spawned_process_that_has_no_service_file(
    address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XHUB_HOME", str(tmp_path / "elsewhere"))  # the child finds no service file
    monkeypatch.delenv("XHUB_EPH_AUTHKEY", raising=False)
    monkeypatch.delenv("XHUB_EPH_ADDRESS", raising=False)
    counter = state.Counter("auth/spawned", 0, address=address)
    proc = multiprocessing.get_context("spawn").Process(target=_add, args=(counter, 3))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    assert counter.get() == 3


def test_a_process_without_the_key_is_refused_and_runs_nothing(address: str, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED_BY_STATE_OP"
    script = f"""
import os, pathlib, pickle
from xtremehub.errors import AuthenticationFailed
from xtremehub.state.client import StateClient
class Evil:
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path({str(marker)!r}),))
try:
    StateClient({address!r}).rpc.call("state.op", {{"name": "x", "kind": "dict", "method": "get"}},
                                     pickle.dumps((None, (Evil(),), {{}})))
except AuthenticationFailed as exc:
    print("refused:", exc)
"""
    env = {"PATH": "/usr/bin:/bin", "XHUB_HOME": str(tmp_path / "stranger"), "PYTHONPATH": ":".join(sys.path)}
    command = [sys.executable, "-c", script]
    out = subprocess.run(command, check=True, env=env, capture_output=True, text=True, timeout=120)
    assert "refused: no authkey" in out.stdout, out.stderr
    assert not marker.exists()


def test_a_handle_with_a_wrong_key_is_refused(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = state.Counter("auth/wrong", 1, address=address)
    data = pickle.dumps(counter)
    right = rpc._KEYS[address]
    monkeypatch.setitem(rpc._KEYS, address, b"\0" * 32)
    with pytest.raises(AuthenticationFailed):
        StateClient(address).call("auth/wrong", "counter", "get")
    monkeypatch.setitem(rpc._KEYS, address, right)
    assert pickle.loads(data).get() == 1
