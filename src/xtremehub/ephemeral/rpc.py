"""A small request/response RPC over TCP with named handlers: what the node service speaks.

A frame is ``>II`` (header length, payload length), a msgpack header (a map) and
raw payload bytes. A request header names its handler in ``"op"``; the answer's
header has ``"ok"`` and, on failure, the error class name, URL and detail, rebuilt
into the same typed :mod:`xtremehub.errors` class on the client. Handlers may read
further frames from the connection (streamed uploads) and may answer with a file
region that is sent with ``sendfile`` (no copy through Python).

New node features (storage actions, shared state) add handlers to the same server
with :meth:`RpcServer.handler`; the wire format does not change.

Every connection authenticates first, both ways, with the server's *authkey* (32
random bytes; the service writes it into its 0600 service file): the server sends a
nonce, the client answers ``HMAC-SHA256(authkey, nonce)`` with a nonce of its own
and the server proves itself the same way, so the key never crosses the wire and
nothing is unpickled before both ends know each other. A client without the key or
with a wrong one gets :class:`~xtremehub.errors.AuthenticationFailed` and is cut.
Clients find the key of an address with :func:`authkey_for` (this process's
services, keys read from service files, ``XHUB_EPH_AUTHKEY``).

Example:
    >>> server = RpcServer(authkey=b"k" * 32)
    >>> @server.handler("echo")
    ... def echo(req: Request) -> Reply:
    ...     return Reply({"n": req.header["n"] + 1}, req.payload)
    >>> server.start()
    >>> client = RpcClient(server.address, authkey=b"k" * 32)
    >>> client.call("echo", {"n": 1}, b"data")
    ({'ok': True, 'n': 2}, b'data')
    >>> client.close(); server.stop()
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from xtremehub import errors
from xtremehub.errors import AuthenticationFailed, StorageError, StorageUnavailable

__all__ = [
    "FileRegion",
    "Reply",
    "Request",
    "RpcClient",
    "RpcServer",
    "authkey_for",
    "client_handshake",
    "remember_authkey",
]

log = logging.getLogger(__name__)

_HEAD = struct.Struct(">II")
_MAX_HEADER = 1 << 20
_AUTH_FRAME = 4096  # the handshake frames are small: nothing larger is read before authentication
_NONCE = 32
_AUTH_TIMEOUT = 30.0
#: How often a server thread checks for :meth:`RpcServer.stop` (socketserver's default, 0.5 s,
#: made every stop of an embedded service wait that long).
_STOP_POLL = 0.05

_KEYS: dict[str, bytes] = {}  # address -> authkey, for this process's clients
_KEYS_LOCK = threading.Lock()


def remember_authkey(address: str, authkey: bytes) -> None:
    """Let this process's clients of ``address`` authenticate with ``authkey``."""
    with _KEYS_LOCK:
        _KEYS[address] = bytes(authkey)


def authkey_for(address: str) -> bytes | None:
    """The authkey this process knows for ``address``: remembered (a service of this process,
    a service file read), else ``XHUB_EPH_AUTHKEY`` (hex; for a remote ``XHUB_EPH_ADDRESS``).

    Example:
        >>> remember_authkey("127.0.0.1:1", b"k" * 32)
        >>> authkey_for("127.0.0.1:1") == b"k" * 32
        True
    """
    with _KEYS_LOCK:
        known = _KEYS.get(address)
    if known is not None:
        return known
    env = os.environ.get("XHUB_EPH_AUTHKEY")
    if env:
        try:
            return bytes.fromhex(env.strip())
        except ValueError:
            raise AuthenticationFailed("XHUB_EPH_AUTHKEY is not a hex string") from None
    return None


def _mac(authkey: bytes, nonce: bytes) -> bytes:
    return hmac.new(authkey, b"xhub-eph-auth:" + nonce, hashlib.sha256).digest()


def client_handshake(conn: Connection, authkey: bytes | None, address: str) -> None:
    """Authenticate a new connection to the server at ``address`` (both ways), or raise
    :class:`~xtremehub.errors.AuthenticationFailed`."""
    header, _ = conn.recv(limit=_AUTH_FRAME)
    challenge = header.get("challenge")
    if not isinstance(challenge, bytes) or len(challenge) != _NONCE:
        raise AuthenticationFailed(f"node service at {address} sent no authentication challenge")
    if authkey is None:
        raise AuthenticationFailed(
            f"no authkey for the node service at {address}: it is in the service's service.json "
            "(same user), or set XHUB_EPH_AUTHKEY (hex) next to XHUB_EPH_ADDRESS"
        )
    mine = os.urandom(_NONCE)
    conn.send({"op": "auth", "mac": _mac(authkey, challenge), "challenge": mine})
    answer, _ = conn.recv(limit=_AUTH_FRAME)
    if not answer.get("ok"):
        raise AuthenticationFailed(f"node service at {address} refused the authkey: {answer.get('detail', '')}")
    proof = answer.get("mac")
    if not isinstance(proof, bytes) or not hmac.compare_digest(proof, _mac(authkey, mine)):
        raise AuthenticationFailed(f"the server at {address} could not prove it holds the node service's authkey")


