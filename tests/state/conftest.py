"""A real node service (``xhub eph serve`` in a child process) for the shared-state tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.config import Settings
from xtremehub.ephemeral import TierConfig
from xtremehub.ephemeral.service import ServiceProcess
from xtremehub.state.client import reset_clients


@pytest.fixture(scope="session")
def state_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One node service for every shared-state test module (each names its objects apart)."""
    settings = Settings(home=tmp_path_factory.mktemp("state-home"))
    with ServiceProcess.start(TierConfig(memory_limit="64MiB"), settings) as proc:
        yield proc
    reset_clients()


@pytest.fixture
def address(state_service: ServiceProcess) -> str:
    return state_service.address


@pytest.fixture
def own_service(tmp_path: Path) -> Iterator[ServiceProcess]:
    """A service of this test alone (the tests that kill it)."""
    with ServiceProcess.start(TierConfig(memory_limit="16MiB"), Settings(home=tmp_path / "home")) as proc:
        yield proc
    reset_clients(proc.address)
