"""Fixtures of the key-release tests: a key service in a temporary directory, a submitter token validator.

The key tests have a directory of their own, so that the other security tests keep their conftest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from keyrelease_support import MASTER, EdDSAIssuer, genomes_policy

from xtremehub.security.keyservice import KeyService
from xtremehub.security.keyservice_store import MasterKey


@pytest.fixture
def issuer() -> EdDSAIssuer:
    return EdDSAIssuer()


@pytest.fixture
def audit() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def make_service(tmp_path: Path, issuer: EdDSAIssuer, audit: list[dict[str, Any]]) -> Callable[..., KeyService]:
    """``make_service(**options)``: a key service on ``tmp_path/keys`` with the genomes and
    proteomes datasets (same policy lists), auditing into ``audit``."""

    def make(**options: Any) -> KeyService:
        service = KeyService(tmp_path / "keys", MasterKey(MASTER), validator=issuer, audit=audit.append, **options)
        if service.policy("genomes") is None:
            service.create_dataset(genomes_policy())
            service.create_dataset(genomes_policy(dataset="proteomes"))
        return service

    return make


@pytest.fixture
def service(make_service: Callable[..., KeyService]) -> KeyService:
    return make_service()
