"""The vendored CPython module is loaded through xhub_cpython_harness, never collected itself."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest

collect_ignore = ["_test_multiprocessing.py"]


@pytest.fixture(autouse=True)
def _ray_instance(request: pytest.FixtureRequest) -> None:
    """The Ray tests run on the session's Ray instance (tests/conftest.py), started once."""
    if request.node.get_closest_marker("ray"):
        request.getfixturevalue("ray_engine")


@pytest.fixture(scope="session", autouse=True)
def _cleanup() -> Iterator[None]:
    """At the end: close the Dask cluster of the vendored tests, remove the per-backend modules."""
    yield
    harness = sys.modules.get("xhub_cpython_harness")
    if harness is not None:
        harness.close_dask()
        directory = os.environ.pop(harness._MODULE_DIR_VARIABLE, None)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
