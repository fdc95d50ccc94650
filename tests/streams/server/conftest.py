"""Fixtures of the stream-server tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_test_store import DictSegmentStore

from xtremehub.streams.server import ServerConfig, StreamServer, serve_background


@pytest.fixture
def dict_store() -> DictSegmentStore:
    return DictSegmentStore()


@pytest.fixture
def dict_server(dict_store: DictSegmentStore) -> Iterator[StreamServer]:
    with serve_background(dict_store, config=ServerConfig(shutdown_grace=5.0)) as server:
        yield server
