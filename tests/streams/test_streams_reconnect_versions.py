"""A client's pending appends across a reconnect to a server of another protocol version.

The peer here is scripted on a real TCP socket, speaking the real wire protocol: the test needs a
server that answers one append with a back-pressure refusal while the next is in flight, goes away,
and comes back speaking another version, at exact moments. The real server's own handling of
versions is tested in tests/streams/server (test_server_held_back, test_server_given_up).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from xtremehub.errors import BackPressure
from xtremehub.streams.remote.connection import Connection
from xtremehub.streams.wire import HEADER_SIZE, MessageType, WireCodec, decode_header, encode_frame
from xtremehub.streams.wire.codec import encode_error

CODEC = WireCodec.default()


def _recv_frame(sock: socket.socket) -> tuple[Any, bytes]:
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    header = decode_header(exactly(HEADER_SIZE))
    return header, exactly(header.payload_length)


def _hello(sock: socket.socket, version: int) -> None:
    _recv_frame(sock)
    sock.sendall(encode_frame(MessageType.HELLO_OK, 0, CODEC.encode({"magic": "XHUB", "version": version})))


@pytest.mark.parametrize(
    ("first", "then"), [(2, 2), (2, 3), (3, 2), (3, 3)], ids=["v2-then-v2", "v2-then-v3", "v3-then-v2", "v3-then-v3"]
)
def test_a_pending_append_is_re_sent_only_where_its_order_is_kept(first: int, then: int) -> None:
    """Event 0 is refused for back pressure while event 1 is in flight; the server restarts.

    Encoded for version 2 (no previous event number), event 1 must not be re-sent ahead of event 0
    whatever the server now speaks: stored first, it would make event 0's re-send a duplicate,
    acknowledged and never stored (a rolling upgrade from version 2 servers lost it). Encoded for
    version 3 it names event 0 as its previous, so a version 3 store refuses it while event 0 is
    missing and it is simply re-sent; a version 2 server does not know that field, so there it is
    refused too. A refused one is refused for back pressure, for the writer to re-send in order."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    resent: list[list[Any]] = []
    both_sent = threading.Event()

    def serve() -> None:
        one, _ = listener.accept()
        _hello(one, first)
        refused, _ = _recv_frame(one)
        both_sent.wait(5)
        _recv_frame(one)  # event 1: left unanswered
        one.sendall(
            encode_frame(MessageType.ERROR, refused.request_id, CODEC.encode(encode_error(BackPressure("full"))))
        )
        time.sleep(0.3)
        one.close()
        second, _ = listener.accept()
        _hello(second, then)
        second.settimeout(1.0)
        try:
            while True:
                header, body = _recv_frame(second)
                resent.append(CODEC.decode(body))
                second.sendall(encode_frame(MessageType.APPENDED, header.request_id, CODEC.encode([0, 1, False])))
        except (EOFError, OSError):
            pass
        second.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    conn = Connection("127.0.0.1", port)
    try:

        def decode(msg_type: Any, payload: bytes) -> Any:
            return CODEC.decode(payload)

        event0 = conn.request(
            MessageType.APPEND,
            CODEC.encode(["s", b"e0", "w", 0, None]),  # a writer's first event names no previous
            decode,
            retriable=True,
            lanes=[("w", "s", 0)],
            checked=first >= 3,
        )
        event1 = conn.request(
            MessageType.APPEND,
            CODEC.encode(["s", b"e1", "w", 1, None, *([0] if first >= 3 else [])]),  # as the store encodes it
            decode,
            retriable=True,
            lanes=[("w", "s", 1)],
            checked=first >= 3,
        )
        both_sent.set()
        assert isinstance(event0.exception(timeout=5), BackPressure)
        if first == then == 3:  # named its previous event: the new server's store keeps the order
            assert event1.result(timeout=5) == [0, 1, False]
            server.join(5)
            assert resent == [["s", b"e1", "w", 1, None, 0]]
        else:  # refused, to be re-sent in order by the writer (encoded for the new server)
            assert isinstance(event1.exception(timeout=5), BackPressure)
            server.join(5)
            assert resent == []  # nothing went to the new server ahead of event 0
    finally:
        conn.close()
        listener.close()
