"""The storage conformance suite on ``xhub-eph://``, through the same-node path and over TCP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from xtremehub.config import Settings
from xtremehub.ephemeral import client as eph_client
from xtremehub.ephemeral.service import NodeService
from xtremehub.testing.storage import StoreTests


class TestEphemeralStore(StoreTests):
    @pytest.fixture
    def root(self) -> str:
        return f"xhub-eph://conformance/{uuid.uuid4().hex}/"

    @pytest.fixture
    def settings(self, eph_settings: Settings) -> Settings:
        assert eph_client.client_for(eph_settings).local  # the zero-copy path on this node
        return eph_settings


class TestEphemeralStoreOverTcp(StoreTests):
    """As a client on another node sees it: every byte over the connection."""

    @pytest.fixture
    def root(self) -> str:
        return f"xhub-eph://conformance-tcp/{uuid.uuid4().hex}/"

    @pytest.fixture
    def settings(self, eph_service: NodeService, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
        monkeypatch.setenv("XHUB_EPH_LOCAL", "0")
        eph_client.reset_clients()
        assert not eph_client.client_for(eph_service.settings).local
        yield eph_service.settings
        eph_client.reset_clients()
