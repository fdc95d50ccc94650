"""``xhub-eph://`` from workers on every backend; the local executor starts the node service itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings
from xtremehub.ephemeral import NodeService, TierConfig
from xtremehub.ephemeral.client import reset_clients
from xtremehub.ephemeral.service import service_file


def _job(settings: Settings, backend: str, tag: str, **options: Any) -> None:
    """Stage 1 writes one part per call into Tier 0, stage 2 reads them all back on workers."""
    base = f"xhub-eph://jobs/{tag}/"

    def produce(i: int) -> str:
        data = hashlib.sha256(str(i).encode()).digest() * 1000
        return storage.put(f"{base}part-{i}", data).url  # the worker's settings find the service

    def consume(url: str) -> tuple[int, str]:
        data = storage.get(url)
        return len(data), hashlib.md5(data).hexdigest()

    with FunctionExecutor(backend, settings=settings, **options) as fexec:
        urls = fexec.get_result(fexec.map(produce, range(6)))
        assert urls == [f"{base}part-{i}" for i in range(6)]
        got = fexec.get_result(fexec.map(consume, urls))
    for i, (size, digest) in enumerate(got):
        data = hashlib.sha256(str(i).encode()).digest() * 1000
        assert (size, digest) == (len(data), hashlib.md5(data).hexdigest())
    assert sorted(i.url for i in storage.list(base, settings=settings)) == sorted(urls)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeService]:
    with NodeService(TierConfig(memory_limit="128MiB"), Settings(home=tmp_path / "home")).start() as svc:
        yield svc
    reset_clients()


def test_local_executor_starts_the_node_service_when_a_job_names_xhub_eph(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert not service_file(settings).exists()
    with FunctionExecutor("local", workers=2, settings=settings) as fexec:
        urls = [f"xhub-eph://auto/in-{i}" for i in range(3)]
        fexec.get_result(fexec.map(lambda u: storage.put(u, u.encode()).size, urls))
        info = json.loads(service_file(settings).read_text())
        assert fexec._eph_service is not None
        assert fexec._eph_service.process.pid == info["pid"]
        assert fexec.get_result(fexec.map(lambda u: storage.get(u).decode(), urls)) == urls
        process = fexec._eph_service.process
    assert process.poll() is not None  # the executor's service stopped with it
    assert not service_file(settings).exists()
    reset_clients()


def test_local_workers(node: NodeService) -> None:
    _job(node.settings, "local", "local")


@pytest.mark.ray
def test_ray_workers(node: NodeService, ray_engine: Any) -> None:
    _job(node.settings, "ray", "ray")


@pytest.mark.dask
def test_dask_workers(node: NodeService, dask_client: Any) -> None:
    _job(node.settings, "dask", "dask", client=dask_client)
