"""Client side of the stream server: proxies implementing the segment-store and controller contracts.

:func:`connect_server` is what ``StreamManager("tcp://host:port")`` calls: one pipelined
connection shared by a :class:`RemoteController` and a :class:`RemoteSegmentStore`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from xtremehub.streams.remote.connection import ClientConfig, Connection, parse_tcp_url
from xtremehub.streams.remote.controller import RemoteController
from xtremehub.streams.remote.store import RemoteSegmentStore

__all__ = ["ClientConfig", "Connection", "RemoteController", "RemoteSegmentStore", "connect_server", "parse_tcp_url"]


def connect_server(
    url: str, config: ClientConfig | None = None, **options: Any
) -> tuple[RemoteController, RemoteSegmentStore]:
    """Controller and segment-store proxies over one connection to ``tcp://host:port``.

    Closing the store proxy closes the connection; closing the controller proxy does nothing.
    ``options`` are :class:`ClientConfig` fields (``token=``, ``tls_ca=``, ``purpose=`` ...).
    ``ServerUnavailable`` when nothing answers there, ``ValueError`` for a URL of another form,
    ``AuthenticationFailed`` when the server refuses the token.
    """
    host, port = parse_tcp_url(url)
    if options:
        config = dataclasses.replace(config or ClientConfig(), **options)
    connection = Connection(host, port, config)
    return RemoteController(connection), RemoteSegmentStore(connection, own_connection=True)
