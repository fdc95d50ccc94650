"""The stream server over real TCP: handshake, typed errors, pipelining, malformed frames, shutdown."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from server_test_store import DictSegmentStore

from xtremehub.errors import (
    BackPressure,
    ConditionalCheckFailed,
    EventTooLarge,
    ProtocolError,
    SegmentNotFound,
    SegmentSealed,
    ServerUnavailable,
)
from xtremehub.streams.remote import ClientConfig, RemoteSegmentStore
from xtremehub.streams.segmentstore.contract import AppendResult, SegmentBatch
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.streams.wire import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    MAX_BATCH_EVENTS,
    MessageType,
    WireCodec,
    decode_header,
    encode_frame,
)

CODEC = WireCodec.default()
HELLO = CODEC.encode({"magic": "XHUB", "versions": [1], "client": "raw-test", "auth": {"scheme": "none", "token": ""}})
HELLO_V2 = CODEC.encode({"magic": "XHUB", "versions": [2, 1], "client": "raw-test", "auth": {}})


class RawClient:
    """A bare socket speaking frames by hand, to send what a real client never would."""

    def __init__(self, server: StreamServer, *, hello: bool = True, hello_payload: bytes = HELLO) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        if hello:
            self.send(MessageType.HELLO, 1, hello_payload)
            answer = self.recv()
            assert answer[0] == MessageType.HELLO_OK
            assert isinstance(answer[2], dict)
            self.version = answer[2]["version"]

    def send(self, msg_type: int, rid: int, payload: bytes, *, version: int = 1) -> None:
        self.sock.sendall(struct.pack(">IBBHI", 8 + len(payload), version, msg_type, 0, rid) + payload)

    def recv(self) -> tuple[int, int, object]:
        raw = self._exactly(HEADER_SIZE)
        header = decode_header(raw)
        payload = self._exactly(header.payload_length)
        return header.type, header.request_id, CODEC.decode(payload) if payload else None

    def _exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def ping_works(self) -> bool:
        self.send(MessageType.PING, 99, b"")
        return self.recv()[:2] == (MessageType.PONG, 99)


@pytest.fixture
def raw(dict_server: StreamServer) -> Iterator[Callable[..., RawClient]]:
    """RawClient factory for the test's server; closes every socket afterwards."""
    made: list[RawClient] = []

    def make(*, hello: bool = True, hello_payload: bytes = HELLO) -> RawClient:
        made.append(RawClient(dict_server, hello=hello, hello_payload=hello_payload))
        return made[-1]

    yield make
    for client in made:
        client.sock.close()


def _error(answer: tuple[int, int, object]) -> dict[str, object]:
    assert answer[0] == MessageType.ERROR
    assert isinstance(answer[2], dict)
    return answer[2]


def test_append_read_and_typed_errors(dict_server: StreamServer) -> None:
    store = RemoteSegmentStore(dict_server.url)
    try:
        assert store.create_segment("s/a") is True
        assert store.create_segment("s/a") is False
        first = store.append("s/a", b"hello", writer_id="w", event_number=1)
        second = store.append("s/a", b" world", writer_id="w", event_number=2)
        assert (first.offset, second.offset, second.length) == (0, 5, 6)
        assert store.append("s/a", b"hello", writer_id="w", event_number=2).duplicate
        assert store.read("s/a", 0, 100).data == b"hello world"
        assert store.info("s/a").length == 11
        assert store.writer_event_number("s/a", "w") == 2
        assert store.list_segments("s/") == ["s/a"]
        with pytest.raises(SegmentNotFound, match="nope"):
            store.append("s/nope", b"x")
        with pytest.raises(SegmentNotFound):
            store.read("s/nope", 0, 10)
        with pytest.raises(ConditionalCheckFailed):
            store.append("s/a", b"x", expected_offset=3)
        store.seal("s/a")
        with pytest.raises(SegmentSealed):
            store.append("s/a", b"x")
        assert store.read("s/a", 11, 10).end_of_segment
        assert store.stats().lts_available
    finally:
        store.close()


