"""The read-only HTTP(S) store against a real HTTP server on loopback that honours ``Range``."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from xtremehub import storage
from xtremehub.errors import AccessDenied, InvalidRange, ObjectNotFound

BODY = bytes(range(256)) * 4


class _Ranged(BaseHTTPRequestHandler):
    """Serves BODY at /blob: 206 for a satisfiable range, 416 for one starting at or past the end."""

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        if self.path != "/blob":
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if match is None:
            status, data = 200, BODY
        else:
            start, last = int(match[1]), int(match[2])
            if start >= len(BODY):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(BODY)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, data = 206, BODY[start : last + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ranged)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_ranges_head_and_whole_reads(base: str) -> None:
    url = f"{base}/blob"
    assert storage.head(url).size == len(BODY)
    assert storage.get(url) == BODY
    assert storage.get_range(url, 10, 20) == BODY[10:20]
    assert storage.get_range(url, 1000, 5000) == BODY[1000:]  # an end past the size is clipped


def test_a_range_starting_at_the_end_is_empty_like_every_store(base: str) -> None:
    assert storage.get_range(f"{base}/blob", len(BODY), len(BODY) + 10) == b""  # the server answers 416


def test_a_range_past_the_end_and_a_missing_object_are_typed(base: str) -> None:
    with pytest.raises(InvalidRange, match="blob"):
        storage.get_range(f"{base}/blob", len(BODY) + 1, len(BODY) + 10)
    with pytest.raises(ObjectNotFound, match="nothing"):
        storage.get(f"{base}/nothing")
    with pytest.raises(AccessDenied, match="read-only"):
        storage.put(f"{base}/blob", b"x")
