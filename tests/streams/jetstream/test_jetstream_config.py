"""JetStream URLs and the nats-server check: clear errors without a cluster."""

from __future__ import annotations

import pytest

from xtremehub.errors import InvalidStreamArgument, MissingDependency, NotSupported, StreamError
from xtremehub.streams import StreamManager
from xtremehub.streams.jetstream import parse_url
from xtremehub.testing import jetstream


def test_urls_name_every_server_and_the_layout() -> None:
    settings = parse_url("nats://a:1,b:2,c:3?namespace=lab")
    assert settings.servers == ("nats://a:1", "nats://b:2", "nats://c:3")
    assert (settings.namespace, settings.replicas) == ("lab", 3)
    assert parse_url("nats://a:1").replicas == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://", "no server"),
        ("nats://a:1?namespace=a.b", "namespace"),
        ("nats://a:1?replicas=9", "replicas must be 1 to 5"),
        ("nats://a:1?replicas=x", "numbers"),
        ("nats://a:1?colour=red", "unknown parameters"),
        ("tcp://a:1", "starts with nats://"),
    ],
)
def test_bad_urls_are_invalid_stream_arguments_naming_the_url(url: str, message: str) -> None:
    with pytest.raises(InvalidStreamArgument, match=message):
        parse_url(url)


def test_server_options_are_not_supported_on_nats() -> None:
    with pytest.raises(NotSupported, match="NATS JetStream backend") as info:
        StreamManager("nats://127.0.0.1:1", token="secret")
    assert isinstance(info.value, StreamError)
    assert isinstance(info.value, NotImplementedError)


def test_missing_nats_server_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jetstream.shutil, "which", lambda name: None)
    with pytest.raises(MissingDependency, match="apt-get install -y nats-server"):
        jetstream.nats_server_binary()
