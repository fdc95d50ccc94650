"""An ephemeral node service per test module, announced under a private home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.config import Settings
from xtremehub.ephemeral import NodeService, TierConfig
from xtremehub.ephemeral.client import reset_clients


@pytest.fixture(scope="module")
def eph_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eph-home")


@pytest.fixture(scope="module")
def eph_service(eph_home: Path) -> Iterator[NodeService]:
    settings = Settings(home=eph_home)
    config = TierConfig(memory_limit="256MiB", disk_limit="256MiB", disk_dir=eph_home / "disk")
    with NodeService(config, settings).start() as service:
        yield service
    reset_clients()


@pytest.fixture
def eph_settings(eph_service: NodeService) -> Settings:
    return eph_service.settings
