"""CPython 3.11's own multiprocessing test classes, unmodified, against ``xtremehub.multiprocessing``.

The classes are made by xhub_cpython_harness (see its docstring), once per backend;
pytest collects them from here (Dask's with the ``dask`` marker).
"""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest
from xhub_cpython_harness import KNOWN_GAPS, close_dask, load_modules

for _backend, _module in load_modules().items():
    for _name, _cls in vars(_module).items():
        if isinstance(_cls, type) and issubclass(_cls, unittest.TestCase) and _name.endswith(f"_{_backend}"):
            _marks = {"dask": pytest.mark.dask, "dask_service": pytest.mark.dask, "ray": pytest.mark.ray}
            globals()[f"Test_{_name}"] = _marks[_backend](_cls) if _backend in _marks else _cls
del _backend, _module, _name, _cls, _marks

__all__ = ["close_dask"]


def test_known_gaps_are_documented() -> None:
    """Every skipped vendored test is in docs/multiprocessing.md with its reason (and nothing else is skipped)."""
    docs = Path(__file__).parents[3].joinpath("docs", "multiprocessing.md").read_text()
    for backend, gaps in KNOWN_GAPS.items():
        for key, reason in gaps.items():
            assert f"| {backend} | `{key}` | {reason} |" in docs, (backend, key)
