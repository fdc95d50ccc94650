"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.streams import StreamManager
from xtremehub.streams.server import serve_background


@pytest.fixture(params=["embedded", "server"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamManager]:
    """A stream manager: the same tests on an embedded store and through a stream server on loopback."""
    with StreamManager.embedded(tmp_path / "streams") as embedded:
        if request.param == "embedded":
            yield embedded
            return
        with serve_background(embedded.store, embedded.controller) as server, StreamManager(server.url) as remote:
            yield remote
