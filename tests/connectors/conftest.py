"""Fixtures shared by the connector tests: FACTS.json and a file placed on local disk or S3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from xtremehub import storage


@pytest.fixture
def facts(testdata: Path) -> dict[str, Any]:
    return json.loads((testdata / "FACTS.json").read_text())


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A function that places a file in the store under test and returns its URL."""
    if request.param == "local":

        def place(path: Path) -> str:
            target = tmp_path / "data" / path.name
            target.parent.mkdir(exist_ok=True)
            shutil.copy(path, target)
            return str(target)

        return place
    s3_root = request.getfixturevalue("s3_root")
    request.getfixturevalue("s3_default")  # workers and this process resolve s3:// to the test server

    def place_s3(path: Path) -> str:
        url = s3_root + path.name
        storage.put(url, path.read_bytes())
        return url

    return place_s3