def test_pipelined_appends_from_many_threads_on_one_connection(dict_server: StreamServer) -> None:
    store = RemoteSegmentStore(dict_server.url)
    store.create_segment("s/p")
    futures = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        for i in range(200):
            f = store.append_async("s/p", f"{w}:{i};".encode(), writer_id=f"w{w}", event_number=i + 1)
            with lock:
                futures.append(f)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    results = [f.result(10) for f in futures]
    data = store.read("s/p", 0, 1 << 20).data.decode()
    store.close()
    assert len(results) == 1600
    assert not any(r.duplicate for r in results)
    events = data.rstrip(";").split(";")
    assert sorted(events) == sorted(f"{w}:{i}" for w in range(8) for i in range(200))
    for w in range(8):  # one writer's events stay in its order
        mine = [int(e.split(":")[1]) for e in events if e.startswith(f"{w}:")]
        assert mine == sorted(mine)


def test_long_poll_read_does_not_block_other_requests(dict_server: StreamServer) -> None:
    reader = RemoteSegmentStore(dict_server.url)
    writer = RemoteSegmentStore(dict_server.url)
    reader.create_segment("s/tail")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(reader.read, "s/tail", 0, 100, wait=20.0)
        # The same connection serves other requests while the tail read waits.
        for _ in range(5):
            assert reader.info("s/tail").length == 0
        assert not waiting.done()
        writer.append("s/tail", b"news")
        assert waiting.result(10).data == b"news"
    reader.close()
    writer.close()


def test_many_concurrent_clients(dict_server: StreamServer) -> None:
    def client(n: int) -> int:
        store = RemoteSegmentStore(dict_server.url)
        try:
            store.create_segment(f"c/{n}")
            for i in range(50):
                store.append(f"c/{n}", b"x" * (i + 1), writer_id=f"w{n}", event_number=i + 1)
            return store.info(f"c/{n}").length
        finally:
            store.close()

    with ThreadPoolExecutor(32) as pool:
        lengths = list(pool.map(client, range(64)))
    assert lengths == [sum(range(1, 51))] * 64


def test_garbage_bytes_get_an_error_and_the_server_survives(
    dict_server: StreamServer, raw: Callable[..., RawClient]
) -> None:
    conn = raw(hello=False)
    conn.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    err = _error(conn.recv())
    assert err["error"] == "ProtocolError"
    assert "over the limit" in str(err["message"])
    assert err["fatal"] is True
    assert conn.closed_by_server()
    store = RemoteSegmentStore(dict_server.url)
    assert store.create_segment("after/garbage")
    store.close()


def test_oversize_and_short_lengths_close_only_that_connection(
    dict_server: StreamServer, raw: Callable[..., RawClient]
) -> None:
    other = raw()
    conn = raw()
    conn.sock.sendall(struct.pack(">IBBHI", 1 << 30, 1, MessageType.APPEND, 0, 5))
    err = _error(conn.recv())
    assert "over the limit" in str(err["message"])
    assert conn.closed_by_server()
    short = raw()
    short.sock.sendall(struct.pack(">I", 2) + b"\x00" * 8)
    assert "shorter" in str(_error(short.recv())["message"])
    assert other.ping_works()


def test_frame_level_errors_keep_the_connection(dict_server: StreamServer, raw: Callable[..., RawClient]) -> None:
    conn = raw(hello=False)
    conn.send(MessageType.PING, 3, b"")
    assert "expected HELLO" in str(_error(conn.recv())["message"])
    conn.send(MessageType.HELLO, 1, HELLO)
    assert conn.recv()[0] == MessageType.HELLO_OK
    conn.send(0x55, 4, b"")
    answer = conn.recv()
    assert answer[1] == 4
    assert "unknown message type 85" in str(_error(answer)["message"])
    conn.send(MessageType.APPEND, 5, b"\xc1\xc1")
    assert "bad payload" in str(_error(conn.recv())["message"])
    conn.send(MessageType.APPEND, 6, CODEC.encode(["only", "two"]))
    assert "array of 5 fields" in str(_error(conn.recv())["message"])
    conn.send(MessageType.APPEND, 7, CODEC.encode([1, 2, 3, 4, 5]))
    assert "segment must be a string" in str(_error(conn.recv())["message"])
    conn.send(MessageType.CALL, 8, CODEC.encode(["store", "close", [], {}]))
    assert "no remote method 'close'" in str(_error(conn.recv())["message"])
    conn.send(MessageType.CALL, 9, CODEC.encode(["store", "info", [1, 2, 3], {}]))
    assert "store.info" in str(_error(conn.recv())["message"])
    conn.sock.sendall(struct.pack(">IBBHI", 8, 7, MessageType.PING, 0, 10))
    assert "version 7" in str(_error(conn.recv())["message"])
    assert conn.ping_works()


