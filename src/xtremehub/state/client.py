"""Finding the node service that holds the shared objects, and calling it.

:func:`connect` picks the service: an explicit address, else
``XHUB_EPH_ADDRESS``, else the service announced under ``settings.home``
(``<home>/eph/service.json``), else it starts one for this process (stopped at
exit; its objects go with it). Handles keep the address, so a handle pickled to a
worker of any backend on a node that reaches it calls the same service.

One :class:`StateClient` per address and process: a pool of connections for
quick calls, another without a practical time limit for the calls that wait
(locks, barriers, queues), and a *session connection* opened before the first
lock or semaphore call and kept open, so that the service releases what this
process holds when it ends.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> svc = NodeService(TierConfig(memory_limit="16MiB"), Settings(home=Path(tempfile.mkdtemp()))).start()
    >>> client = client_for(svc.address)
    >>> client.call("demo/n", "counter", "add", (2,), create=True, init=((40,), {}))
    42
    >>> svc.stop()
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import uuid
from typing import Any

from xtremehub.config import Settings, default_settings
from xtremehub.ephemeral.rpc import Connection, RpcClient, authkey_for, client_handshake, raise_error
from xtremehub.errors import (
    AuthenticationFailed,
    StateError,
    StateUnavailable,
    StorageError,
    StorageUnavailable,
    XHubError,
)
from xtremehub.state.server import dumps, loads

__all__ = ["StateClient", "client_for", "connect", "owner_id", "reset_clients", "started_service"]

log = logging.getLogger(__name__)

_WAIT_TIMEOUT = 1e7  # seconds: the calls that wait are bounded by their own timeouts, not the socket's


class StateClient:
    """Calls to the shared objects of one node service (thread-safe; one per process and address)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.rpc = RpcClient(address, timeout=120.0)
        self.waits = RpcClient(address, timeout=_WAIT_TIMEOUT)
        self.session = uuid.uuid4().hex
        self._session_conn: Connection | None = None
        self._lock = threading.Lock()

    def open_session(self) -> None:
        """Open the session connection (once): locks this process holds are released when it closes."""
        with self._lock:
            if self._session_conn is not None:
                return
            host, _, port = self.address.rpartition(":")
            try:
                sock = socket.create_connection((host, int(port)), timeout=30)
                conn = Connection(sock)
                try:
                    client_handshake(conn, authkey_for(self.address), self.address)
                except BaseException:
                    sock.close()
                    raise
                conn.send({"op": "state.session", "session": self.session})
                answer, _ = conn.recv()
            except AuthenticationFailed:
                raise
            except OSError as exc:
                raise StateUnavailable(f"node service at {self.address} unreachable: {exc}") from exc
            if not answer.get("ok"):
                raise StateError(f"node service at {self.address} refused a state session: {answer}")
            sock.settimeout(None)
            self._session_conn = conn

    def call(
        self,
        name: str,
        kind: str,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        create: bool = False,
        init: tuple[tuple[Any, ...], dict[str, Any]] | None = None,
        waits: bool = False,
        owned: bool = False,
    ) -> Any:
        """One method of one shared object; raises what the method raised on the server."""
        if owned:
            self.open_session()
        header = {"name": name, "kind": kind, "method": method, "create": create, "owner": owner_id(self)}
        payload = dumps((init, args, kwargs or {}))
        try:
            answer, data = (self.waits if waits else self.rpc).call("state.op", header, payload)
        except StorageUnavailable as exc:
            raise StateUnavailable(f"shared object {name!r}: {exc.detail}") from exc
        except XHubError as exc:
            if isinstance(exc, StorageError):  # say, a node service without the state handlers
                raise StateError(f"shared object {name!r}: {exc.detail}") from exc
            raise
        result = loads(data) if data else None
        if answer.get("raised") and isinstance(result, BaseException):
            raise result
        return result

    def pipeline(self, calls: list[tuple[str, str, str, tuple[Any, ...]]]) -> list[Any]:
        """Several quick calls ``(name, kind, method, args)`` sent back to back on one connection,
        then their answers read (one round trip's latency for all); each is still atomic on its own.
        A call that failed raises its error once all answers are read."""
        conn = self.rpc._acquire()
        try:
            owner = owner_id(self)
            for name, kind, method, args in calls:
                header = {"op": "state.op", "name": name, "kind": kind, "method": method, "owner": owner}
                conn.send(header, dumps((None, args, {})))
            answers = [conn.recv() for _ in calls]
        except OSError as exc:
            conn.sock.close()
            raise StateUnavailable(f"node service at {self.address}: {exc}") from exc
        self.rpc._release(conn)
        results = []
        for answer, data in answers:
            if not answer.get("ok"):
                raise_error(answer)
            result = loads(data) if data else None
            if answer.get("raised") and isinstance(result, BaseException):
                raise result
            results.append(result)
        return results

    def close(self) -> None:
        self.rpc.close()
        self.waits.close()
        with self._lock:
            if self._session_conn is not None:
                self._session_conn.sock.close()
                self._session_conn = None


