"""One client connection on the stream server: read frames, run requests, write answers.

Requests run concurrently (pipelining): the read loop never waits for a request to finish,
only for a free slot when the connection has ``max_in_flight`` requests running, and for the
socket to drain when the client does not read its answers. Appends go to the store's
``append_async`` (APPEND) or ``append_batches`` (APPEND_BATCH: the whole frame in one call, so
one group commit and one WAL record per segment) in arrival order through one feeder thread (so one
writer's events stay in order, concurrent appends of every client share one group commit, and
a store blocking under back pressure holds up appends only); other calls run in a thread
pool, tail reads with a wait in a second pool so they never starve the others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

from xtremehub import __version__
from xtremehub.errors import AuthenticationFailed, BackPressure, ProtocolError, SecurityError
from xtremehub.security.authz import Action
from xtremehub.streams.segmentstore.contract import (
    AppendResult,
    ReadResult,
    SegmentBatch,
    SegmentStoreContract,
)
from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.server.access import ConnectionAccess, request_access, segment_resource
from xtremehub.streams.server.dispatch import Dispatcher
from xtremehub.streams.server.handoff import LoopHandoff
from xtremehub.streams.wire import (
    CONTROLLER_TARGET,
    HEADER_SIZE,
    MAGIC,
    MAX_BATCH_EVENTS,
    MESSAGE_VERSION,
    PREVIOUS_NUMBER_VERSION,
    SUPPORTED_VERSIONS,
    FrameHeader,
    MessageType,
    WireCodec,
    decode_header,
    encode_error,
    encode_frame,
)
from xtremehub.streams.writerorder import Lane, WriterOrder

if TYPE_CHECKING:
    from xtremehub.streams.server._server import ServerConfig

__all__ = ["ClientConnection"]

log = logging.getLogger(__name__)

#: A long-poll read is split in slices this long so shutdown never waits for a whole wait.
_WAIT_SLICE = 0.5


class _BatchAnswer:
    """The per-event outcomes of one APPEND_BATCH (one run per segment batch), answered as one APPENDED_BATCH."""

    __slots__ = ("runs",)

    def __init__(self, runs: list[RunOutcome]) -> None:
        self.runs = runs

    @classmethod
    def of(cls, batches: list[SegmentBatch], futures: list[Future[RunOutcome]] | Future[RunOutcome]) -> _BatchAnswer:
        """The answer from the batches' settled futures; a batch failed as a whole gives each event its error."""
        if not isinstance(futures, list):  # the call failed before it queued anything
            futures = [futures] * len(batches)
        return cls([_run(f, b) for f, b in zip(futures, batches, strict=True)])

    def payload(self) -> list[list[Any]]:
        """Per batch ``[offsets, duplicate indexes, {index: error}]``; a refused event's offset is -1."""
        return [
            [run.offsets, list(run.duplicates), {i: encode_error(e) for i, e in run.errors.items()}]
            for run in self.runs
        ]


#: What a store append call returned: a future (APPEND) or one per batch (APPEND_BATCH).
_Started = Future[Any] | list[Future[Any]]
#: Turns what a store append call returned, once settled, into the answer (None: the future's own result).
_Wrap = Callable[[Any], Any]
#: Queued for the feeder: the loop future to resolve, the store call, and how to wrap its result.
_FeedItem = tuple[asyncio.Future[Any], Callable[..., Any], _Wrap | None]


