"""The ``xtremehub.streams`` API on NATS JetStream: ``StreamManager("nats://host:4222,...")``.

:class:`JetStreamSegmentStore` maps segments to subjects of one replicated JetStream stream;
:class:`JetStreamController` keeps the controller's metadata in a JetStream key-value bucket,
updated with revision-conditional writes. Writers, readers, reader groups, checkpoints and
transactions of :mod:`xtremehub.streams.client` run unchanged on top. See docs/streams.md,
"NATS JetStream backend", for the mapping and what is not supported.
"""

from __future__ import annotations

from typing import Any

from xtremehub.errors import NotSupported
from xtremehub.streams.jetstream.connection import BACKEND, JetStreamConnection, JetStreamSettings, parse_url
from xtremehub.streams.jetstream.controller import JetStreamController
from xtremehub.streams.jetstream.store import JetStreamSegmentStore

__all__ = [
    "BACKEND",
    "JetStreamConnection",
    "JetStreamController",
    "JetStreamSegmentStore",
    "JetStreamSettings",
    "connect_jetstream",
    "parse_url",
]


def connect_jetstream(
    url: str, *, maintenance_interval: float = 1.0, **options: Any
) -> tuple[JetStreamController, JetStreamSegmentStore]:
    """Controller and segment store on one connection to the cluster ``url`` names (``StreamManager(url)``).

    The controller runs maintenance (auto-scaling from this client's writers' traffic, retention,
    transaction lease and reader time-outs) every ``maintenance_interval`` seconds, like the
    embedded store; several clients doing so at once is safe (revision-conditional updates).

    The stream server's options (``token``, ``tls_ca``, ``purpose``) do not apply to a NATS
    cluster: passing one raises ``NotSupported``.
    """
    if options:
        raise NotSupported(f"{BACKEND}: options {sorted(options)} are stream-server options; configure NATS instead")
    connection = JetStreamConnection.open(url)
    try:
        store = JetStreamSegmentStore(connection)
    except BaseException:
        connection.acquire().release()  # nobody holds it yet: close it
        raise
    try:
        controller = JetStreamController(store, connection)
    except BaseException:
        store.close()  # the last holder: closes the connection
        raise
    controller.start_background(maintenance_interval)
    return controller, store
