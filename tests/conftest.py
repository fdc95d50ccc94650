"""Shared fixtures: real servers on free loopback ports, the real test files in tests/data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.config import Settings
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS

TESTDATA = Path(__file__).resolve().parent / "data"  # copied with SOURCES.md, licences and FACTS


# The conftest files hold fixtures, not doctests: with --doctest-modules pytest would import each
# one again as a module named "conftest", which clashes once two directories have one.
collect_ignore_glob = ["*conftest.py"]  # fnmatch: "*" also matches "/", so every level


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """A real SeaweedFS S3 server for the whole session."""
    with SeaweedFS.start() as server:
        yield server


@pytest.fixture(scope="session")
def s3_settings(seaweedfs: SeaweedFS) -> Settings:
    return seaweedfs.settings()


@pytest.fixture(scope="session")
def s3_bucket(seaweedfs: SeaweedFS, s3_settings: Settings) -> str:
    """One bucket for the session (SeaweedFS makes a collection per bucket: keep them few)."""
    S3Store("xhub-test", s3_settings.s3).create_bucket()
    return "xhub-test"


#: A second S3 endpoint with credentials of its own (settings that must reach every read).
SECOND_ADMIN = ("xhub-second-admin", "xhub-second-secret")
SECOND_BUCKET = "xhub-second"


@pytest.fixture(scope="session")
def seaweedfs_second() -> Iterator[SeaweedFS]:
    """A second SeaweedFS server, its own credentials and bucket (:data:`SECOND_BUCKET`)."""
    with SeaweedFS.start(admin=SECOND_ADMIN) as server:
        S3Store(SECOND_BUCKET, server.settings().s3).create_bucket()
        yield server


@pytest.fixture(scope="session")
def second_endpoint_config(seaweedfs_second: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A worker config file (``XHUB_CONFIG``) giving the second endpoint's bucket its credentials.

    Engines start with it, as a real cluster's workers are configured; the test process
    itself never reads it.
    """
    s3 = seaweedfs_second.settings().s3
    path = tmp_path_factory.mktemp("worker-config") / "config.toml"
    path.write_text(
        f"[s3.buckets.{SECOND_BUCKET}]\n"
        f'endpoint_url = "{s3.endpoint_url}"\n'
        'region = "us-east-1"\n'
        'addressing_style = "path"\n'
        f'access_key_id = "{SECOND_ADMIN[0]}"\n'
        f'secret_access_key = "{SECOND_ADMIN[1]}"\n'
    )
    return path


@pytest.fixture
def s3_root(s3_bucket: str) -> str:
    """A unique, empty prefix in the session bucket."""
    return f"s3://{s3_bucket}/{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def testdata() -> Path:
    """The real files under tests/data (see tests/data/SOURCES.md); a missing folder is a failure."""
    assert TESTDATA.is_dir(), f"test data missing at {TESTDATA}: the repository carries it in tests/data"
    return TESTDATA


@pytest.fixture
def s3_default(s3_settings: Settings) -> Iterator[Settings]:
    """Make the S3 test server this process's default store settings for one test."""
    from xtremehub.config import use_process_settings

    use_process_settings(s3_settings)
    try:
        yield s3_settings
    finally:
        use_process_settings(None)
