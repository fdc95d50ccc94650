"""Engines for the backend tests, each started once per session on this machine.

Each engine starts with the SeaweedFS test server's ``XHUB_S3_*`` variables in
its environment, and a config file (``XHUB_CONFIG``) with the second test
endpoint's bucket table, as a real cluster's workers would be configured:
executors and slices ship their settings without secrets, and workers complete
them from there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from xtremehub.testing.seaweedfs import SeaweedFS


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


@pytest.fixture(scope="session")
def ray_engine(seaweedfs: SeaweedFS, second_endpoint_config: Path) -> Iterator[Any]:
    """A local Ray instance (2 CPUs, no dashboard) shared by all Ray tests."""
    import ray

    quiet = {"RAY_DEDUP_LOGS": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    with environ({**seaweedfs.env(), "XHUB_CONFIG": str(second_endpoint_config), **quiet}):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
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


@pytest.fixture(scope="session")
def lithops_config() -> dict[str, Any]:
    """Lithops's localhost backend: functions run in local processes started per call."""
    return {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": None},
        "localhost": {"worker_processes": 2, "runtime": sys.executable},
    }
