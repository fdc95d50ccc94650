"""Through the server: a writer's append refused for back pressure is not overtaken, whatever the connection.

The server's per-connection hold and the client's record (:mod:`xtremehub.streams.writerorder`)
keep a writer's appends in order on one connection and across its reconnects, but both are
memory of one connection. The store is the one place that knows what is stored: an append
naming the writer's previous event number on the segment (protocol version 3) is refused with
``EventNumberGap`` while the store holds a lower one, on any connection, after any restart.
These tests use the real embedded store behind a real server on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from test_server_held_back import Relay

from xtremehub.errors import BackPressure, EventNumberGap, ProtocolError
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.writer import EventStreamWriter, WriterConfig
from xtremehub.streams.remote.store import RemoteSegmentStore
from xtremehub.streams.segmentstore.contract import SegmentBatch
from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.streams.wire import MessageType, WireCodec, encode_frame
from xtremehub.streams.writerorder import WriterOrder


class Pressure:
    """Makes the real store refuse its next ``refuse`` appends for back pressure (after the server's wait)."""

    def __init__(self, store: Any) -> None:
        self.refuse = 0
        real_runs, real_async = store.append_runs, store.append_async

        def append_runs(batches: Any, *, writer_id: Any = None, timeout: Any = None) -> Any:
            self._pressure(timeout)
            return real_runs(batches, writer_id=writer_id, timeout=timeout)

        def append_async(segment: str, data: bytes, *, timeout: Any = None, **kw: Any) -> Any:
            self._pressure(timeout)
            return real_async(segment, data, timeout=timeout, **kw)

        store.append_runs, store.append_async = append_runs, append_async

    def _pressure(self, timeout: float | None) -> None:
        if self.refuse:
            if timeout != 0:  # from the event loop the server retries on its feeder thread
                self.refuse -= 1
            raise BackPressure("test: budget exhausted")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[StreamManager, Pressure, StreamServer]]:
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    pressure = Pressure(embedded.store)
    try:
        with serve_background(embedded.store, embedded.controller, ServerConfig(shutdown_grace=5.0)) as server:
            yield embedded, pressure, server
    finally:
        embedded.close()


def _send(client: RemoteSegmentStore, events: list[bytes], first: int, previous: int | None) -> Future[RunOutcome]:
    return client.append_runs([SegmentBatch("s", events, first, previous)], writer_id="w")[0]


def _error(answer: Future[RunOutcome]) -> BaseException | None:
    """The refusal of every event of a batch (or of the request), None when stored."""
    exc = answer.exception(10)
    if exc is not None:
        return exc
    run = answer.result()
    if run.ok:
        return None
    assert len(run.errors) == len(run.offsets), run.errors
    return next(iter(run.errors.values()))


def test_a_batch_on_another_connection_does_not_overtake_a_refused_one(
    served: tuple[StreamManager, Pressure, StreamServer],
) -> None:
    """The refused batch's connection is gone (with its hold); the later batch comes on a new one."""
    embedded, pressure, server = served
    first, second, third = (RemoteSegmentStore(server.url) for _ in range(3))
    try:
        assert second.connection.server_info["version"] == 3
        first.create_segment("s")
        pressure.refuse = 1
        assert isinstance(_error(_send(first, [b"a0", b"a1"], 0, None)), BackPressure)
        assert isinstance(_error(_send(second, [b"b2", b"b3"], 2, 1)), EventNumberGap)
        lone = third.append_runs([SegmentBatch("s", [b"c4"], 4, 3)], writer_id="w")[0]  # the plain APPEND
        assert isinstance(_error(lone), EventNumberGap)
        assert embedded.store.info("s").length == 0
        # Re-sent in order, each is stored once.
        assert _error(_send(second, [b"a0", b"a1"], 0, None)) is None
        assert _error(_send(second, [b"b2", b"b3"], 2, 1)) is None
        assert _error(second.append_runs([SegmentBatch("s", [b"c4"], 4, 3)], writer_id="w")[0]) is None
        assert embedded.store.read("s", 0, 100).data == b"a0a1b2b3c4"
    finally:
        for client in (first, second, third):
            client.close()


