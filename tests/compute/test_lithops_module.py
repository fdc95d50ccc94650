"""``xtremehub.lithops`` with Lithops configs: a MinIO-style storage section on a real S3 server."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from xtremehub import lithops
from xtremehub.config import Settings, use_process_settings
from xtremehub.errors import ConfigError
from xtremehub.lithops.config import default_config, extract_storage_config, load_yaml_config
from xtremehub.lithops.storage.utils import CloudObject, StorageNoSuchKeyError
from xtremehub.testing.seaweedfs import SeaweedFS


def count_words(obj: Any) -> int:
    return len(obj.data_stream.read().split())


def total(results: list[int]) -> int:
    return sum(results)


def read_with(key: str, bucket: str, storage: Any) -> bytes:
    data: bytes = storage.get_object(bucket, key)
    return data


@pytest.fixture
def minio_config(seaweedfs: SeaweedFS, s3_bucket: str) -> dict[str, Any]:
    s3 = seaweedfs.settings().s3
    return {
        "lithops": {"backend": "localhost", "storage": "minio"},
        "minio": {
            "endpoint": s3.endpoint_url,
            "access_key_id": s3.access_key_id,
            "secret_access_key": s3.secret_access_key,
            "storage_bucket": s3_bucket,
        },
    }


@pytest.mark.s3
def test_storage_and_executor_from_a_minio_config(minio_config: dict[str, Any]) -> None:
    storage = lithops.Storage(config=minio_config)
    assert (storage.backend, storage.bucket) == ("minio", minio_config["minio"]["storage_bucket"])
    prefix = f"lithops-compat/{uuid.uuid4().hex[:8]}"
    storage.put_object(storage.bucket, f"{prefix}/a.txt", b"one two three\nfour\n")
    storage.put_object(storage.bucket, f"{prefix}/b.txt", "five six\n")
    assert storage.head_object(storage.bucket, f"{prefix}/a.txt")["content-length"] == "19"
    assert storage.list_keys(storage.bucket, prefix + "/") == [f"{prefix}/a.txt", f"{prefix}/b.txt"]
    assert storage.get_object(storage.bucket, f"{prefix}/a.txt", extra_get_args={"Range": "bytes=4-6"}) == b"two"
    with pytest.raises(StorageNoSuchKeyError):
        storage.get_object(storage.bucket, f"{prefix}/missing")
    with lithops.FunctionExecutor(config=minio_config, max_workers=2) as fexec:
        # the workers reach the store through the config's endpoint and credentials
        fexec.map_reduce(count_words, f"minio://{storage.bucket}/{prefix}/", total, obj_chunk_number=2)
        assert fexec.get_result() == 6
        fexec.call_async(read_with, (f"{prefix}/b.txt", storage.bucket))
        assert fexec.get_result() == b"five six\n"
    storage.delete_objects(storage.bucket, storage.list_keys(storage.bucket, prefix + "/"))
    assert storage.list_objects(storage.bucket, prefix + "/") == []


def test_config_file_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("lithops:\n  storage: localhost\nlocalhost:\n  storage_bucket: mine\n")
    config = default_config(config_file=str(path))
    assert config == default_config(load_yaml_config(str(path)))
    assert extract_storage_config(config)["localhost"]["storage_bucket"] == "mine"
    storage = lithops.Storage(storage_config=extract_storage_config(config))
    assert storage.url("mine", "k").endswith("/mine/k")


def test_cloudobjects_of_another_backend_are_refused(tmp_path: Path) -> None:
    storage = lithops.Storage(config={"localhost": {"storage_root": str(tmp_path)}})
    co = storage.put_cloudobject(b"x")
    assert storage.get_cloudobject(co) == b"x"
    with pytest.raises(ConfigError, match="aws_s3"):
        storage.get_cloudobject(CloudObject("aws_s3", "b", "k"))
    assert storage.head_bucket(storage.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_unknown_lithops_backends_are_named() -> None:
    with pytest.raises(ConfigError, match="no XtremeHub counterpart"):
        lithops.FunctionExecutor(backend="aws_lambda")
    with pytest.raises(ConfigError, match="azure_storage"):
        lithops.Storage(config={"lithops": {"storage": "azure_storage"}}).list_keys("b")


def test_module_level_wait_and_get_result_on_plain_lists() -> None:
    with lithops.FunctionExecutor(max_workers=1) as a, lithops.FunctionExecutor(max_workers=1) as b:
        futures = [a.call_async(total, ([1, 2],)), b.call_async(total, ([3, 4],))]  # two executors
        done, not_done = lithops.wait(futures, return_when=lithops.ALL_COMPLETED, timeout=60)
        assert (len(done), not_done) == (2, [])
        assert lithops.get_result(futures) == [3, 7]


@pytest.mark.s3
def test_a_pickled_storage_carries_no_secret_and_works_where_credentials_are(
    minio_config: dict[str, Any], seaweedfs: SeaweedFS
) -> None:
    storage = lithops.Storage(config=minio_config)
    key = f"lithops-compat/{uuid.uuid4().hex[:8]}/pickled.txt"
    storage.put_object(storage.bucket, key, b"travelled")
    secret = minio_config["minio"]["secret_access_key"]
    raw = cloudpickle.dumps(storage)
    assert secret.encode() not in raw
    assert minio_config["minio"]["access_key_id"].encode() not in raw
    try:
        use_process_settings(Settings())  # a process with no credential for the endpoint
        bare = pickle.loads(raw)
        assert "secret_access_key" not in bare.get_storage_config()["minio"]
        assert bare._access.settings_for(bare.url(bare.bucket, key)).s3.secret_access_key is None
        use_process_settings(seaweedfs.settings())  # a worker configured for the same endpoint
        arrived = pickle.loads(raw)
        assert (arrived.backend, arrived.bucket) == (storage.backend, storage.bucket)
        assert arrived.get_object(arrived.bucket, key) == b"travelled"
    finally:
        use_process_settings(None)
        storage.delete_object(storage.bucket, key)
