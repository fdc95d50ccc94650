"""The stream-level conformance suite through TCP: StreamManager("tcp://...") against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.streams import StreamManager
from xtremehub.streams.remote import RemoteController, RemoteSegmentStore
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.testing.streams import StreamStoreTests


@pytest.fixture
def served(tmp_path: Path) -> Iterator[StreamServer]:
    """A server on a free 127.0.0.1 port over an embedded store and controller in tmp_path."""
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    try:
        with serve_background(embedded.store, embedded.controller, ServerConfig(shutdown_grace=5.0)) as server:
            yield server
    finally:
        embedded.close()


class TestStreamsThroughServer(StreamStoreTests):
    @pytest.fixture
    def manager(self, served: StreamServer) -> Iterator[StreamManager]:
        with StreamManager(served.url) as manager:
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
