"""The SeaweedFS test server itself: extra ``weed server`` flags reach the server."""

from __future__ import annotations

import json
import urllib.request

import pytest

from xtremehub import storage
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS

pytestmark = pytest.mark.s3

MiB = 1024 * 1024


def _chunk_sizes(server: SeaweedFS, bucket: str, key: str) -> list[int]:
    url = f"http://127.0.0.1:{server.filer_port}/buckets/{bucket}/{key}?metadata=true"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return sorted(int(chunk["size"]) for chunk in json.load(answer)["chunks"])


@pytest.mark.slow
def test_extra_args_set_the_chunk_size_the_filer_writes() -> None:
    """``-filer.maxMB=1`` (a deployment setting bench/seaweed_serving.py measures): a 3.5 MiB object
    is stored in 1 MiB chunks, where the default (4 MiB) would keep it in one, and reads back whole."""
    data = bytes(range(256)) * (14 * MiB // 1024)
    with SeaweedFS.start(extra_args=["-filer.maxMB=1"]) as server:
        settings = server.settings(timeout=30.0)
        S3Store("xhub-chunks", settings.s3).create_bucket()
        storage.put("s3://xhub-chunks/obj.bin", data, settings=settings)
        assert _chunk_sizes(server, "xhub-chunks", "obj.bin") == [MiB // 2, MiB, MiB, MiB]
        assert storage.get("s3://xhub-chunks/obj.bin", settings=settings) == data
        assert (
            storage.get_range("s3://xhub-chunks/obj.bin", MiB - 10, MiB + 10, settings=settings)
            == data[MiB - 10 : MiB + 10]
        )
