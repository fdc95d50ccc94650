"""A TCP relay on loopback in front of a real server, for fault tests.

The requests and answers are the real server's own; only the connection in between is in the
test's hands: subclasses override :meth:`TcpRelay.pump` to cut an answer mid-body, hold back the
bytes going one way, and so on. :meth:`TcpRelay.cut` breaks every connection made so far (new
ones still pass).

Example:
    >>> import socket
    >>> echo = socket.create_server(("127.0.0.1", 0))
    >>> with TcpRelay("127.0.0.1", echo.getsockname()[1]) as relay:
    ...     client = socket.create_connection(("127.0.0.1", relay.port))
    ...     server, _ = echo.accept()
    ...     client.sendall(b"ping")
    ...     server.recv(4)
    b'ping'
    >>> client.close(); server.close(); echo.close()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Literal

__all__ = ["TcpRelay", "Way"]

#: ``"up"``: from the client to the server; ``"down"``: the server's answers.
Way = Literal["up", "down"]


class TcpRelay:
    """Accept connections on a free port of 127.0.0.1 and relay each to ``host:port``.

    Every accepted connection gets a connection of its own to the server and two threads, one per
    direction, each running :meth:`pump`. The relay only binds to loopback.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        #: the port clients connect to instead of the server's
        self.port: int = self._listener.getsockname()[1]
        self.lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"tcp-relay-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()  # the server is down: the client sees its connection closed
                continue
            with self.lock:
                self._sockets += [client, server]
            for way, src, dst in (("up", client, server), ("down", server, client)):
                threading.Thread(target=self._run, args=(way, src, dst), daemon=True).start()

    def _run(self, way: Way, src: socket.socket, dst: socket.socket) -> None:
        try:
            self.pump(way, src, dst)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)

    def pump(self, way: Way, src: socket.socket, dst: socket.socket) -> None:
        """Move the bytes of one direction of one connection until ``src`` ends.

        This one forwards everything. An ``OSError`` ends the direction quietly; ``dst`` is shut
        afterwards, so the far side sees the end and the other direction ends too.
        """
        while data := src.recv(65536):
            dst.sendall(data)

    @staticmethod
    def close_both(*sockets: socket.socket) -> None:
        """Shut and close sockets, ignoring those already gone (what a reset looks like)."""
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        """Break every connection made so far; new connections still pass."""
        with self.lock:
            self.close_both(*self._sockets)
            self._sockets.clear()

    def close(self) -> None:
        """Stop accepting and break every connection."""
        # close() alone leaves the accepting thread blocked in accept() on the same socket, which
        # goes on accepting; shutdown wakes it (EINVAL) and the port then refuses connections
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
