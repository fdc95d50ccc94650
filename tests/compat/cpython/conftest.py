"""The vendored CPython module is loaded through xhub_cpython_harness, never collected itself."""

from __future__ import annotations

import gc
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


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """The session's objects so far out of the collector's way while the vendored tests run.

    The vendored classes' ``tearDownClass`` call ``gc.collect()`` three or four times each (to
    break the cycles of a Pool or Manager they made, then warn about dangling processes); after
    the rest of the suite has loaded Ray, Dask, pandas... each full collection walks millions of
    objects: 1 to 2 s each on this machine, about 7 s per class teardown. ``gc.freeze()`` moves
    the objects that exist now to the permanent generation, so those collections walk only what
    the vendored tests themselves made: the objects they look for. ``gc.unfreeze()`` at the end
    hands the rest back to the collector.
    """
    gc.freeze()
    yield
    gc.unfreeze()


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
