"""The client's read-ahead frame reader: frames split anywhere across ``recv`` calls come out whole."""

from __future__ import annotations

import socket
import threading

import pytest

from xtremehub.streams.remote.connection import _FrameReader
from xtremehub.streams.wire import MessageType, encode_frame


def _frames() -> list[tuple[MessageType, int, bytes]]:
    small = [(MessageType.APPENDED, i, bytes([i % 256]) * (i * 37 % 500)) for i in range(1, 200)]
    large = [(MessageType.DATA, 1000, b"L" * (3 * _FrameReader.READ_AHEAD + 17))]
    return small[:100] + large + small[100:] + [(MessageType.RESULT, 1001, b"")]


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_frames_split_across_reads_come_out_whole(piece: int) -> None:
    frames = _frames()
    wire = b"".join(encode_frame(t, rid, payload) for t, rid, payload in frames)
    a, b = socket.socketpair()
    try:

        def send() -> None:
            for i in range(0, len(wire), piece):
                a.sendall(wire[i : i + piece])

        sender = threading.Thread(target=send)
        sender.start()
        reader = _FrameReader(b, 1 << 25)
        got = [reader.next_frame() for _ in frames]
        sender.join()
        assert got == frames
    finally:
        a.close()
        b.close()


def test_a_connection_closed_mid_frame_is_eof() -> None:
    a, b = socket.socketpair()
    try:
        a.sendall(encode_frame(MessageType.APPENDED, 1, b"x" * 100)[:50])
        a.close()
        with pytest.raises(EOFError):
            _FrameReader(b, 1 << 25).next_frame()
    finally:
        b.close()
