"""Shared fixtures: real servers on free loopback ports, the real test files in tests/data."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from xtremehub.config import Settings
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.postgres import PostgresServer
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (temporary directory, free loopback port).

    Fails (never skips) with how to install PostgreSQL when its binaries are missing.
    """
    with PostgresServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of an empty database made for this session on :func:`postgres`."""
    return postgres.create_database("xhub_session")


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


@pytest.fixture(scope="session")
def _testdata_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TESTDATA.is_dir(), f"test data missing at {TESTDATA}: the repository carries it in tests/data"
    copy = tmp_path_factory.mktemp("testdata") / "data"
    shutil.copytree(TESTDATA, copy, ignore=shutil.ignore_patterns(".xhub"))
    return copy


@pytest.fixture
def testdata(_testdata_copy: Path) -> Path:
    """The real files under tests/data (see tests/data/SOURCES.md), copied once per session, so
    that indexes the connectors write beside them (``.xhub/``) never land in the checkout."""
    return _testdata_copy


@pytest.fixture
def s3_default(s3_settings: Settings) -> Iterator[Settings]:
    """Make the S3 test server this process's default store settings for one test."""
    from xtremehub.config import use_process_settings

    use_process_settings(s3_settings)
    try:
        yield s3_settings
    finally:
        use_process_settings(None)


# --- engines for backend tests, each started once per session on this machine -------------------
# Each engine starts with the SeaweedFS test server's ``XHUB_S3_*`` variables in its environment,
# and a config file (``XHUB_CONFIG``) with the second test endpoint's bucket table, as a real
# cluster's workers would be configured: executors and slices ship their settings without
# secrets, and workers complete them from there.


@contextlib.contextmanager
def environ(extra: Mapping[str, str]) -> Iterator[None]:
    """``extra`` in ``os.environ`` while an engine starts its processes, then the old environment back."""
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: Lithops's localhost backend as every Lithops test runs it: functions in local processes started per call.
LITHOPS_LOCALHOST: dict[str, Any] = {
    "lithops": {"backend": "localhost", "storage": "localhost", "log_level": None},
    "localhost": {"worker_processes": 2, "runtime": sys.executable},
}


@pytest.fixture
def lithops_config() -> dict[str, Any]:
    """A copy of :data:`LITHOPS_LOCALHOST` for one test (Lithops completes the dict it is given)."""
    return copy.deepcopy(LITHOPS_LOCALHOST)


@pytest.fixture(scope="session")
def ray_engine(seaweedfs: SeaweedFS, second_endpoint_config: Path) -> Iterator[Any]:
    """A local Ray instance (2 CPUs, no dashboard) shared by all Ray tests."""
    import ray

    quiet = {"RAY_DEDUP_LOGS": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    sigterm = signal.getsignal(signal.SIGTERM)
    with environ({**seaweedfs.env(), "XHUB_CONFIG": str(second_endpoint_config), **quiet}):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # ray.init makes SIGTERM call sys.exit(15) in this process, and every process forked from it
    # later inherits that: a terminated multiprocessing child would exit with 15, not -SIGTERM.
    signal.signal(signal.SIGTERM, sigterm)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def dask_client(seaweedfs: SeaweedFS, second_endpoint_config: Path) -> Iterator[Any]:
    """A process-based dask.distributed LocalCluster (2 single-threaded workers) and its client."""
    import dask
    from distributed import Client, LocalCluster

    # A killed worker loses its in-memory results: Dask logs each lost key at WARNING.
    for name in ("distributed.scheduler", "distributed.nanny", "distributed.worker", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    worker_env = {**seaweedfs.env(), "XHUB_CONFIG": str(second_endpoint_config)}
    with (
        environ(worker_env),
        dask.config.set(
            {
                "distributed.scheduler.allowed-failures": 0,
                "distributed.scheduler.worker-saturation": 1.0,
                "logging.distributed": "critical",
            }
        ),
    ):
        # env=: the nannies live in this process and restart killed workers from its environment,
        # which no longer holds worker_env once the block ends; they must keep it.
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=worker_env
        )
        client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def write_sensor_events(target: Path | Any, count: int, *, start: int = 0) -> None:
    """Write ``count`` events to the stream ``lab/sensors`` (created when missing) of an embedded
    store: ``target`` is its data directory (opened, flushed to LTS at once, closed) or an open
    :class:`~xtremehub.streams.StreamManager`."""
    from xtremehub.streams import StreamManager

    with contextlib.ExitStack() as stack:
        if isinstance(target, StreamManager):
            manager = target
        else:
            manager = stack.enter_context(StreamManager.embedded(target, lts_flush_delay=0.0, tiering_interval=0.05))
        manager.create_scope("lab")
        manager.create_stream("lab", "sensors")
        with manager.create_writer("lab", "sensors") as writer:
            for i in range(start, start + count):
                writer.write_event(f"reading-{i:05d}".encode(), routing_key=f"s{i % 3}")


@pytest.fixture
def sensor_events() -> Any:
    """:func:`write_sensor_events`, for tests of any directory (a fixture: conftest is not imported)."""
    return write_sensor_events


@pytest.fixture
def rewrite_during_facts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """While the facts of a CSV are read from its index, another writer replaces the object
    (the catalog's extraction then finds it changed: ``StaleIndex``). Lists the URLs rewritten."""
    from xtremehub import storage
    from xtremehub.catalog import facts as facts_module

    rewritten: list[str] = []
    original = facts_module.FACTS["csv"]

    def facts_then_rewrite(co: Any) -> dict[str, Any]:
        out = original(co)
        storage.put(co.url, b"a,b\n9,9\n9,9\n9,9\n9,9\n", settings=co.settings)
        rewritten.append(co.url)
        return out

    monkeypatch.setitem(facts_module.FACTS, "csv", facts_then_rewrite)
    return rewritten
