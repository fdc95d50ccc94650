"""StoreAccess: settings that travel without credentials and are completed only from the same endpoint."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator

import cloudpickle
import pytest

from xtremehub.config import S3Settings, Settings, use_process_settings
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

Install = Callable[[Settings], None]
A = "http://s3-a.example:8333"
B = "http://s3-b.example:8333"


def _s3(endpoint: str | None, key: str | None = None) -> S3Settings:
    return S3Settings(endpoint_url=endpoint, access_key_id=key, secret_access_key=key and f"{key}-secret")


@pytest.fixture
def process_settings() -> Iterator[Install]:
    """Install settings as an executor's worker bootstrap does; restored afterwards."""
    try:
        yield use_process_settings
    finally:
        use_process_settings(None)


def _travel(access: StoreAccess) -> StoreAccess:
    raw = cloudpickle.dumps(access)
    assert b"-secret" not in raw
    travelled: StoreAccess = pickle.loads(raw)
    return travelled


def test_the_making_process_keeps_the_settings_whole() -> None:
    settings = Settings(s3=_s3(B, "kb"))
    access = StoreAccess(settings)
    assert access.settings_for("s3://data/x").s3.secret_access_key == "kb-secret"
    assert StoreAccess(settings) == access
    assert hash(StoreAccess(settings)) == hash(access)


def test_a_travelled_access_takes_the_bucket_table_for_its_endpoint(process_settings: Install) -> None:
    worker = Settings(s3=_s3(A, "ka"), buckets={"data": _s3(B, "kb")})
    process_settings(worker)
    got = _travel(StoreAccess(Settings(s3=_s3(B, "client-key")))).settings_for("s3://data/x").s3_for("data")
    assert got.endpoint_url == B
    assert got.access_key_id == "kb"  # the worker's key for B, not A's global one


def test_a_credential_for_another_endpoint_is_never_used(process_settings: Install) -> None:
    process_settings(Settings(s3=_s3(A, "ka")))
    got = _travel(StoreAccess(Settings(s3=_s3(B, "kb")))).settings_for("s3://data/x").s3_for("data")
    assert got.endpoint_url == B
    assert got.access_key_id is None  # left to boto3's own chain rather than sent to the wrong server


def test_any_table_for_the_same_endpoint_lends_its_credential(process_settings: Install) -> None:
    process_settings(Settings(s3=_s3(A, "ka"), buckets={"other": _s3(B, "kb-other")}))
    got = _travel(StoreAccess(Settings(s3=_s3(B, "kb")))).settings_for("s3://data/x").s3_for("data")
    assert got.access_key_id == "kb-other"


def test_local_urls_and_process_defaults_need_no_completion(process_settings: Install) -> None:
    mine = Settings(s3=_s3(A, "ka"))
    process_settings(mine)
    assert _travel(PROCESS_DEFAULTS).settings_for("s3://data/x") is mine
    travelled = _travel(StoreAccess(Settings(s3=_s3(B, "kb"))))
    assert travelled.settings_for("/tmp/file").s3.access_key_id is None
    _store, key = travelled.open("mem://bucket/k")
    assert key == "k"


def test_workers_complete_executor_settings_only_from_the_same_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from xtremehub.compute.backends._engine import worker_settings

    monkeypatch.delenv("XHUB_CONFIG", raising=False)
    monkeypatch.setenv("XHUB_S3_ENDPOINT_URL", A)
    monkeypatch.setenv("XHUB_S3_ACCESS_KEY_ID", "ka")
    monkeypatch.setenv("XHUB_S3_SECRET_ACCESS_KEY", "ka-secret")
    same = worker_settings(Settings(s3=_s3(A), log_level="DEBUG"))
    other = worker_settings(Settings(s3=_s3(B), log_level="DEBUG"))
    assert same.s3.access_key_id == "ka"
    assert other.s3.endpoint_url == B
    assert other.s3.access_key_id is None  # A's key stays away from B


def test_a_plain_aws_key_is_not_given_to_a_shipped_custom_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from xtremehub.compute.backends._engine import ship_settings, worker_settings
    from xtremehub.storage.access import complete

    monkeypatch.delenv("XHUB_CONFIG", raising=False)
    for name in ("XHUB_S3_ENDPOINT_URL", "XHUB_S3_ACCESS_KEY_ID", "XHUB_S3_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AWSKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "AWSKEY-secret")
    third = "http://third-party:9000"
    shipped = ship_settings(Settings(s3=_s3(third, "tp"), buckets={"b": _s3(third, "tp")}, log_level="DEBUG"))
    got = worker_settings(shipped)
    assert (got.s3.endpoint_url, got.s3.access_key_id) == (third, None)
    assert got.s3_for("b").access_key_id is None
    # the same rule as a travelled StoreAccess
    aws_here = Settings.load(config_file=None)
    assert complete(shipped, "b", aws_here).s3_for("b").access_key_id is None
    # AWS's default endpoint (none written) does get the worker's AWS key
    assert worker_settings(ship_settings(Settings(s3=_s3(None, "client")))).s3.access_key_id == "AWSKEY"
