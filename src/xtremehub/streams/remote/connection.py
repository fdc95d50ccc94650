"""A pipelined, self-healing client connection to the stream server.

Any number of threads send requests on one TCP connection; each request gets a request id and
a :class:`concurrent.futures.Future` that a reader thread resolves when the answer with that
id arrives (answers may come in any order). When the connection is lost (server killed,
restarted, network cut), the reader thread reconnects with backoff for up to
``reconnect_timeout`` seconds and re-sends, in their original order and before any new
request, every pending request that is safe to repeat: reads, lookups, idempotent calls and
appends that carry a writer id and event number (the store recognises a re-sent event it
already stored and acknowledges it as a duplicate, so retries are exactly-once). Other
pending requests fail with :class:`~xtremehub.errors.ServerUnavailable`. An append that would
then overtake an earlier one of its writer refused for back pressure is refused for back
pressure instead of re-sent (see :mod:`xtremehub.streams.writerorder`): the writer re-sends them in order.
That record is kept for servers of protocol version 2 only: from version 3 on, appends name their
writer's previous event number and the store itself refuses one that would overtake a refused
event (``EventNumberGap``), so an event the writer gives up for good holds nothing back.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any, TypeVar

from xtremehub import __version__
from xtremehub.errors import AuthenticationFailed, BackPressure, ProtocolError, SecurityError, ServerUnavailable
from xtremehub.security.identity import TokenSource, current_token
from xtremehub.streams.sharedfuture import SharedConditionFuture
from xtremehub.streams.wire import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    MAGIC,
    PREVIOUS_NUMBER_VERSION,
    SUPPORTED_VERSIONS,
    MessageType,
    WireCodec,
    decode_error,
    decode_header,
    encode_frame,
)
from xtremehub.streams.writerorder import Lane, WriterOrder

__all__ = ["ClientConfig", "Connection", "connect", "parse_tcp_url"]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Turns an answer (its type and payload) into the request's result.
Decoder = Callable[[MessageType | int, bytes], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """How the client connects; ``auth_*`` and ``ssl`` are sent/used as the server asks.

    ``token`` (a string, a :class:`~xtremehub.security.identity.TokenProvider` or a callable)
    is sent as a bearer token in each HELLO, asked again at every (re)connection so a provider
    can refresh it; ``purpose`` goes with it (for purpose-of-use policies). ``tls_ca`` (a CA
    bundle file) turns on TLS verified against that CA when ``ssl`` is not given;
    ``tls_cert``/``tls_key`` add a client certificate for a server requiring mutual TLS.

    Example:
        >>> ClientConfig().reconnect_timeout
        30.0
    """

    connect_timeout: float = 5.0
    #: How long to keep reconnecting while requests that can be re-sent are pending.
    reconnect_timeout: float = 30.0
    auth_scheme: str = "none"
    auth_token: str = field(default="", repr=False)  # never in a repr or a log line
    ssl: ssl.SSLContext | None = None
    max_frame: int = DEFAULT_MAX_FRAME
    token: TokenSource | None = field(default=None, repr=False)
    purpose: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def ssl_context(self) -> SSLContext | None:
        """``ssl``, or a context verifying the server against ``tls_ca``."""
        if self.ssl is not None or self.tls_ca is None:
            return self.ssl
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert is not None:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    def auth(self) -> dict[str, str]:
        """The HELLO's auth fields (the token fetched now)."""
        if self.token is None:
            return {"scheme": self.auth_scheme, "token": self.auth_token}
        fields = {"scheme": "bearer", "token": current_token(self.token)}
        if self.purpose is not None:
            fields["purpose"] = self.purpose
        return fields


def parse_tcp_url(url: str) -> tuple[str, int]:
    """``tcp://host:port`` -> (host, port); ``ValueError`` for anything else.

    Example:
        >>> parse_tcp_url("tcp://127.0.0.1:9090")
        ('127.0.0.1', 9090)
    """
    if not url.startswith("tcp://"):
        raise ValueError(f"stream server URL must look like tcp://host:port, got {url!r}")
    host, sep, port = url[len("tcp://") :].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"stream server URL must look like tcp://host:port, got {url!r}")
    return host.strip("[]"), int(port)


