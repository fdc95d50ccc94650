"""The stream server: the segment store and the controller served over TCP to many clients.

Run it with ``xhub streams serve --data DIR --lts URL``, or in-process with
:func:`serve_background` (tests, notebooks). The wire protocol is in
:mod:`xtremehub.streams.wire` and ``docs/streams-protocol.md``; the client side is
:mod:`xtremehub.streams.remote`.
"""

from xtremehub.streams.server._server import ServerConfig, StreamServer, serve_background
from xtremehub.streams.server.dispatch import Dispatcher

__all__ = ["Dispatcher", "ServerConfig", "StreamServer", "serve_background"]
