"""The vendored CPython module is loaded by test_cpython_multiprocessing.py, never collected itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

collect_ignore = ["_test_multiprocessing.py"]


@pytest.fixture(scope="session", autouse=True)
def _close_dask_cluster() -> Iterator[None]:
    yield
    import sys

    module = sys.modules.get("xhub_cpython_harness")
    if module is not None:
        module.close_dask()