@dataclass(frozen=True, slots=True)
class FileRegion:
    """An answer payload taken from a file: ``count`` bytes at ``offset`` of the open ``fd`` (closed once sent)."""

    fd: int
    offset: int
    count: int


@dataclass
class Request:
    """One request: its header, payload and the connection (for handlers that stream)."""

    header: dict[str, Any]
    payload: bytes
    conn: Connection


@dataclass
class Reply:
    header: dict[str, Any] = field(default_factory=dict)
    payload: bytes | memoryview | FileRegion = b""


Handler = Callable[[Request], Reply]


class Connection:
    """Framing on one socket (both ends use it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _recv_exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ConnectionError("connection closed mid-frame" if got or n == 0 else "connection closed")
            got += k
        return buf

    def recv(self, *, limit: int | None = None) -> tuple[dict[str, Any], bytes]:
        """One frame; with ``limit``, header and payload together at most that many bytes."""
        hlen, plen = _HEAD.unpack(self._recv_exact(_HEAD.size))
        if hlen > _MAX_HEADER:
            raise ConnectionError(f"frame header of {hlen} bytes is over the {_MAX_HEADER} limit")
        if limit is not None and hlen + plen > limit:
            raise ConnectionError(f"frame of {hlen + plen} bytes is over the {limit} limit")
        header = msgpack.unpackb(bytes(self._recv_exact(hlen)), raw=False)
        if not isinstance(header, dict):
            raise ConnectionError("frame header is not a map")
        payload = bytes(self._recv_exact(plen)) if plen else b""
        return header, payload

    def send(self, header: dict[str, Any], payload: bytes | memoryview | FileRegion = b"") -> None:
        head = msgpack.packb(header, use_bin_type=True)
        size = payload.count if isinstance(payload, FileRegion) else len(payload)
        if isinstance(payload, FileRegion):
            self.sock.sendall(_HEAD.pack(len(head), size) + head)
            sent = 0
            while sent < size:
                n = os.sendfile(self.sock.fileno(), payload.fd, payload.offset + sent, size - sent)
                if n == 0:
                    raise ConnectionError("file shorter than announced")
                sent += n
        elif size < 65536:
            self.sock.sendall(_HEAD.pack(len(head), size) + head + bytes(payload))
        else:
            self.sock.sendall(_HEAD.pack(len(head), size) + head)
            self.sock.sendall(payload)


def error_header(exc: BaseException) -> dict[str, Any]:
    """The wire form of an error raised by a handler."""
    if isinstance(exc, StorageError):
        return {"ok": False, "error": type(exc).__name__, "url": exc.url, "detail": exc.detail}
    if isinstance(exc, errors.XHubError):
        return {"ok": False, "error": type(exc).__name__, "url": "", "detail": str(exc)}
    return {"ok": False, "error": "StorageError", "url": "xhub-eph://", "detail": f"{type(exc).__name__}: {exc}"}


def raise_error(header: dict[str, Any]) -> None:
    """Raise the typed error an answer header describes."""
    cls = getattr(errors, str(header.get("error")), None)
    url, detail = str(header.get("url", "")), str(header.get("detail", ""))
    if isinstance(cls, type) and issubclass(cls, StorageError):
        raise cls(url, detail)
    if isinstance(cls, type) and issubclass(cls, errors.XHubError):
        raise cls(detail)
    raise StorageError(url or "xhub-eph://", detail)


class RpcServer:
    """A threaded TCP server dispatching frames to named handlers (one thread per connection)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, authkey: bytes | None = None) -> None:
        self.handlers: dict[str, Handler] = {}
        self.authkey = authkey if authkey is not None else os.urandom(32)
        outer = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        class _Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = _Server((host, port), _Handler)
        self._thread: threading.Thread | None = None
        remember_authkey(self.address, self.authkey)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def _authenticate(self, conn: Connection) -> bool:
        """The server's side of :func:`client_handshake`: whether the peer holds the authkey."""
        nonce = os.urandom(_NONCE)
        conn.sock.settimeout(_AUTH_TIMEOUT)
        try:
            conn.send({"challenge": nonce})
            header, _ = conn.recv(limit=_AUTH_FRAME)
            mac, theirs = header.get("mac"), header.get("challenge")
            if (
                header.get("op") != "auth"
                or not isinstance(mac, bytes)
                or not hmac.compare_digest(mac, _mac(self.authkey, nonce))
                or not isinstance(theirs, bytes)
                or len(theirs) != _NONCE
            ):
                peer = conn.sock.getpeername()
                log.warning("node service: refused a connection from %s (authentication failed)", peer)
                conn.send(error_header(AuthenticationFailed("authentication failed: wrong or missing authkey")))
                return False
            conn.send({"ok": True, "mac": _mac(self.authkey, theirs)})
        except (ConnectionError, OSError, ValueError, msgpack.UnpackException):
            return False
        conn.sock.settimeout(None)
        return True

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Register ``func`` as the handler of requests with ``op == name``."""

        def register(func: Handler) -> Handler:
            if name in self.handlers:
                raise ValueError(f"handler {name!r} already registered")
            self.handlers[name] = func
            return func

        return register

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock)
        if not self._authenticate(conn):
            return  # socketserver closes the socket
        while True:
            try:
                header, payload = conn.recv()
            except (ConnectionError, OSError, ValueError, msgpack.UnpackException):
                return
            op = header.get("op")
            func = self.handlers.get(str(op))
            try:
                if func is None:
                    raise StorageError("xhub-eph://", f"unknown operation {op!r}; known: {sorted(self.handlers)}")
                reply = func(Request(header, payload, conn))
                out = {"ok": True, **reply.header}
                data = reply.payload
            except (ConnectionError, BrokenPipeError):
                return
            except Exception as exc:  # every failure becomes a typed error on the client
                if not isinstance(exc, errors.XHubError):
                    log.exception("handler %r failed", op)
                out, data = error_header(exc), b""
            try:
                conn.send(out, data)
            except OSError:
                return
            finally:
                if isinstance(data, FileRegion):
                    os.close(data.fd)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": _STOP_POLL}, name="xhub-eph-rpc", daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class RpcClient:
    """Calls to one server over a pool of connections (one per concurrent call), renewed after a fork."""

    def __init__(self, address: str, *, timeout: float = 300.0, authkey: bytes | None = None) -> None:
        self.address = address
        self._authkey = authkey
        host, _, port = address.rpartition(":")
        self._target = (host, int(port))
        self._timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._pid = os.getpid()

    def _acquire(self) -> Connection:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours
                for conn in self._idle:
                    conn.sock.close()
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        try:
            sock = socket.create_connection(self._target, timeout=self._timeout)
        except OSError as exc:
            raise StorageUnavailable(f"xhub-eph://{self.address}", f"node service unreachable: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock)
        try:
            client_handshake(conn, self._authkey or authkey_for(self.address), self.address)
        except AuthenticationFailed:  # a PermissionError, so an OSError: before the next clause
            sock.close()
            raise
        except (OSError, ConnectionError, msgpack.UnpackException) as exc:
            sock.close()
            raise StorageUnavailable(f"xhub-eph://{self.address}", f"node service handshake failed: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return conn

    def _release(self, conn: Connection) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.sock.close()

    def call(
        self, op: str, header: dict[str, Any] | None = None, payload: bytes | memoryview = b""
    ) -> tuple[dict[str, Any], bytes]:
        """One request and its answer; a failed answer raises its typed error."""
        return self.stream(op, header, payload, ())

    def stream(
        self,
        op: str,
        header: dict[str, Any] | None,
        payload: bytes | memoryview,
        chunks: Iterable[bytes],
    ) -> tuple[dict[str, Any], bytes]:
        """A request followed by ``{"chunk": True}`` frames of ``chunks`` and an end frame (if any chunks)."""
        conn = self._acquire()
        streaming = chunks != ()
        try:
            conn.send({"op": op, **(header or {})}, payload)
            if streaming:
                for chunk in chunks:
                    conn.send({"chunk": True}, chunk)
                conn.send({"end": True})
            answer, data = conn.recv()
        except (OSError, ConnectionError) as exc:
            conn.sock.close()
            raise StorageUnavailable(f"xhub-eph://{self.address}", f"node service connection lost: {exc}") from exc
        except BaseException:
            conn.sock.close()  # say, a bad chunk from the caller: the stream is cut
            raise
        self._release(conn)
        if not answer.get("ok"):
            raise_error(answer)
        return answer, data

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.sock.close()
