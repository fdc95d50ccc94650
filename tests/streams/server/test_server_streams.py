"""The stream-level conformance suite through TCP: StreamManager("tcp://...") against a real server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from xtremehub.streams import StreamManager
from xtremehub.streams.remote import RemoteController, RemoteSegmentStore
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.testing.streams import ManualClock, StreamStoreTests


@contextmanager
def _serve(data: Path, clock: Callable[[], float]) -> Iterator[StreamServer]:
    """A server on a free 127.0.0.1 port over an embedded store and controller in ``data``."""
    embedded = StreamManager.embedded(data, maintenance_interval=3600, clock=clock)
    try:
        with serve_background(embedded.store, embedded.controller, ServerConfig(shutdown_grace=5.0)) as server:
            yield server
    finally:
        embedded.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[StreamServer]:
    with _serve(tmp_path / "data", time.time) as server:
        yield server


class TestStreamsThroughServer(StreamStoreTests):
    @pytest.fixture
    def manager(self, tmp_path: Path, clock: ManualClock) -> Iterator[StreamManager]:
        with _serve(tmp_path / "data", clock) as served, StreamManager(served.url) as manager:
            assert isinstance(manager.controller, RemoteController)
            assert isinstance(manager.store, RemoteSegmentStore)
            yield manager


def test_cli_commands_through_the_server(served: StreamServer) -> None:
    from click.testing import CliRunner

    from xtremehub.cli.streams import streams_group

    def run(*args: str) -> str:
        result = CliRunner().invoke(streams_group, ["--url", served.url, *args], obj=None)
        assert result.exit_code == 0, result.output
        return result.output

    assert "created lab/frames" in run("create", "lab/frames", "--segments", "2")
    assert run("list") == "lab/frames\n"
    run("write", "lab/frames", "--key", "cam-1", "one", "two", "three")
    assert run("tail", "lab/frames", "--timeout", "1").splitlines() == ["one", "two", "three"]
    with StreamManager(served.url) as manager:
        assert manager.get_stream("lab", "frames").active_segments[0].name.startswith("lab/frames/")