def test_bad_hello_is_refused(dict_server: StreamServer, raw: Callable[..., RawClient]) -> None:
    conn = raw(hello=False)
    conn.send(MessageType.HELLO, 1, CODEC.encode({"magic": "XHUB", "versions": [99]}))
    assert "no common protocol version" in str(_error(conn.recv())["message"])
    assert conn.closed_by_server()
    conn = raw(hello=False)
    conn.send(MessageType.HELLO, 1, CODEC.encode({"versions": [1]}))
    assert "magic" in str(_error(conn.recv())["message"])


def test_authentication_hook(dict_store: Any) -> None:
    config = ServerConfig(authenticate=lambda scheme, token: scheme == "token" and token == "s3cret")
    with serve_background(dict_store, config=config) as server:
        with pytest.raises(ProtocolError, match="authentication refused"):
            RemoteSegmentStore(server.url)
        store = RemoteSegmentStore(server.url, ClientConfig(auth_scheme="token", auth_token="s3cret"))
        assert store.create_segment("auth/ok")
        assert store.connection.server_info["auth"] == "token"
        store.close()


def test_graceful_shutdown_answers_in_flight_requests(dict_store: Any) -> None:
    pool = ThreadPoolExecutor(2)
    with serve_background(dict_store, config=ServerConfig(shutdown_grace=5.0)) as server:
        store = RemoteSegmentStore(server.url, ClientConfig(reconnect_timeout=0.5))
        store.create_segment("g/tail")
        waiting = pool.submit(store.read, "g/tail", 0, 100, wait=30.0)
        while not server.busy():
            time.sleep(0.01)
    # Shutdown answered the 30 s long-poll read (empty) instead of cutting it off or waiting 30 s.
    result = waiting.result(10)
    pool.shutdown()
    assert result.data == b""
    assert result.segment == "g/tail"
    with pytest.raises(ServerUnavailable):
        store.info("g/tail")
    store.close()
    assert not dict_store.closed  # the caller owns the store


def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServerUnavailable, match="cannot connect"):
        RemoteSegmentStore(f"tcp://127.0.0.1:{port}")
    with pytest.raises(ValueError, match="tcp://host:port"):
        RemoteSegmentStore("http://127.0.0.1:1")


def test_raw_frames_from_the_real_encoder(dict_server: StreamServer, raw: Callable[..., RawClient]) -> None:
    conn = raw()
    conn.sock.sendall(encode_frame(MessageType.CALL, 11, CODEC.encode(["store", "create_segment", ["r/x"], {}])))
    assert conn.recv() == (MessageType.RESULT, 11, True)


