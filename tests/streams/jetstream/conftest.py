"""A real 3-node JetStream cluster (replication 3) on loopback ports, shared by the JetStream tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.testing.jetstream import JetStreamCluster


@pytest.fixture(scope="session")
def jetstream_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JetStreamCluster]:
    """Three clustered ``nats-server -js`` nodes; fails (never skips) with the install command if missing."""
    with JetStreamCluster(Path(tmp_path_factory.mktemp("jetstream")), nodes=3) as cluster:
        yield cluster


@pytest.fixture
def namespace() -> str:
    """A fresh namespace: the test's streams, subjects and buckets are its own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def nats_url(jetstream_cluster: JetStreamCluster, namespace: str) -> str:
    """The cluster's URL with a fresh namespace and replication 3."""
    return f"{jetstream_cluster.url}?namespace={namespace}&replicas=3"