def test_a_writer_that_forgot_the_refusal_loses_nothing_across_a_reconnect(
    served: tuple[StreamManager, Pressure, StreamServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """x2 left before x1's refusal came back and is re-sent on a new connection after a cut.

    The client's record of refusals is switched off (as in a client that lost it, or an older
    one): only the store stands between x2 and x1's re-send being taken for a duplicate.
    """
    monkeypatch.setattr(WriterOrder, "check", lambda self, lanes: None)
    monkeypatch.setattr(WriterOrder, "hold", lambda self, lanes: None)
    monkeypatch.setattr(WriterOrder, "withdraw", lambda self, pending: [])
    embedded, pressure, server = served
    embedded.create_scope("lab")
    embedded.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(1))
    relay = Relay(server.url)
    manager = StreamManager(relay.url)
    try:
        config = WriterConfig(max_in_flight=16, batch_events=1)  # a full lane sends while its batch is in flight
        writer = EventStreamWriter(manager.controller, manager.store, "lab", "s", config=config)
        relay.hold("down")
        pressure.refuse = 1
        futures = [writer.write_event(b"x1", routing_key="k")]
        deadline = time.monotonic() + 10
        while pressure.refuse:  # x1 reached the store and was refused; its answer waits in the relay
            assert time.monotonic() < deadline
            time.sleep(0.01)
        relay.hold("up")
        futures.append(writer.write_event(b"x2", routing_key="k"))  # stays in the relay
        relay.release("down")
        time.sleep(0.2)  # the writer learns of x1's refusal; its re-send waits for x2's answer
        relay.cut()  # x2 is re-sent on the new connection, where the server holds nothing back
        writer.close()
        for future in futures:
            future.result(timeout=10)
        (segment,) = embedded.get_stream("lab", "s").active_segments
        data = embedded.store.read(segment.name, 0, 1 << 20).data
        stored = [data.count(b"x1"), data.count(b"x2")]
        assert stored == [1, 1], f"an acknowledged event was lost or stored twice: {stored}"
        assert data.index(b"x1") < data.index(b"x2")
    finally:
        manager.close()
        relay.close()


def test_version_2_clients_are_served_and_cannot_send_the_field(
    served: tuple[StreamManager, Pressure, StreamServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client negotiating version 2 sends 3-field batches (unchecked, as before); a 4th field is refused."""
    embedded, _, server = served
    monkeypatch.setattr("xtremehub.streams.remote.connection.SUPPORTED_VERSIONS", (2, 1))
    client = RemoteSegmentStore(server.url)
    try:
        assert client.connection.server_info["version"] == 2
        client.create_segment("s")
        sent: list[bytes] = []
        real = client.connection.request

        def spy(msg_type: MessageType, payload: bytes, *args: Any, **kw: Any) -> Future[Any]:
            sent.append(payload)
            return real(msg_type, payload, *args, **kw)

        monkeypatch.setattr(client.connection, "request", spy)
        assert _error(_send(client, [b"a0", b"a1"], 0, None)) is None
        assert _error(_send(client, [b"b5", b"b6"], 5, 4)) is None  # unchecked: the field is not sent
        codec = WireCodec.default()
        assert [len(part) for part in codec.decode(sent[-1])[1]] == [3]
        assert embedded.store.read("s", 0, 100).data == b"a0a1b5b6"
        # A 4th field on a version 2 connection is a malformed frame, refused whole.
        payload = codec.encode(["w", [["s", 7, [b"c7"], 6]]])
        bad = real(MessageType.APPEND_BATCH, payload, lambda t, p: p, retriable=False)
        with pytest.raises(ProtocolError, match="array of 3 fields"):
            bad.result(10)
        assert encode_frame(MessageType.APPEND_BATCH, 1, b"")[4] == 2, "the frame keeps its message's version"
    finally:
        client.close()