class BlockingAppends(DictSegmentStore):
    """A store under back pressure: ``append_async`` blocks until released (``timeout=0``: raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.refused_at_once = 0

    def append_async(self, segment, data, *, timeout=None, **kwargs):  # type: ignore[no-untyped-def]
        if timeout == 0 and not self.release.is_set():
            self.refused_at_once += 1
            raise BackPressure(f"segment {segment!r}: budgets exhausted")
        self.release.wait(30)
        return super().append_async(segment, data, **kwargs)


def test_a_store_blocking_appends_does_not_block_other_requests() -> None:
    store = BlockingAppends()
    store.create_segment("bp/s")
    with serve_background(store) as server:
        client = RemoteSegmentStore(server.url)
        pending = client.append_async("bp/s", b"later", writer_id="w", event_number=1)
        queued = client.append_async("bp/s", b"-still", writer_id="w", event_number=2)
        # Reads and calls are still answered while the appends are held up by back pressure.
        assert client.info("bp/s").length == 0
        assert client.read("bp/s", 0, 10).data == b""
        assert not pending.done()
        assert not queued.done()
        # The event loop tried the first append without blocking, then handed it to the feeder
        # thread; the second queued behind it (in order) without being tried on the loop.
        assert store.refused_at_once == 1
        store.release.set()
        assert pending.result(10).offset == 0
        assert queued.result(10).offset == len(b"later")
        assert client.read("bp/s", 0, 20).data == b"later-still"
        # Once the feeder is idle, appends are queued from the loop again.
        assert client.append_async("bp/s", b"!", writer_id="w", event_number=3).result(10).offset == 11
        assert store.refused_at_once == 1
        client.close()


# -- APPEND_BATCH (protocol version 2) -------------------------------------------------------
def test_append_batch_on_the_wire(
    dict_server: StreamServer, dict_store: DictSegmentStore, raw: Callable[..., RawClient]
) -> None:
    conn = raw(hello_payload=HELLO_V2)
    assert conn.version == 2
    for name in ("s/b", "s/c"):
        dict_store.create_segment(name)
    batch = CODEC.encode(["w", [["s/b", 1, [b"a", b"bb", b"ccc"]], ["s/c", 4, [b"d"]], ["s/b", 5, [b"e"]]]])
    conn.send(MessageType.APPEND_BATCH, 5, batch, version=2)
    assert conn.recv() == (MessageType.APPENDED_BATCH, 5, [[[0, 1, 3], [], {}], [[0], [], {}], [[6], [], {}]])
    conn.send(MessageType.APPEND_BATCH, 6, batch, version=2)  # a retry: every event is a duplicate
    answer = conn.recv()
    assert answer[:2] == (MessageType.APPENDED_BATCH, 6)
    assert [part[1:] for part in answer[2]] == [[[0, 1, 2], {}], [[0], {}], [[0], {}]]  # type: ignore[union-attr]
    assert bytes(dict_store.data["s/b"]) == b"abbccce"
    assert bytes(dict_store.data["s/c"]) == b"d"
    dict_store.seal("s/b")
    conn.send(MessageType.APPEND_BATCH, 7, CODEC.encode([None, [["s/b", None, [b"x", b"y"]]]]), version=2)
    kind, rid, body = conn.recv()
    assert (kind, rid) == (MessageType.APPENDED_BATCH, 7)
    ((offsets, duplicates, errors),) = body  # type: ignore[misc]
    assert (offsets, duplicates) == ([-1, -1], [])
    assert [errors[i]["error"] for i in (0, 1)] == ["SegmentSealed", "SegmentSealed"]


def test_a_lone_event_is_one_append_answered_as_its_run(
    dict_server: StreamServer, dict_store: DictSegmentStore
) -> None:
    """``append_runs`` of one event: a plain APPEND whose answer, or refusal, is the batch's run."""
    client = RemoteSegmentStore(dict_server.url)
    try:
        client.create_segment("s/l")
        (stored,) = client.append_runs([SegmentBatch("s/l", [b"abc"], 3)], writer_id="w")
        run = stored.result(10)
        assert (list(run.offsets), list(run.lengths), run.ok, list(run.duplicates)) == ([0], [3], True, [])
        (again,) = client.append_runs([SegmentBatch("s/l", [b"abc"], 3)], writer_id="w")
        assert list(again.result(10).duplicates) == [0]  # a re-send is recognised, not stored twice
        client.seal("s/l")
        (sealed,) = client.append_runs([SegmentBatch("s/l", [b"d"], 4)], writer_id="w")
        assert isinstance(sealed.result(10).error(0), SegmentSealed)  # the event's outcome, not the future's
        (large,) = client.append_runs([SegmentBatch("s/l", [bytes(DEFAULT_MAX_FRAME)], 5)], writer_id="w")
        assert isinstance(large.result(10).error(0), EventTooLarge)  # refused before sending
        assert bytes(dict_store.data["s/l"]) == b"abc"
    finally:
        client.close()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (CODEC.encode(["w", [["s/b", 1, [b"a"]]], 3]), "array of 2 fields"),
        (CODEC.encode([7, [["s/b", 1, [b"a"]]]]), "writer_id must be a string"),
        (CODEC.encode(["w", []]), "batches must be a non-empty array"),
        (CODEC.encode(["w", [["s/b", 1]]]), "array of 3 fields"),
        (CODEC.encode(["w", [["s/b", 1, b"not a list"]]]), "non-empty array"),
        (CODEC.encode(["w", [["s/b", 1, []]]]), "non-empty array"),
        (CODEC.encode(["w", [[7, 1, [b"a"]]]]), "segment must be a string"),
        (CODEC.encode(["w", [["s/b", 1, [b"a", "text"]]]]), "must be bytes"),
        (CODEC.encode(["w", [["s/b", None, [b"a"]]]]), "go together"),
        (CODEC.encode([None, [["s/b", 3, [b"a"]]]]), "go together"),
        (CODEC.encode(["w", [["s/b", -1, [b"a"]]]]), "go together"),
        (CODEC.encode(["w", [["s/b", 1, [b""] * (MAX_BATCH_EVENTS // 2)]] * 3]), "more than the limit"),
        (b"\xc1\xc1", "bad payload"),
    ],
)
def test_malformed_append_batch_gets_an_error_and_the_connection_survives(
    dict_server: StreamServer,
    dict_store: DictSegmentStore,
    raw: Callable[..., RawClient],
    payload: bytes,
    message: str,
) -> None:
    dict_store.create_segment("s/b")
    conn = raw(hello_payload=HELLO_V2)
    conn.send(MessageType.APPEND_BATCH, 9, payload, version=2)
    kind, rid, body = conn.recv()
    assert (kind, rid) == (MessageType.ERROR, 9)
    assert isinstance(body, dict)
    assert body["error"] == "ProtocolError"
    assert message in str(body["message"])
    assert body["fatal"] is False
    assert conn.ping_works()
    assert dict_store.data["s/b"] == bytearray()  # nothing was written


def test_append_batch_needs_protocol_version_2(dict_server: StreamServer, raw: Callable[..., RawClient]) -> None:
    conn = raw()  # offers version 1 only, like an older client
    assert conn.version == 1
    for version in (1, 2):
        conn.send(MessageType.APPEND_BATCH, 3, CODEC.encode([None, [["s/b", None, [b"a"]]]]), version=version)
        body = _error(conn.recv())
        assert "needs protocol version 2; negotiated 1" in str(body["message"])
    assert conn.ping_works()


def test_version_2_client_falls_back_to_append_on_a_version_1_server(
    dict_server: StreamServer, dict_store: DictSegmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("xtremehub.streams.server._connection.SUPPORTED_VERSIONS", (1,))
    store = RemoteSegmentStore(dict_server.url)
    try:
        assert store.connection.server_info["version"] == 1
        store.create_segment("s/old")
        outcomes = store.append_many("s/old", [b"ab", b"c"], writer_id="w", first_event_number=1).result(timeout=30)
        assert outcomes == [AppendResult("s/old", 0, 2), AppendResult("s/old", 2, 1)]
        store.seal("s/old")
        refused = store.append_many("s/old", [b"d"], writer_id="w", first_event_number=3).result(timeout=30)
        assert isinstance(refused[0], SegmentSealed)
    finally:
        store.close()


def test_append_batch_under_back_pressure_waits_in_the_feeder_in_order() -> None:
    store = BlockingAppends()
    store.create_segment("bp/b")
    with serve_background(store) as server:
        client = RemoteSegmentStore(server.url)
        first = client.append_many("bp/b", [b"a", b"bb"], writer_id="w", first_event_number=1)
        second = client.append_many("bp/b", [b"c"], writer_id="w", first_event_number=3)
        assert client.info("bp/b").length == 0  # other requests are answered meanwhile
        assert not first.done()
        assert not second.done()
        assert store.refused_at_once == 1  # tried once from the loop without blocking, then queued
        store.release.set()
        assert [o.offset for o in first.result(10)] == [0, 1]  # type: ignore[union-attr]
        assert [o.offset for o in second.result(10)] == [3]  # type: ignore[union-attr]
        assert client.read("bp/b", 0, 10).data == b"abbc"
        client.close()
