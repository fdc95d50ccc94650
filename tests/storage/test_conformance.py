"""The storage conformance suite on every built-in store: local, memory, real S3 (SeaweedFS)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.storage._memory import MemoryStore
from xtremehub.testing.storage import BucketStoreTests, StoreTests


class TestLocalStore(StoreTests):
    @pytest.fixture
    def root(self, tmp_path: Path) -> str:
        return f"{tmp_path}/"


def test_file_urls_name_the_same_objects_as_paths(tmp_path: Path) -> None:
    info = storage.put(f"file://{tmp_path}/x/y.txt", b"via file url")
    assert info.url == f"{tmp_path}/x/y.txt"  # canonical form of a local object is its path
    assert storage.get(f"{tmp_path}/x/y.txt") == b"via file url"
    assert [i.url for i in storage.list(f"file://{tmp_path}/x/")] == [f"{tmp_path}/x/y.txt"]


class TestMemoryStore(BucketStoreTests):
    @pytest.fixture
    def root(self) -> str:
        MemoryStore("xhub-test").create_bucket()
        return f"mem://xhub-test/{uuid.uuid4().hex}/"

    @pytest.fixture
    def missing_bucket_root(self) -> str:
        return f"mem://never-written-{uuid.uuid4().hex}/"


@pytest.mark.s3
class TestS3Store(BucketStoreTests):
    @pytest.fixture
    def root(self, s3_root: str) -> str:
        return s3_root

    @pytest.fixture
    def settings(self, s3_settings: Settings) -> Settings:
        return s3_settings

    @pytest.fixture
    def missing_bucket_root(self) -> str:
        return f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/prefix/"