def connect(
    url: str | Connection, config: ClientConfig | None = None, own: bool | None = None
) -> tuple[Connection, bool]:
    """A proxy's connection and whether the proxy closes it (by default: when it opened it)."""
    if isinstance(url, Connection):
        return url, bool(own)
    host, port = parse_tcp_url(url)
    return Connection(host, port, config), own is None or own


class _Pending:
    __slots__ = ("checked", "decode", "frame", "future", "lanes", "refuse", "renewed", "retriable")

    def __init__(
        self,
        frame: bytes,
        decode: Decoder,
        retriable: bool,
        lanes: tuple[Lane, ...] = (),
        refuse: Callable[[Exception], Any] | None = None,
        condition: threading.Condition | None = None,
    ) -> None:
        self.frame = frame
        self.decode = decode
        #: Turns the server's refusal (an ERROR answer) into the result, when the caller wants it so.
        self.refuse = refuse
        self.retriable = retriable
        #: A numbered append's places in its writer's order (see :class:`WriterOrder`).
        self.lanes = lanes
        #: Refused unexecuted because the token expired, kept to be re-sent once after reconnecting.
        self.renewed = False
        #: Encoded for a server of protocol 3 (it names its writer's previous event numbers, so the
        #: store checks its order); False for a frame encoded for a version 2 server.
        self.checked = False
        #: A future of its own condition, or sharing ``condition`` (no ``Condition`` and ``RLock`` made per request).
        self.future: Future[Any] = Future() if condition is None else SharedConditionFuture(condition)


