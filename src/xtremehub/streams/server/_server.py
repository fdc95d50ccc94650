"""The asyncio stream server: accept clients, serve the two contracts, shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from xtremehub.errors import ConfigError
from xtremehub.security._net import is_loopback_host
from xtremehub.security.authz import Authorizer
from xtremehub.security.identity import TokenValidator
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.segmentstore.contract import SegmentStoreContract
from xtremehub.streams.server._connection import ClientConnection
from xtremehub.streams.server.dispatch import Dispatcher
from xtremehub.streams.server.handoff import LoopHandoff
from xtremehub.streams.wire import CONTROLLER_TARGET, DEFAULT_MAX_FRAME, STORE_TARGET, WireCodec

__all__ = ["ServerConfig", "StreamServer", "serve_background"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where the server listens and how much it takes on.

    ``ssl`` (a server-side :class:`ssl.SSLContext`) turns on TLS. ``validator`` turns on
    authentication: the HELLO must carry a bearer token it accepts, access ends when that
    token expires, and every request is authorised by ``authorizer`` (None: any authenticated
    caller may do everything) for its scope or stream (:mod:`.access`). ``authenticate(scheme,
    token)`` is a lower-level hook refusing a client when it returns False. A server on an
    address other than loopback refuses to start without a validator and TLS unless
    ``insecure`` is set.

    Example:
        >>> ServerConfig(port=0).host
        '127.0.0.1'
    """

    host: str = "127.0.0.1"
    port: int = 0
    max_frame: int = DEFAULT_MAX_FRAME
    #: Requests one connection may have running before the server stops reading from it.
    max_in_flight: int = 4096
    #: Threads for blocking store and controller calls.
    call_threads: int = 16
    #: Threads for tail reads waiting for data (long poll).
    wait_threads: int = 128
    max_read_wait: float = 60.0
    #: How long shutdown waits for running requests.
    shutdown_grace: float = 10.0
    ssl: ssl.SSLContext | None = None
    authenticate: Callable[[str, str], bool] | None = None
    validator: TokenValidator | None = None
    authorizer: Authorizer | None = None
    #: Serve on a non-loopback address without authentication or TLS (explicitly insecure).
    insecure: bool = False
    #: Seconds a connection remembers an allowed (action, resource); 0: ask the authorizer every time.
    authz_cache_ttl: float = 1.0

    def check_security(self) -> None:
        """:class:`~xtremehub.errors.ConfigError` (one line) for a non-loopback server without security.

        Example:
            >>> ServerConfig(host="0.0.0.0").check_security()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            xtremehub.errors.ConfigError: refusing to serve streams on 0.0.0.0 without security (missing: ...
        """
        if self.authorizer is not None and self.validator is None:
            raise ConfigError(
                "an authorizer (--policy) needs token validation (--oidc-issuer): without identities "
                "no request could be authorised"
            )
        if self.insecure or is_loopback_host(self.host):
            return
        missing = [
            name
            for name, present in (
                ("token validation", self.validator is not None or self.authenticate is not None),
                ("TLS", self.ssl is not None),
            )
            if not present
        ]
        if missing:
            raise ConfigError(
                f"refusing to serve streams on {self.host} without security (missing: {', '.join(missing)}); "
                "give --oidc-issuer and --tls-cert/--tls-key, or --insecure"
            )


class StreamServer:
    """Serves a segment store (and optionally a controller) to many TCP clients.

    The caller owns ``store`` and ``controller`` and closes them after :meth:`shutdown`.
    """

    def __init__(
        self,
        store: SegmentStoreContract,
        controller: ControllerContract | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self._store = store
        targets: dict[str, tuple[object, type]] = {STORE_TARGET: (store, SegmentStoreContract)}
        if controller is not None:
            targets[CONTROLLER_TARGET] = (controller, ControllerContract)
        self._dispatcher = Dispatcher(targets)
        self._codec = WireCodec.default()
        self._calls = ThreadPoolExecutor(self.config.call_threads, thread_name_prefix="xhub-stream-call")
        self._waits = ThreadPoolExecutor(self.config.wait_threads, thread_name_prefix="xhub-stream-wait")
        self._appender = ThreadPoolExecutor(1, thread_name_prefix="xhub-stream-append")
        self._server: asyncio.Server | None = None
        self._handoff: LoopHandoff | None = None  # made by start(), on the loop
        self._connections: dict[ClientConnection, asyncio.Task[None]] = {}
        self.port = 0

    @property
    def url(self) -> str:
        """``tcp://host:port`` once started."""
        return f"tcp://{self.config.host}:{self.port}"

    def busy(self) -> bool:
        """True while some connection has a request running."""
        return any(conn.in_flight for conn in list(self._connections))

    async def start(self) -> None:
        """Listen; ``port`` is the bound port afterwards (a free one when configured as 0)."""
        self.config.check_security()
        if self.config.insecure and not is_loopback_host(self.config.host):
            log.warning("stream server on %s is INSECURE: no authentication or TLS required", self.config.host)
        self._handoff = LoopHandoff(asyncio.get_running_loop())
        self._server = await asyncio.start_server(
            self._accept, self.config.host, self.config.port, ssl=self.config.ssl, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("stream server listening on %s", self.url)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ClientConnection(
            reader,
            writer,
            store=self._store,
            dispatcher=self._dispatcher,
            codec=self._codec,
            config=self.config,
            calls=self._calls,
            waits=self._waits,
            appender=self._appender,
            handoff=self._handoff,
        )
        task = asyncio.current_task()
        assert task is not None
        self._connections[conn] = task
        log.debug("client %s connected (%d open)", conn.peer, len(self._connections))
        try:
            await conn.run()
        finally:
            del self._connections[conn]

    async def shutdown(self) -> None:
        """Stop accepting, let running requests answer (up to ``shutdown_grace``), close clients."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.stop_reading()
        tasks = list(self._connections.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.config.shutdown_grace + 1.0)
            for task in late:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        self._calls.shutdown(wait=True, cancel_futures=True)
        self._waits.shutdown(wait=True, cancel_futures=True)
        self._appender.shutdown(wait=True)
        log.info("stream server on %s stopped", self.url)

    async def serve_until_signal(
        self,
        signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
        *,
        on_started: Callable[[StreamServer], None] | None = None,
    ) -> None:
        """Start, serve until one of ``signals`` arrives, then shut down gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            if on_started is not None:
                on_started(self)
            await stop.wait()
            log.info("stream server: signal received, shutting down")
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.shutdown()


@contextlib.contextmanager
def serve_background(
    store: SegmentStoreContract,
    controller: ControllerContract | None = None,
    config: ServerConfig | None = None,
) -> Iterator[StreamServer]:
    """Run a :class:`StreamServer` on an event loop in a thread (for tests and embedding).

    The server listens on a free port of 127.0.0.1 unless ``config`` says otherwise; leaving
    the block shuts it down gracefully (the caller still owns and closes ``store``)::

        with serve_background(store, controller) as server:
            manager = StreamManager(server.url)
    """
    server = StreamServer(store, controller, config)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            await server.start()
        except BaseException as exc:
            failure.append(exc)
            raise
        finally:
            started.set()

    thread = threading.Thread(target=loop.run_forever, name="xhub-stream-server", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(main(), loop)
    started.wait()
    try:
        if failure:
            raise failure[0]
        yield server
    finally:
        if not failure:
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
