"""The ``xtremehub.streams`` API on NATS JetStream: ``StreamManager("nats://host:4222,...")``.

:class:`JetStreamSegmentStore` maps segments to subjects of one replicated JetStream stream;
:class:`JetStreamController` keeps the controller's metadata in a JetStream key-value bucket,
updated with revision-conditional writes. Writers, readers, reader groups, checkpoints and
transactions of :mod:`xtremehub.streams.client` run unchanged on top. See docs/streams.md,
"NATS JetStream backend", for the mapping and what is not supported.
"""

from __future__ import annotations

from xtremehub.streams.jetstream.connection import BACKEND, JetStreamConnection, JetStreamSettings, parse_url
from xtremehub.streams.jetstream.store import JetStreamSegmentStore

__all__ = [
    "BACKEND",
    "JetStreamConnection",
    "JetStreamSegmentStore",
    "JetStreamSettings",
    "parse_url",
]
