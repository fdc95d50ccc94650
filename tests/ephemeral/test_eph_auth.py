"""The node service authenticates every connection before it reads (or unpickles) anything.

The attack these tests replay: any local user (or, with a non-loopback ``--host``, any
host) connected to the service port and sent a ``state.op`` whose pickled arguments ran
``os.system`` in the service. Now the service answers a connection with a challenge and
refuses every frame but a valid answer to it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from xtremehub.cli import cli
from xtremehub.config import Settings
from xtremehub.ephemeral import NodeService, TierConfig, rpc
from xtremehub.ephemeral.client import EphemeralClient, client_for, reset_clients
from xtremehub.ephemeral.rpc import Connection, RpcClient
from xtremehub.ephemeral.service import ServiceProcess, read_service_file, service_file
from xtremehub.errors import AuthenticationFailed, ConfigError


class _Touch:
    """A payload that creates ``path`` when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeService]:
    home = tmp_path_factory.mktemp("auth-home")
    with NodeService(TierConfig(memory_limit="16MiB"), Settings(home=home)).start() as svc:
        yield svc
    reset_clients()


def _raw(address: str) -> Connection:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return Connection(sock)


def _attack(address: str, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Send ``header``/``payload`` as the first frame, as the reviewed exploit did; the answer."""
    conn = _raw(address)
    try:
        challenge, _ = conn.recv()
        assert isinstance(challenge.get("challenge"), bytes)
        assert len(challenge["challenge"]) == 32
        conn.send(header, payload)
        answer = conn.recv()
        with pytest.raises((ConnectionError, OSError)):  # then the service hangs up
            conn.recv()
        return answer
    finally:
        conn.sock.close()


@pytest.mark.parametrize(
    "header",
    [
        {"op": "state.op", "name": "x", "kind": "dict", "method": "get"},
        {"op": "action_register", "bucket": "victim", "prefix": "", "name": "evil"},
        {"op": "put", "bucket": "victim", "key": "k", "ttl": None, "pin": False},
    ],
    ids=["state.op", "action_register", "put"],
)
def test_unauthenticated_requests_are_refused_and_nothing_unpickled(
    service: NodeService, tmp_path: Path, header: dict[str, Any]
) -> None:
    marker = tmp_path / "PWNED"
    answer, _ = _attack(service.address, header, pickle.dumps((None, (_Touch(marker),), {})))
    assert answer["ok"] is False
    assert answer["error"] == "AuthenticationFailed"
    assert not marker.exists()
    client = client_for(service.settings)
    assert client.list("victim", "") == []
    assert client.rpc.call("action_list", {"bucket": "victim"})[0].get("actions", []) == []


def test_unauthenticated_get_and_a_huge_first_frame_are_refused(service: NodeService) -> None:
    client_for(service.settings).put("secret", "k", b"payload")
    answer, data = _attack(service.address, {"op": "get", "bucket": "secret", "key": "k"}, b"")
    assert answer["error"] == "AuthenticationFailed"
    assert data == b""
    conn = _raw(service.address)  # a frame over the handshake limit: cut, never read
    conn.recv()
    conn.sock.sendall(rpc._HEAD.pack(10, 1 << 30))
    with pytest.raises((ConnectionError, OSError)):
        conn.recv()
    conn.sock.close()


def test_wrong_or_missing_key_is_refused(service: NodeService, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthenticationFailed, match="refused the authkey"):
        RpcClient(service.address, authkey=os.urandom(32)).call("hello")
    monkeypatch.delitem(rpc._KEYS, service.address)
    monkeypatch.delenv("XHUB_EPH_AUTHKEY", raising=False)
    with pytest.raises(AuthenticationFailed, match=r"no authkey.*XHUB_EPH_AUTHKEY"):
        RpcClient(service.address).call("hello")
    monkeypatch.setenv("XHUB_EPH_AUTHKEY", "not hex")
    with pytest.raises(AuthenticationFailed, match="not a hex"):
        RpcClient(service.address).call("hello")


def test_a_fake_service_cannot_impersonate_the_real_one() -> None:
    """A process squatting the port of a stopped service gets no pickled request from the client."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    got: list[dict[str, Any]] = []

    def fake() -> None:
        sock, _ = listener.accept()
        conn = Connection(sock)
        conn.send({"challenge": os.urandom(32)})
        got.append(conn.recv()[0])
        conn.send({"ok": True, "mac": os.urandom(32)})  # cannot compute the right proof
        with contextlib.suppress(ConnectionError, OSError):
            got.append(conn.recv()[0])
        sock.close()

    thread = threading.Thread(target=fake)
    thread.start()
    with pytest.raises(AuthenticationFailed, match="could not prove"):
        RpcClient(address, authkey=os.urandom(32)).call("state.op")
    thread.join(10)
    listener.close()
    assert [h.get("op") for h in got] == ["auth"]  # the handshake only, no request


def test_service_file_holds_the_key_and_is_private(service: NodeService) -> None:
    path = service_file(service.settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert bytes.fromhex(read_service_file(service.settings)["authkey"]) == service.rpc.authkey
    assert len(service.rpc.authkey) == 32


def test_remote_client_with_address_and_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that cannot read the service file: XHUB_EPH_ADDRESS + XHUB_EPH_AUTHKEY, over TCP."""
    settings = Settings(home=tmp_path / "server-home")
    with ServiceProcess.start(TierConfig(memory_limit="16MiB"), settings) as proc:
        key = read_service_file(settings)["authkey"]
        monkeypatch.delitem(rpc._KEYS, proc.address)  # this test process knows nothing yet
        elsewhere = Settings(home=tmp_path / "client-home")  # no service file there
        monkeypatch.setenv("XHUB_EPH_ADDRESS", proc.address)
        monkeypatch.setenv("XHUB_EPH_LOCAL", "0")
        monkeypatch.setenv("XHUB_EPH_AUTHKEY", "00" * 32)
        with pytest.raises(AuthenticationFailed):
            EphemeralClient(proc.address)
        monkeypatch.setenv("XHUB_EPH_AUTHKEY", key)
        client = client_for(elsewhere)
        assert not client.local
        client.put("b", "k", b"over tcp")
        assert client.read("b", "k", 0, 8) == b"over tcp"
        from xtremehub import state
        from xtremehub.state.client import reset_clients as reset_state_clients

        counter = state.Counter("auth-remote", 5)
        assert counter.add(2) == 7
        lock = state.Lock("auth-remote-lock")
        with lock:  # the session connection authenticates too
            assert lock.locked()
        reset_clients(proc.address)
        reset_state_clients(proc.address)


def test_serve_refuses_a_non_loopback_host_without_insecure(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "eph", "serve", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) or "--insecure" in result.output
    message = str(result.exception) + result.output
    assert "--insecure" in message
    assert "runs code its clients send" in message
    assert not service_file(Settings(home=tmp_path)).exists()


def _answer_with_a_pickle(data: bytes, marker: str = "") -> bytes:
    """An on_read action that writes a pickle (not its result) on the worker's answer pipe."""
    import pickle as pickle_
    import sys
    import time
    from multiprocessing.connection import Connection as Pipe

    Pipe(int(sys.argv[3]), readable=False).send_bytes(pickle_.dumps(_Touch(Path(marker))))
    time.sleep(5)
    return data


def test_action_code_cannot_run_code_in_the_service(service: NodeService, tmp_path: Path) -> None:
    from xtremehub.ephemeral import actions
    from xtremehub.errors import ActionFailed

    marker = tmp_path / "PWNED_BY_ACTION"
    actions.register("xhub-eph://act/x/", on_read=_answer_with_a_pickle, settings=service.settings)
    client_for(service.settings).put("act", "x/k", b"data")
    with pytest.raises(ActionFailed, match="malformed answer"):
        actions.read_view("xhub-eph://act/x/k", marker=str(marker), settings=service.settings)
    assert not marker.exists()