def owner_id(client: StateClient) -> str:
    """``<session>/<thread>``: who holds a lock (threads of one process hold locks separately)."""
    return f"{client.session}/{threading.get_ident()}"


_clients: dict[tuple[str, int], StateClient] = {}
_clients_lock = threading.Lock()


def client_for(address: str) -> StateClient:
    """This process's client of the service at ``address`` (a new one after a fork)."""
    key = (address, os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = StateClient(address)
        return client


def reset_clients(address: str | None = None) -> None:
    """Close this process's clients (of ``address``, or all): their service stopped."""
    with _clients_lock:
        keys = [k for k in _clients if address is None or k[0] == address]
        gone = [_clients.pop(k) for k in keys]
    for client in gone:
        client.close()


def _after_fork_in_child() -> None:
    """Close the child's copies of the parent's session connections: the service must see a
    parent that dies as gone (and release its locks) even while its children live on."""
    for (_, pid), client in list(_clients.items()):
        if pid != os.getpid() and client._session_conn is not None:
            client._session_conn.sock.close()
            client._session_conn = None


os.register_at_fork(after_in_child=_after_fork_in_child)

_default: dict[str, Any] = {}


def _alive(address: str) -> bool:
    try:
        client_for(address).rpc.call("hello")
        return True
    except XHubError:
        return False


def connect(address: str | None = None, *, settings: Settings | None = None, start: bool = True) -> str:
    """The address of the node service for shared objects (see the module docstring).

    Without a running service and with ``start``, one is started for this process
    (``xhub eph serve`` in a child process under ``settings.home``) and stopped at exit.
    """
    if address:
        return address
    env = os.environ.get("XHUB_EPH_ADDRESS")
    if env:
        return env
    with _clients_lock:
        cached = _default.get("address")
    if cached and _alive(cached):
        return str(cached)
    settings = settings or default_settings()
    from xtremehub.ephemeral.service import read_service_file

    try:
        found = str(read_service_file(settings)["address"])
        if _alive(found):
            _default["address"] = found
            return found
    except StorageError:
        pass
    if not start:
        raise StateUnavailable(f"no node service announced under {settings.home}; start one with `xhub eph serve`")
    from xtremehub.ephemeral.config import TierConfig
    from xtremehub.ephemeral.service import ServiceProcess

    log.info("starting a node service for shared state (home %s)", settings.home)
    try:
        proc = ServiceProcess.start(TierConfig(), settings)
    except StorageUnavailable as exc:
        raise StateUnavailable(f"could not start a node service: {exc.detail}") from exc
    atexit.register(proc.stop)
    _default.update(address=proc.address, process=proc)
    return proc.address


def started_service() -> Any:
    """The :class:`~xtremehub.ephemeral.service.ServiceProcess` :func:`connect` started, if any (tests)."""
    return _default.get("process")
