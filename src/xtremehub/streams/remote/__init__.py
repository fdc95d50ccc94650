"""Client side of the stream server: proxies implementing the segment-store and controller contracts."""

from xtremehub.streams.remote.connection import ClientConfig, Connection, parse_tcp_url
from xtremehub.streams.remote.controller import RemoteController
from xtremehub.streams.remote.store import RemoteSegmentStore

__all__ = ["ClientConfig", "Connection", "RemoteController", "RemoteSegmentStore", "parse_tcp_url"]
