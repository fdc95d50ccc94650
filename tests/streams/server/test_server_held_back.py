"""A writer's appends refused for back pressure are not overtaken by its later ones on the connection.

A writer may have several appends to one segment in flight. If the store refused the first for
back pressure (nothing written) and then stored the second, re-sending the first would be
taken for a duplicate (its numbers are below the writer's last stored one) and lost; so the
server refuses the later ones too until the refused one is re-sent.

These holds serve clients of protocol version 2 (the tests negotiate it): from version 3 on an
append names its writer's previous event number and the store refuses a gap itself
(``test_server_event_gap.py``), so neither end holds anything back
(:func:`test_version_3_connections_hold_nothing_back`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from server_test_store import DictSegmentStore

from xtremehub.errors import BackPressure
from xtremehub.streams.remote.connection import ClientConfig
from xtremehub.streams.remote.store import RemoteSegmentStore
from xtremehub.streams.segmentstore.contract import SegmentBatch
from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.testing.tcprelay import TcpRelay, Way


class PressuredStore(DictSegmentStore):
    """Refuses the next ``refuse`` appends for back pressure (after the server's wait, not from the loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 0

    def _pressure(self, timeout: float | None) -> None:
        if self.refuse:
            if timeout != 0:
                self.refuse -= 1
            raise BackPressure("test: budget exhausted")

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        self._pressure(timeout)
        return super().append_runs(batches, writer_id=writer_id, timeout=timeout)

    def append_async(self, segment: str, data: bytes, *, timeout: float | None = None, **kw: Any) -> Future[Any]:  # type: ignore[override]
        self._pressure(timeout)
        return super().append_async(segment, data, **kw)


@pytest.fixture
def pressured(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PressuredStore, StreamServer]]:
    monkeypatch.setattr("xtremehub.streams.remote.connection.SUPPORTED_VERSIONS", (2, 1))  # a version 2 client
    store = PressuredStore()
    with serve_background(store, config=ServerConfig(shutdown_grace=5.0)) as server:
        yield store, server


def _send(
    client: RemoteSegmentStore, segment: str, events: list[bytes], first: int, writer: str = "w"
) -> Future[RunOutcome]:
    return client.append_runs([SegmentBatch(segment, events, first)], writer_id=writer)[0]


def _refused_for_pressure(answer: Future[RunOutcome] | RunOutcome) -> bool:
    """Every event refused for back pressure: by the server (a run of errors), or by the client at once
    (the request's ``BackPressure``: it knew the server would refuse it, or it could not be re-sent)."""
    if isinstance(answer, Future):
        error = answer.exception(10)
        if error is not None:
            return isinstance(error, BackPressure)
        answer = answer.result()
    run = answer
    return len(run.errors) == len(run.offsets) and all(isinstance(e, BackPressure) for e in run.errors.values())


def test_later_batches_wait_for_the_refused_one(pressured: tuple[PressuredStore, StreamServer]) -> None:
    store, server = pressured
    client = RemoteSegmentStore(server.url)
    try:
        assert client.connection.server_info["version"] == 2
        client.create_segment("s")
        client.create_segment("t")
        store.refuse = 1
        a = _send(client, "s", [b"a0", b"a1"], 0)
        b = _send(client, "s", [b"b2", b"b3"], 2)  # in flight behind a
        other = _send(client, "s", [b"x0"], 0, writer="v")  # another writer is not held
        t = _send(client, "t", [b"t4"], 4)  # nor is this writer on another segment
        assert _refused_for_pressure(a)
        assert _refused_for_pressure(b), "b must not overtake the refused a"
        assert other.result(10).ok
        assert t.result(10).ok
        held = _send(client, "s", [b"c4"], 4).result(10)  # still held: a was not re-sent
        assert _refused_for_pressure(held)
        assert _send(client, "s", [b"a0", b"a1"], 0).result(10).ok  # the re-send lifts the hold
        assert _send(client, "s", [b"b2", b"b3"], 2).result(10).ok
        assert _send(client, "s", [b"c4"], 4).result(10).ok
        assert bytes(store.data["s"]) == b"x0a0a1b2b3c4"
        assert store.writers[("s", "w")] == 4
    finally:
        client.close()


def test_a_lone_append_refused_holds_back_later_ones_too(pressured: tuple[PressuredStore, StreamServer]) -> None:
    store, server = pressured
    client = RemoteSegmentStore(server.url)
    try:
        client.create_segment("s")
        store.refuse = 1
        lone = client.append_async("s", b"e7", writer_id="w", event_number=7)  # the plain APPEND
        later = _send(client, "s", [b"e8", b"e9"], 8)
        with pytest.raises(BackPressure):
            lone.result(10)
        assert _refused_for_pressure(later)
        assert client.append_async("s", b"e7", writer_id="w", event_number=7).result(10).duplicate is False
        assert _send(client, "s", [b"e8", b"e9"], 8).result(10).ok
        assert bytes(store.data["s"]) == b"e7e8e9"
    finally:
        client.close()


def _dropped(client: RemoteSegmentStore, old: object) -> None:
    """Wait until the client gave up the broken socket (it reconnects at the next request)."""
    deadline = time.monotonic() + 10
    while client.connection._sock is old:
        assert time.monotonic() < deadline, "the client did not notice the broken connection"
        time.sleep(0.01)


def _resend_refused(client: RemoteSegmentStore, sent: list[tuple[list[bytes], int, Future[RunOutcome]]]) -> None:
    """What a writer does: re-send, in order, every batch from the first one refused on."""
    refused = False
    for events, first, future in sent:
        error = future.exception(10)
        assert error is None or isinstance(error, BackPressure), error
        refused = refused or error is not None or not future.result().ok
        if refused:
            again = _send(client, "s", events, first).result(10)
            assert again.ok, again.errors


