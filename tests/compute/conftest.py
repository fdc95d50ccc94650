"""Engines for the backend tests: Lithops's localhost configuration.

The Ray and Dask engines (``ray_engine``, ``dask_client``) live in tests/conftest.py, shared
with the security tests that release keys inside workers.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest


@pytest.fixture(scope="session")
def lithops_config() -> dict[str, Any]:
    """Lithops's localhost backend: functions run in local processes started per call."""
    return {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": None},
        "localhost": {"worker_processes": 2, "runtime": sys.executable},
    }