class ClientConnection:
    """The protocol state of one connected client."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        store: SegmentStoreContract,
        dispatcher: Dispatcher,
        codec: WireCodec,
        config: ServerConfig,
        calls: ThreadPoolExecutor,
        waits: ThreadPoolExecutor,
        appender: ThreadPoolExecutor,
        handoff: LoopHandoff | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._store = store
        self._dispatcher = dispatcher
        self._codec = codec
        self._config = config
        self._calls = calls
        self._waits = waits
        self._appender = appender
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._version: int | None = None
        self._stopping = False
        self._outbox: list[bytes] = []
        self._flush_scheduled = False
        self._feed_lock = threading.Lock()
        self._feed_queue: list[_FeedItem] = []
        self._feed_scheduled = False
        #: Settled appends reach the loop through it (shared by the server's connections).
        self._handoff = handoff or LoopHandoff(self._loop)
        #: (writer id, segment) -> the lowest event number of this connection's appends refused
        #: for back pressure; later numbered appends above it are refused too, until it is re-sent.
        #: Only for clients of protocol version 2 (None from version 3 on: their appends name the
        #: writer's previous event number and the store refuses a gap itself, so an event given up
        #: for good blocks nothing). Touched only where appends start (loop or feeder, never both).
        self._held: WriterOrder | None = WriterOrder()
        self.peer = str(writer.get_extra_info("peername"))
        #: The caller's identity and checks; None while security is off (or before HELLO).
        self.access: ConnectionAccess | None = None

    @property
    def in_flight(self) -> int:
        """Requests of this connection still running."""
        return len(self._in_flight)

    # -- read loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve frames until EOF, lost framing or :meth:`stop_reading`."""
        try:
            while not self._stopping:
                try:
                    raw = await self._reader.readexactly(HEADER_SIZE)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    header = decode_header(raw, max_frame=self._config.max_frame)
                except ProtocolError as exc:
                    # The length is garbage: the next frame cannot be found, so answer and hang up.
                    log.warning("client %s: %s; closing the connection", self.peer, exc)
                    self._send_error(int.from_bytes(raw[8:12], "big"), exc, fatal=True)
                    return
                try:
                    payload = await self._reader.readexactly(header.payload_length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if not await self._handle(header, payload):
                    return
                await self._writer.drain()
        except asyncio.CancelledError:
            pass
        finally:
            await self._finish()

    def stop_reading(self) -> None:
        """Take no new request (shutdown); running ones still get their answers."""
        self._stopping = True
        self._reader.feed_eof()

    async def _handle(self, header: FrameHeader, payload: bytes) -> bool:
        """Handle one frame; False when the connection must close."""
        rid = header.request_id
        if header.version not in SUPPORTED_VERSIONS:
            self._send_error(rid, ProtocolError(f"frame version {header.version} not supported"))
            return True
        if header.type == MessageType.HELLO:
            return await self._hello(rid, payload)
        if self._version is None:
            self._send_error(rid, ProtocolError(f"expected HELLO before message type {int(header.type)}"))
            return True
        if header.type == MessageType.GOODBYE:
            return False
        if self.access is not None:
            try:
                self.access.alive()
            except AuthenticationFailed as exc:
                # Access ends at the token's expiry: answer, then hang up (a client with a
                # token provider reconnects with a fresh token).
                log.info("client %s: %s", self.peer, exc)
                self._send_error(rid, exc, fatal=True)
                return False
        if header.type == MessageType.PING:
            self._send(MessageType.PONG, rid, payload)
            return True
        handler = self._handlers.get(header.type)
        if handler is None:
            self._send_error(rid, ProtocolError(f"unknown message type {int(header.type)}"))
            return True
        needs = MESSAGE_VERSION.get(header.type, 1)  # type: ignore[call-overload]
        if needs > self._version or header.version > self._version:
            message = f"message type {int(header.type)} (frame version {header.version}) needs protocol version "
            self._send_error(rid, ProtocolError(f"{message}{max(needs, header.version)}; negotiated {self._version}"))
            return True
        try:
            request = self._codec.decode(payload)
        except ProtocolError as exc:
            self._send_error(rid, exc)
            return True
        await self._slots.acquire()
        try:
            future = handler(self, request)
        except Exception as exc:
            self._slots.release()
            self._send_error(rid, exc, fatal=isinstance(exc, AuthenticationFailed))
            return not isinstance(exc, AuthenticationFailed)  # the token expired: hang up
        self._in_flight.add(future)
        future.add_done_callback(lambda f: self._answer(rid, f))
        return True

    async def _hello(self, rid: int, payload: bytes) -> bool:
        try:
            hello = self._codec.decode(payload)
            if not isinstance(hello, dict) or hello.get("magic") != MAGIC.decode():
                raise ProtocolError("HELLO without the XHUB magic: not an XtremeHub stream client")
            offered = hello.get("versions")
            common = [v for v in SUPPORTED_VERSIONS if isinstance(offered, list) and v in offered]
            if not common:
                raise ProtocolError(f"no common protocol version: client {offered!r:.60}, server {SUPPORTED_VERSIONS}")
            auth = hello.get("auth") or {}
            check = self._config.authenticate
            if check is not None and not check(str(auth.get("scheme", "none")), str(auth.get("token", ""))):
                raise ProtocolError("authentication refused")
            if self._config.validator is not None:
                self.access = await self._authenticate(auth)
        except (ProtocolError, SecurityError) as exc:
            log.warning("client %s: %s", self.peer, exc)
            self._send_error(rid, exc, fatal=True)
            return False
        self._version = max(common)
        if self._version >= PREVIOUS_NUMBER_VERSION:
            self._held = None
        answer = {
            "magic": MAGIC.decode(),
            "version": self._version,
            "server": f"xtremehub/{__version__}",
            "max_frame": self._config.max_frame,
            "auth": "none" if self._config.authenticate is None and self._config.validator is None else "token",
        }
        self._send(MessageType.HELLO_OK, rid, self._codec.encode(answer))
        log.debug("client %s: HELLO (%s), protocol %d", self.peer, hello.get("client"), self._version)
        return True

    async def _authenticate(self, auth: Any) -> ConnectionAccess:
        """Validate the HELLO's bearer token (in a thread: the first one may fetch the provider's keys)."""
        validator = self._config.validator
        assert validator is not None
        if not isinstance(auth, dict) or str(auth.get("scheme", "none")).lower() != "bearer":
            raise AuthenticationFailed("this server needs a bearer token (StreamManager(url, token=...))")
        token = auth.get("token")
        if not isinstance(token, str) or not token:
            raise AuthenticationFailed("this server needs a bearer token (StreamManager(url, token=...))")
        identity = await self._loop.run_in_executor(self._calls, validator.validate, token)
        purpose = auth.get("purpose")
        access = ConnectionAccess(
            identity,
            self._config.authorizer,
            purpose=purpose if isinstance(purpose, str) else None,
            cache_ttl=self._config.authz_cache_ttl,
        )
        access.alive()
        log.info("client %s: authenticated as %s", self.peer, identity.subject)
        return access

    # -- requests --------------------------------------------------------------------------
    def _append(self, request: Any) -> asyncio.Future[Any]:
        previous = None
        if isinstance(request, list) and len(request) == 6 and self._numbers_previous():
            previous = request.pop()  # (version 3) the writer's previous event number on the segment
        segment, data, writer_id, event_number, expected_offset = _fields(request, 5, "APPEND")
        if not isinstance(segment, str) or not isinstance(data, bytes):
            raise ProtocolError("APPEND: segment must be a string and data bytes")
        if self.access is not None:
            self.access.authorize(Action.WRITE, segment_resource(segment))
        if previous is not None:
            if type(writer_id) is not str or type(event_number) is not int or expected_offset is not None:
                raise ProtocolError("APPEND: a previous event number needs writer_id and event_number only")
            _batch(segment, event_number, [data], previous, "APPEND")  # checks the numbers
        call = functools.partial(
            self._append_one,
            segment,
            data,
            writer_id=writer_id,
            event_number=event_number,
            expected_offset=expected_offset,
            previous=previous,
        )
        return self._queue_append(call, None)

    def _append_batch(self, request: Any) -> asyncio.Future[Any]:
        writer_id, parts = _fields(request, 2, "APPEND_BATCH")
        if writer_id is not None and not isinstance(writer_id, str):
            raise ProtocolError("APPEND_BATCH: writer_id must be a string or nil")
        if not isinstance(parts, list) or not parts:
            raise ProtocolError("APPEND_BATCH: batches must be a non-empty array")
        batches: list[SegmentBatch] = []
        count = 0
        for part in parts:
            previous = None
            if isinstance(part, list) and len(part) == 4 and self._numbers_previous():
                segment, first, events, previous = part  # (version 3) the writer's previous number
            else:
                segment, first, events = _fields(part, 3, "APPEND_BATCH batch")
            if not isinstance(segment, str) or not isinstance(events, list) or not events:
                raise ProtocolError("APPEND_BATCH: segment must be a string and events a non-empty array")
            if not all(type(event) is bytes for event in events):
                raise ProtocolError("APPEND_BATCH: every event must be bytes")
            numbered = type(first) is int and first >= 0
            if numbered != (writer_id is not None) or (not numbered and first is not None):
                raise ProtocolError("APPEND_BATCH: writer_id (a string) and first_event_number (>= 0) go together")
            count += len(events)
            if previous is None:
                batches.append(SegmentBatch(segment, events, first))
            else:
                batches.append(_batch(segment, first, events, previous, "APPEND_BATCH"))
        if count > MAX_BATCH_EVENTS:
            raise ProtocolError(f"APPEND_BATCH: {count} events, more than the limit of {MAX_BATCH_EVENTS}")
        if self.access is not None:
            for resource in {segment_resource(batch.segment) for batch in batches}:
                self.access.authorize(Action.WRITE, resource)
        answer = functools.partial(_BatchAnswer.of, batches)
        return self._queue_append(functools.partial(self._append_batches, batches, writer_id), answer)

    def _append_one(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: Any,
        event_number: Any,
        expected_offset: Any,
        previous: int | None = None,
        timeout: float | None = None,
    ) -> Future[AppendResult]:
        """One APPEND: the store's ``append_async`` (checking ``previous``, the writer's previous event
        number, when given), held back like :meth:`_append_batches` for a version 2 client."""
        numbered = type(writer_id) is str and type(event_number) is int
        held_back = self._held
        if numbered and held_back:
            held = held_back.check([(writer_id, segment, event_number)])
            if held is not None:
                refused: Future[AppendResult] = Future()
                refused.set_exception(held)
                return refused
        try:
            if previous is not None:
                return self._store.append_async(
                    segment,
                    data,
                    writer_id=writer_id,
                    event_number=event_number,
                    timeout=timeout,
                    previous_event_number=previous,
                )
            return self._store.append_async(
                segment,
                data,
                writer_id=writer_id,
                event_number=event_number,
                expected_offset=expected_offset,
                timeout=timeout,
            )
        except BackPressure:
            if numbered and timeout != 0 and held_back is not None:
                held_back.hold([(writer_id, segment, event_number)])
            raise

    def _numbers_previous(self) -> bool:
        """Whether the negotiated version lets appends carry the writer's previous event number."""
        return self._version is not None and self._version >= PREVIOUS_NUMBER_VERSION

    def _append_batches(
        self, batches: list[SegmentBatch], writer_id: str | None, *, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        """All batches of a frame in one store call: one future per batch (a refused batch's settled).

        With ``timeout=0`` (from the event loop) back pressure raises, so that the feeder thread
        takes the frame and waits. A batch failed as a whole gives each of its events the error
        (:meth:`_BatchAnswer.of`).
        """
        held_back = self._held
        if writer_id is not None and held_back:
            held = held_back.check(_lanes(writer_id, batches))
            if held is not None:
                return _refused(len(batches), held)
        try:
            return self._store.append_runs(batches, writer_id=writer_id, timeout=timeout)
        except BackPressure as exc:
            if timeout == 0:
                raise
            if writer_id is not None and held_back is not None:
                held_back.hold(_lanes(writer_id, batches))
            return _refused(len(batches), exc)
        except Exception as exc:  # StoreClosed...: every event's outcome
            return _refused(len(batches), exc)

    def _queue_append(self, call: Callable[..., Any], wrap: _Wrap | None) -> asyncio.Future[Any]:
        """Queue ``call`` (a store append taking ``timeout``) in arrival order; the loop future gets its result."""
        done: asyncio.Future[Any] = self._loop.create_future()
        with self._feed_lock:
            if not self._feed_scheduled and self._queue_now(done, call, wrap):
                return done  # the common case: queued without a thread hand-off
            self._feed_queue.append((done, call, wrap))
            if self._feed_scheduled:
                return done
            self._feed_scheduled = True
        self._appender.submit(self._feed)
        return done

    def _queue_now(self, done: asyncio.Future[Any], call: Callable[..., Any], wrap: _Wrap | None) -> bool:
        """Queue an append in the store from the event loop when that cannot block.

        False under back pressure (the budgets are exhausted): the append then goes through the
        feeder thread, which may wait; so do the appends after it while it runs (their order
        is kept). Called under ``_feed_lock``.
        """
        try:
            self._start(done, call, wrap, timeout=0)
        except BackPressure:
            return False
        return True

    def _start(self, done: asyncio.Future[Any], call: Callable[..., Any], wrap: _Wrap | None, **kw: Any) -> None:
        """Start a store append and route its outcome to ``done``; with ``timeout=0``, ``BackPressure`` is raised.

        ``call`` returns a future, or (APPEND_BATCH) a list of them: ``done`` is settled once all
        are, from ``wrap(list)`` (counted down here: no future chained to them).
        """
        try:
            started: Future[Any] | list[Future[Any]] = call(**kw)
        except Exception as exc:
            if isinstance(exc, BackPressure) and kw.get("timeout") == 0:
                raise  # from the event loop: the feeder thread takes it and may wait
            started = Future()
            started.set_exception(exc)
        if not isinstance(started, list):
            started.add_done_callback(functools.partial(self._completed, done, wrap))
        elif len(started) == 1:
            started[0].add_done_callback(lambda _: self._completed(done, wrap, started))
        else:
            left = [len(started)]
            lock = threading.Lock()

            def one_done(_: Future[Any]) -> None:
                with lock:
                    left[0] -= 1
                    if left[0]:
                        return
                self._completed(done, wrap, started)

            for future in started:
                future.add_done_callback(one_done)

    def _feed(self) -> None:
        """On the server's one feeder thread: pass queued appends to the store in arrival order.

        A store blocking under back pressure blocks appends only, not the event loop; appends
        queued while the feeder runs are taken in the same pass (one thread wake-up for many).
        """
        while True:
            with self._feed_lock:
                batch, self._feed_queue = self._feed_queue, []
                if not batch:
                    self._feed_scheduled = False
                    return
            for done, call, wrap in batch:
                self._start(done, call, wrap)

    def _completed(self, done: asyncio.Future[Any], wrap: _Wrap | None, future: _Started) -> None:
        """From the store's commit thread: hand a finished append to the loop (one wake-up per commit)."""
        self._handoff.call(_settle, done, future, wrap)

    def _read(self, request: Any) -> asyncio.Future[Any]:
        segment, offset, max_length, wait = _fields(request, 4, "READ")
        if not isinstance(segment, str) or not isinstance(offset, int) or not isinstance(max_length, int):
            raise ProtocolError("READ: segment must be a string, offset and max_length integers")
        max_length = min(max_length, self._config.max_frame // 2)
        wait = min(float(wait or 0.0), self._config.max_read_wait)
        if self.access is not None:
            self.access.authorize(Action.READ, segment_resource(segment))
        if wait <= 0:
            return self._loop.run_in_executor(self._calls, self._read_now, segment, offset, max_length)
        return asyncio.ensure_future(self._long_poll(segment, offset, max_length, wait))

    def _read_now(self, segment: str, offset: int, max_length: int, wait: float = 0.0) -> ReadResult:
        """A store read whose data leaves only while the token is still valid."""
        result = self._store.read(segment, offset, max_length, wait=wait)
        if self.access is not None:
            self.access.alive()
        return result

    async def _long_poll(self, segment: str, offset: int, max_length: int, wait: float) -> ReadResult:
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            step = max(0.0, min(left, _WAIT_SLICE))
            read = functools.partial(self._read_now, segment, offset, max_length, step)
            result = await self._loop.run_in_executor(self._waits, read)
            if result.data or result.end_of_segment or left <= _WAIT_SLICE or self._stopping:
                return result

    def _call(self, request: Any) -> asyncio.Future[Any]:
        target, method, args, kwargs = _fields(request, 4, "CALL")
        bound = self._dispatcher.check(target, method, args, kwargs)
        access = self.access
        if access is None:
            return self._loop.run_in_executor(self._calls, lambda: bound(*args, **kwargs))
        arguments = self._dispatcher.arguments(target, method, args, kwargs)

        def authorized_call() -> Any:
            # In the call thread: a transaction's stream is looked up in the controller.
            access.authorize_all(request_access(target, method, arguments, self._txn_stream))
            return bound(*args, **kwargs)

        return self._loop.run_in_executor(self._calls, authorized_call)

    def _txn_stream(self, txn_id: str) -> str:
        info = self._dispatcher.call(CONTROLLER_TARGET, "get_transaction", [txn_id], {})
        return f"{info.scope}/{info.stream}"

    _handlers: ClassVar[dict[MessageType | int, Callable[[ClientConnection, Any], asyncio.Future[Any]]]] = {
        MessageType.APPEND: _append,
        MessageType.APPEND_BATCH: _append_batch,
        MessageType.READ: _read,
        MessageType.CALL: _call,
    }

    # -- answers ---------------------------------------------------------------------------
    def _answer(self, rid: int, future: asyncio.Future[Any]) -> None:
        self._in_flight.discard(future)
        self._slots.release()
        if future.cancelled():
            self._send_error(rid, ProtocolError("request cancelled by server shutdown"))
            return
        exc = future.exception()
        if exc is not None:
            expired = isinstance(exc, AuthenticationFailed)
            self._send_error(rid, exc, fatal=expired)
            if expired and not self._stopping:
                log.info("client %s: %s", self.peer, exc)
                self.stop_reading()  # the token expired during the request: hang up after the answers
            return
        result = future.result()
        if isinstance(result, AppendResult):
            self._send(MessageType.APPENDED, rid, self._codec.encode([result.offset, result.length, result.duplicate]))
        elif isinstance(result, _BatchAnswer):
            self._send(MessageType.APPENDED_BATCH, rid, self._codec.encode(result.payload()))
        elif isinstance(result, ReadResult):
            self._send(MessageType.DATA, rid, self._codec.encode([result.offset, result.data, result.end_of_segment]))
        else:
            try:
                self._send(MessageType.RESULT, rid, self._codec.encode(result))
            except TypeError as err:
                log.exception("cannot encode the result of request %d", rid)
                self._send_error(rid, err)

    def _send(self, msg_type: MessageType, rid: int, payload: bytes) -> None:
        # Answers produced in one loop turn (a group commit resolves many appends at once) leave
        # in one write: one system call and, with TCP_NODELAY, few packets.
        if self._writer.is_closing():
            return
        self._outbox.append(encode_frame(msg_type, rid, payload))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._outbox and not self._writer.is_closing():
            self._writer.writelines(self._outbox)
        self._outbox.clear()

    def _send_error(self, rid: int, exc: BaseException, *, fatal: bool = False) -> None:
        if not isinstance(exc, ProtocolError):
            log.debug("request %d of %s failed: %r", rid, self.peer, exc)
        body = encode_error(exc)
        self._send(MessageType.ERROR, rid, self._codec.encode({**body, "fatal": fatal}))

    async def _finish(self) -> None:
        """Let running requests answer, then close the socket."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self._config.shutdown_grace)
        try:
            if self._stopping and not self._writer.is_closing():
                self._send(MessageType.GOODBYE, 0, b"")
            self._flush()
            self._writer.close()
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def _fields(request: Any, count: int, what: str) -> list[Any]:
    if not isinstance(request, list) or len(request) != count:
        raise ProtocolError(f"{what}: payload must be an array of {count} fields")
    return request


def _batch(segment: str, first: Any, events: list[bytes], previous: Any, what: str) -> SegmentBatch:
    """A numbered batch naming the writer's previous event number (checked: ``0 <= previous < first``)."""
    if type(previous) is not int or type(first) is not int or not 0 <= previous < first:
        raise ProtocolError(f"{what}: previous event number {previous!r} must be an integer in [0, {first!r})")
    return SegmentBatch(segment, events, first, previous)


def _lanes(writer_id: str, batches: list[SegmentBatch]) -> list[Lane]:
    """The numbered batches' places in their writer's order (:mod:`xtremehub.streams.writerorder`)."""
    return [(writer_id, b.segment, b.first_event_number) for b in batches if b.first_event_number is not None]


def _settle(done: asyncio.Future[Any], future: _Started, wrap: _Wrap | None) -> None:
    """On the loop: resolve a request's loop future from its settled store append."""
    if done.done():
        return
    if wrap is not None:
        done.set_result(wrap(future))
        return
    assert not isinstance(future, list)
    exc = future.exception()
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(future.result())


def _refused(count: int, exc: BaseException) -> list[Future[RunOutcome]]:
    """``count`` batches refused as a whole with ``exc`` (:meth:`_BatchAnswer.of` gives each event the error)."""
    refused: list[Future[RunOutcome]] = []
    for _ in range(count):
        future: Future[RunOutcome] = Future()
        future.set_exception(exc)
        refused.append(future)
    return refused


def _run(future: Future[RunOutcome], batch: SegmentBatch) -> RunOutcome:
    """A batch's outcomes; when the batch failed as a whole, its error for each event."""
    exc = future.exception()
    if exc is None:
        return future.result()
    error = exc if isinstance(exc, Exception) else ProtocolError(f"append interrupted: {exc!r}")
    return RunOutcome.refused(batch.segment, [len(e) for e in batch.events], error)