class Connection:
    """One logical connection to a stream server, surviving server restarts."""

    def __init__(self, host: str, port: int, config: ClientConfig | None = None) -> None:
        self.host, self.port = host, port
        self.config = config or ClientConfig()
        self.codec = WireCodec.default()
        self._lock = threading.Lock()  # guards _sock, _pending, _next_id and every send
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._outbox: list[bytes] = []
        self._sending = False
        self._closed = False
        self._order = WriterOrder()  # under _lock
        #: Whether appends are kept in their writers' order here (a server of protocol version 2).
        self._ordered = True
        self.server_info: dict[str, Any] = {}
        self._ssl = self.config.ssl_context()
        with self._lock:
            self._ensure_connected(retry=False)

    @property
    def url(self) -> str:
        """``tcp://host:port``."""
        return f"tcp://{self.host}:{self.port}"

    # -- requests --------------------------------------------------------------------------
    def request(
        self,
        msg_type: MessageType,
        payload: bytes,
        decode: Decoder,
        *,
        retriable: bool,
        lanes: Sequence[Lane] = (),
        refuse: Callable[[Exception], Any] | None = None,
        checked: bool = False,
        condition: threading.Condition | None = None,
    ) -> Future[Any]:
        """Send one request; the future resolves with ``decode(answer type, answer payload)``.

        ``lanes``: a numbered append's ``(writer id, segment, first event number)`` per batch; such
        an append is refused at once (``BackPressure``, nothing sent) while it would overtake an
        earlier one of its writer refused for back pressure and not yet re-sent. ``refuse``: such a
        refusal, or the server's (an ERROR answer), resolves the future with ``refuse(error)``
        instead of failing it. ``condition``: the future shares it (a
        :class:`~xtremehub.streams.sharedfuture.SharedConditionFuture`) instead of making its own;
        for requests whose futures nobody blocks on (a wake-up of the condition wakes all its waiters).
        """
        with self._lock:
            if self._closed:
                raise ServerUnavailable(f"{self.url}: client closed")
            held = self._order.check(lanes) if lanes and self._ordered else None
            if held is not None:
                refused: Future[Any] = Future()
                if refuse is not None:
                    refused.set_result(refuse(held))
                else:
                    refused.set_exception(held)
                return refused
            self._ensure_connected(retry=retriable)
            rid = self._next_id
            self._next_id = rid + 1 if rid < 0xFFFFFFFF else 1
            pending = _Pending(encode_frame(msg_type, rid, payload), decode, retriable, tuple(lanes), refuse, condition)
            pending.checked = checked
            self._pending[rid] = pending
            self._outbox.append(pending.frame)
            if self._sending:  # the thread sending now takes our frame along
                return pending.future
            self._sending = True
        self._send_outbox()
        return pending.future

    def _send_outbox(self) -> None:
        """Send queued frames, many per system call when threads send concurrently (in request order)."""
        while True:
            with self._lock:
                sock = self._sock
                if not self._outbox or sock is None:
                    self._outbox.clear()
                    self._sending = False
                    return
                data = b"".join(self._outbox)
                self._outbox.clear()
            # Outside the lock, so other threads queue their frames meanwhile. Only this thread
            # writes to this socket now; a reconnect writes to its new socket only.
            try:
                sock.sendall(data)
            except OSError:
                # The reader thread sees the broken socket too, re-sends or fails these requests.
                _shutdown(sock)

    def call(self, msg_type: MessageType, payload: bytes, decode: Decoder, *, retriable: bool) -> Any:
        """:meth:`request` and wait for the answer."""
        return self.request(msg_type, payload, decode, retriable=retriable).result()

    def close(self) -> None:
        """Say GOODBYE, close the socket, fail what is still pending."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sock = self._sock
            if sock is not None:
                if not self._sending:
                    with contextlib.suppress(OSError):
                        sock.sendall(encode_frame(MessageType.GOODBYE, 0, b""))
                _shutdown(sock)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join()
        with self._lock:
            left = self._take_pending(lambda p: True)
        _fail(left, ServerUnavailable(f"{self.url}: client closed"))

    # -- connecting ------------------------------------------------------------------------
    def _ensure_connected(self, *, retry: bool) -> None:
        """Under the lock: connect (and start a reader) when there is no socket."""
        if self._sock is not None:
            return
        deadline = time.monotonic() + (self.config.reconnect_timeout if retry else 0.0)
        self._sock = self._connect_until(deadline)
        self._reader = threading.Thread(target=self._read_loop, name=f"xhub-stream-client-{self.port}", daemon=True)
        self._reader.start()

    def _connect_until(self, deadline: float) -> socket.socket:
        delay = 0.05
        while True:
            try:
                return self._connect_once()
            except (OSError, ProtocolError) as exc:
                if isinstance(exc, ProtocolError | SecurityError) or time.monotonic() + delay > deadline:
                    if isinstance(exc, ProtocolError | SecurityError):
                        raise
                    raise ServerUnavailable(f"{self.url}: cannot connect: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _connect_once(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.config.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
            hello = {
                "magic": MAGIC.decode(),
                "versions": list(SUPPORTED_VERSIONS),
                "client": f"xtremehub/{__version__}",
                "auth": self.config.auth(),
            }
            sock.sendall(encode_frame(MessageType.HELLO, 0, self.codec.encode(hello)))
            try:
                msg_type, _, payload = self._recv_frame(sock)
            except EOFError:
                hint = "" if self._ssl is not None else " (a TLS server? pass tls_ca=)"
                raise ServerUnavailable(f"{self.url}: the server closed the connection during HELLO{hint}") from None
            if msg_type == MessageType.ERROR:
                raise decode_error(self.codec.decode(payload))
            if msg_type != MessageType.HELLO_OK:
                raise ProtocolError(f"{self.url}: expected HELLO_OK, got message type {int(msg_type)}")
            self.server_info = self.codec.decode(payload)
            self._ordered = int(self.server_info.get("version", 1)) < PREVIOUS_NUMBER_VERSION
            if not self._ordered:
                self._order = WriterOrder()  # the store checks every writer's order from now on
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        log.debug("connected to %s (%s)", self.url, self.server_info.get("server"))
        return sock

    def _recv_frame(self, sock: socket.socket) -> tuple[MessageType | int, int, bytes]:
        header = decode_header(_recv_exactly(sock, HEADER_SIZE), max_frame=self.config.max_frame)
        return header.type, header.request_id, _recv_exactly(sock, header.payload_length)

    # -- answers ---------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while True:
            with self._lock:
                sock = self._sock
            if sock is None:
                return
            frames = _FrameReader(sock, self.config.max_frame)
            try:
                while True:
                    msg_type, rid, payload = frames.next_frame()
                    if msg_type == MessageType.GOODBYE:
                        log.info("%s: server said GOODBYE", self.url)
                        break
                    self._resolve(msg_type, rid, payload)
            except (OSError, ProtocolError, EOFError) as exc:
                log.debug("%s: connection lost: %r", self.url, exc)
            if not self._recover(sock):
                return

    def _resolve(self, msg_type: MessageType | int, rid: int, payload: bytes) -> None:
        with self._lock:
            pending = self._pending.pop(rid, None)
        if pending is None:
            if msg_type == MessageType.ERROR:
                log.warning("%s: error frame for no request: %r", self.url, self.codec.decode(payload))
            return
        result: Any = None
        try:
            if msg_type == MessageType.ERROR:
                refusal = decode_error(self.codec.decode(payload))
                if self._renew(rid, pending, refusal):
                    return
                error: Exception | None = refusal
                if pending.refuse is not None:
                    result, error = pending.refuse(refusal), None
            else:
                result, error = pending.decode(msg_type, payload), None
        except Exception as exc:  # a bad answer fails this request only
            error = exc
        refused = WriterOrder.refused(pending.lanes, result, error) if pending.lanes and self._ordered else None
        if refused:  # before the future's callbacks: a writer re-sends from them
            with self._lock:
                self._order.hold(refused)
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result)

    def _renew(self, rid: int, pending: _Pending, error: Exception) -> bool:
        """Keep a request refused for an expired token, to re-send it with a fresh one.

        Only with a token provider (a fixed string would be refused again) and once per request.
        The server refuses such a request before running it and then hangs up, so re-sending it
        after the reconnect (which asks the provider again) is safe even when it is not idempotent.
        """
        if pending.renewed or not isinstance(error, AuthenticationFailed) or isinstance(self.config.token, str | None):
            return False
        pending.renewed = True
        with self._lock:
            self._pending[rid] = pending
        log.info("%s: token expired; reconnecting with a fresh one", self.url)
        return True

    def _recover(self, old: socket.socket) -> bool:
        """Reconnect and re-send what can be re-sent; False when this reader thread should end."""
        lost: Exception = ServerUnavailable(f"{self.url}: connection lost")
        held: list[Future[Any]] = []
        with self._lock:
            old.close()
            if self._sock is old:
                self._sock = None
            failed = self._take_pending(lambda p: not (p.retriable or p.renewed))
            resumed = False
            if self._closed or not self._pending:
                failed += self._take_pending(lambda p: True)
            else:
                try:
                    sock = self._connect_until(time.monotonic() + self.config.reconnect_timeout)
                except (ServerUnavailable, ProtocolError, SecurityError) as exc:
                    lost = exc
                    failed += self._take_pending(lambda p: True)
                else:
                    log.info("%s: reconnected, re-sending %d requests", self.url, len(self._pending))
                    self._sock = sock
                    resumed = True
                    self._outbox.clear()
                    ordered = [(rid, self._pending[rid].lanes) for rid in sorted(self._pending)]
                    if self._ordered:  # a version 2 server: what would overtake a refused append waits,
                        # and what was encoded for protocol 3 (fields it does not know) is encoded again
                        withdrawn = self._order.withdraw([(rid, lanes) for rid, lanes in ordered if lanes])
                        encoded_for_3 = [rid for rid, lanes in ordered if lanes and self._pending[rid].checked]
                        self._order.hold([lane for rid in encoded_for_3 for lane in self._pending[rid].lanes])
                        withdrawn = sorted({*withdrawn, *encoded_for_3})
                    else:  # protocol 3 now: appends encoded for a version 2 server name no previous
                        # event number, so neither this server nor its store could keep them in their
                        # writer's order (one stored above a refused one makes the re-send a duplicate):
                        # all are refused for back pressure and the writer re-sends them, numbered
                        withdrawn = [rid for rid, lanes in ordered if lanes and not self._pending[rid].checked]
                    if withdrawn:
                        log.info("%s: %d appends would overtake a refused one: refused", self.url, len(withdrawn))
                        held.extend(self._pending.pop(rid).future for rid in withdrawn)
                    try:
                        for rid in sorted(self._pending):
                            sock.sendall(self._pending[rid].frame)
                    except OSError:
                        _shutdown(sock)
        _fail(failed, lost)
        _fail(
            held,
            BackPressure(
                f"{self.url}: reconnected; an append that could overtake an earlier refused one of its writer "
                "was not re-sent (resend in order)"
            ),
        )
        return resumed

    def _take_pending(self, which: Callable[[_Pending], bool]) -> list[Future[Any]]:
        """Under the lock: remove the pending requests ``which`` selects, return their futures."""
        return [self._pending.pop(rid).future for rid in [r for r, p in self._pending.items() if which(p)]]


def _fail(futures: list[Future[Any]], exc: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


class _FrameReader:
    """Frames from a socket, reading ahead: several small answers cost one ``recv`` (and one GIL
    re-acquisition of the reader thread) instead of two each. A large payload's rest is read
    straight into its own buffer (no copy through the read-ahead buffer)."""

    __slots__ = ("_buf", "_max_frame", "_pos", "_sock")

    #: Bytes asked for per ``recv`` while frames are small.
    READ_AHEAD = 64 * 1024

    def __init__(self, sock: socket.socket, max_frame: int) -> None:
        self._sock, self._max_frame = sock, max_frame
        self._buf = b""
        self._pos = 0

    def _fill(self, need: int) -> None:
        """Read until at least ``need`` unread bytes are buffered."""
        chunks = [self._buf[self._pos :]]
        have = len(chunks[0])
        while have < need:
            chunk = self._sock.recv(max(self.READ_AHEAD, need - have))
            if not chunk:
                raise EOFError("connection closed by the server")
            chunks.append(chunk)
            have += len(chunk)
        self._buf = b"".join(chunks) if len(chunks) > 1 else chunks[0]
        self._pos = 0

    def next_frame(self) -> tuple[MessageType | int, int, bytes]:
        """The next frame's type, request id and payload."""
        if len(self._buf) - self._pos < HEADER_SIZE:
            self._fill(HEADER_SIZE)
        start = self._pos
        header = decode_header(self._buf[start : start + HEADER_SIZE], max_frame=self._max_frame)
        size = header.payload_length
        start += HEADER_SIZE
        have = len(self._buf) - start
        if have >= size:
            self._pos = start + size
            return header.type, header.request_id, self._buf[start : start + size]
        if size - have > self.READ_AHEAD:  # a large payload: its rest goes straight into its buffer
            head = self._buf[start:]
            self._buf, self._pos = b"", 0
            return header.type, header.request_id, _recv_exactly(self._sock, size, head)
        self._pos = start
        self._fill(size)
        self._pos = size
        return header.type, header.request_id, self._buf[:size]


def _recv_exactly(sock: socket.socket, size: int, head: bytes = b"") -> bytes:
    """``size`` bytes: ``head`` (already received) and the rest read from ``sock``."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = len(head)
    view[:got] = head
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError("connection closed by the server")
        got += n
    return bytes(buf)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