@pytest.mark.parametrize("path", ["resent_after_reconnect", "sent_on_the_new_connection"])
def test_a_refused_append_is_not_overtaken_across_a_reconnect(
    pressured: tuple[PressuredStore, StreamServer], path: str
) -> None:
    """The hold lives on the server's connection; after a reconnect the client keeps it.

    ``resent_after_reconnect``: the later batch was in flight when the connection broke and is
    re-sent automatically on the new one. ``sent_on_the_new_connection``: it leaves after the
    reconnect. Either way it must not be stored before the refused batch's re-send.
    """
    store, server = pressured
    client = RemoteSegmentStore(server.url, ClientConfig(reconnect_timeout=10))
    try:
        client.create_segment("s")
        store.refuse = 1
        a = _send(client, "s", [b"a0", b"a1"], 0)
        assert _refused_for_pressure(a)
        old = client.connection._sock
        assert old is not None
        if path == "resent_after_reconnect":
            old.shutdown(socket.SHUT_WR)  # b's frame cannot leave: re-sent after the reconnect
            b = _send(client, "s", [b"b2", b"b3"], 2)
        else:
            old.shutdown(socket.SHUT_RDWR)
            _dropped(client, old)
            b = _send(client, "s", [b"b2", b"b3"], 2)
        b.exception(10)
        _resend_refused(client, [([b"a0", b"a1"], 0, a), ([b"b2", b"b3"], 2, b)])
        assert bytes(store.data["s"]) == b"a0a1b2b3", "an acknowledged event was lost or stored twice"
        assert store.writers[("s", "w")] == 3
    finally:
        client.close()


class Relay(TcpRelay):
    """A relay in front of the server: holds the bytes going one way, or cuts the connection."""

    def __init__(self, target: str) -> None:
        super().__init__("127.0.0.1", int(target.rsplit(":", 1)[1]))
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._held: dict[Way, list[tuple[socket.socket, bytes]] | None] = {"up": None, "down": None}

    def pump(self, way: Way, src: socket.socket, dst: socket.socket) -> None:
        while data := src.recv(65536):
            with self.lock:
                held = self._held[way]
                if held is not None:
                    held.append((dst, data))
                    continue
                dst.sendall(data)

    def hold(self, way: Way) -> None:
        with self.lock:
            self._held[way] = []

    def release(self, way: Way) -> None:
        with self.lock:
            for dst, data in self._held[way] or []:
                dst.sendall(data)
            self._held[way] = None

    def cut(self) -> None:
        """Close every connection; held bytes are lost, new connections pass."""
        with self.lock:
            self._held = {"up": None, "down": None}
        super().cut()


@pytest.mark.parametrize("resent_before_the_cut", [False, True])
def test_appends_in_flight_when_the_connection_breaks_are_not_resent_out_of_order(
    pressured: tuple[PressuredStore, StreamServer], resent_before_the_cut: bool
) -> None:
    """b left before a's refusal came back; the connection breaks before b reaches the server.

    The automatic re-send of b on the new connection would store it before a's re-send (also in
    flight when ``resent_before_the_cut``, sent after b): b is refused instead, to be re-sent in order.
    """
    store, server = pressured
    relay = Relay(server.url)
    client = RemoteSegmentStore(relay.url, ClientConfig(reconnect_timeout=10))
    try:
        client.create_segment("s")
        relay.hold("down")
        store.refuse = 1
        a = _send(client, "s", [b"a0", b"a1"], 0)
        deadline = time.monotonic() + 10
        while store.refuse:  # a reached the store and was refused; its answer waits in the relay
            assert time.monotonic() < deadline
            time.sleep(0.01)
        relay.hold("up")
        b = _send(client, "s", [b"b2", b"b3"], 2)  # stays in the relay
        relay.release("down")
        assert _refused_for_pressure(a)
        sent = [([b"a0", b"a1"], 0, a), ([b"b2", b"b3"], 2, b)]
        if resent_before_the_cut:
            sent = [([b"a0", b"a1"], 0, _send(client, "s", [b"a0", b"a1"], 0)), sent[1]]  # stays in the relay
        relay.cut()
        assert isinstance(b.exception(10), BackPressure)
        _resend_refused(client, sent)
        assert bytes(store.data["s"]) == b"a0a1b2b3", "an acknowledged event was lost or stored twice"
    finally:
        client.close()
        relay.close()


def test_version_3_connections_hold_nothing_back() -> None:
    """A refused append holds back nothing on a version 3 connection, on the server nor in the client:
    a writer that gives it up goes on (a later append naming an event not stored is the store's
    to refuse, with ``EventNumberGap``; this store keeps no such check, so it is stored)."""
    store = PressuredStore()
    with serve_background(store, config=ServerConfig(shutdown_grace=5.0)) as server:
        client = RemoteSegmentStore(server.url)
        try:
            assert client.connection.server_info["version"] == 3
            client.create_segment("s")
            store.refuse = 1
            a = _send(client, "s", [b"a0", b"a1"], 0)
            assert _refused_for_pressure(a)
            lone = client.append_async("s", b"e2", writer_id="w", event_number=2)  # the plain APPEND
            assert lone.result(10).duplicate is False
            assert _send(client, "s", [b"b3", b"b4"], 3).result(10).ok
            assert bytes(store.data["s"]) == b"e2b3b4"
            assert not client.connection._order
        finally:
            client.close()
