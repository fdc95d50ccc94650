"""The storage conformance suite on encrypted stores: ``enc+file://``, ``enc+mem://``, ``enc+s3://`` (SeaweedFS)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from xtremehub.config import EncryptionSettings, Settings
from xtremehub.storage._memory import MemoryStore
from xtremehub.testing.storage import BucketStoreTests, StoreTests

# A small chunk size, so every suite test spans many chunks and chunk edges.
ENC = EncryptionSettings(keys=f"mem://conformance-{uuid.uuid4().hex}", dataset="conformance", chunk_size=4096)


class TestEncryptedLocalStore(StoreTests):
    @pytest.fixture
    def root(self, tmp_path: Path) -> str:
        return f"enc+file://{tmp_path}/"

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(encryption=ENC)


class TestEncryptedMemoryStore(BucketStoreTests):
    @pytest.fixture
    def root(self) -> str:
        MemoryStore("xhub-enc-test").create_bucket()
        return f"enc+mem://xhub-enc-test/{uuid.uuid4().hex}/"

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(encryption=ENC)

    @pytest.fixture
    def missing_bucket_root(self) -> str:
        return f"enc+mem://never-written-{uuid.uuid4().hex}/"


@pytest.mark.s3
class TestEncryptedS3Store(BucketStoreTests):
    @pytest.fixture
    def root(self, s3_root: str) -> str:
        return "enc+" + s3_root

    @pytest.fixture
    def settings(self, s3_settings: Settings) -> Settings:
        return s3_settings.replace(encryption=ENC)

    @pytest.fixture
    def missing_bucket_root(self) -> str:
        return f"enc+s3://no-such-bucket-{uuid.uuid4().hex[:8]}/prefix/"
