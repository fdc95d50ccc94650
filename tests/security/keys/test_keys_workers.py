"""Key release inside real workers: local processes, Dask, Ray and Lithops localhost.

The driver ships a :class:`ServiceKeys` that holds only the service URL, the CA path, the job
token and the attester; each worker process measures the task it runs, asks the HTTPS key
service for the KEK and unwraps there. The audit trail shows one release per worker process;
no KEK is in what travels.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from keyrelease_support import RESEARCHER

from xtremehub import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.errors import KeyReleaseDenied
from xtremehub.security.attest import measure
from xtremehub.security.keyservice import KeyService
from xtremehub.security.keyservice_client import KeyClient, ServiceKeys
from xtremehub.security.keyservice_http import KeyServer
from xtremehub.security.pki import init_pki

BACKENDS = [
    "local",
    pytest.param("dask", marks=pytest.mark.dask),
    pytest.param("ray", marks=pytest.mark.ray),
    pytest.param("lithops", marks=[pytest.mark.lithops, pytest.mark.slow]),
]
DATA_KEYS = [bytes([i]) * 32 for i in range(6)]


def _tasks() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The task the policy allows and a tampered copy (nested: cloudpickle ships them by value)."""

    def unwrap_in_worker(keys: Any, blob: bytes) -> tuple[int, int, str, int]:
        import hashlib
        import os

        before = keys.fetched  # 0: no key came with the task
        data_key = keys.unwrap("genomes", blob)
        return os.getpid(), before, hashlib.sha256(data_key).hexdigest(), keys.fetched

    def tampered(keys: Any, blob: bytes) -> tuple[int, int, str, int]:
        import os

        return os.getpid(), 0, keys.unwrap("genomes", blob).hex(), 1  # exfiltrates the data key

    return unwrap_in_worker, tampered


@pytest.fixture
def executor(request: pytest.FixtureRequest) -> Iterator[FunctionExecutor]:
    backend = request.param
    if backend == "local":
        fexec = FunctionExecutor("local", workers=2, settings=Settings(), progress=False)
    elif backend == "lithops":
        fexec = FunctionExecutor("lithops", config=request.getfixturevalue("lithops_config"), progress=False)
    elif backend == "dask":
        fexec = FunctionExecutor("dask", client=request.getfixturevalue("dask_client"), progress=False)
    else:
        request.getfixturevalue("ray_engine")
        fexec = FunctionExecutor("ray", progress=False)
    with fexec:
        yield fexec


@pytest.mark.parametrize("executor", BACKENDS, indirect=True)
def test_keys_are_released_inside_the_workers(
    executor: FunctionExecutor,
    make_service: Callable[..., KeyService],
    audit: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    task, tampered = _tasks()
    service = make_service()
    policy = service.policy("genomes")
    assert policy is not None
    service.put_policy(policy.successor(measurements=frozenset({measure(task)})))
    pki = init_pki(tmp_path / "tls", hosts=["127.0.0.1"])
    token = service.issue_job_token(identity=RESEARCHER, job_id="job-w", datasets=["genomes"], purpose="research")
    with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key) as server:
        client = KeyClient(server.url, ca_file=pki.ca_cert)
        driver_keys = ServiceKeys(client, token, task)
        blobs = [driver_keys.wrap("genomes", k) for k in DATA_KEYS]  # the driver's own release
        keys = ServiceKeys(client, token, task)
        shipped = cloudpickle.dumps(keys)
        for version in service.store.versions("genomes"):
            assert service.store.kek("genomes", version) not in shipped
        released_before = sum(r["event"] == "key.release" and r["outcome"] == "allow" for r in audit)

        results = executor.get_result(executor.map(task, [(keys, b) for b in blobs]))

        pids = {pid for pid, _, _, _ in results}
        assert os.getpid() not in pids
        assert 0 in {before for _, before, _, _ in results}  # calls sharing one unpickled copy reuse its KEK
        assert {after for _, _, _, after in results} == {1}
        assert [digest for _, _, digest, _ in results] == [hashlib.sha256(k).hexdigest() for k in DATA_KEYS]
        worker_releases = [r for r in audit if r["event"] == "key.release"][released_before:]
        assert worker_releases
        assert all(r["outcome"] == "allow" and r["job"] == "job-w" for r in worker_releases)
        assert {r["measurement"] for r in worker_releases} == {measure(task)}
        assert len(worker_releases) <= len(DATA_KEYS)  # one per worker process (and its KEK cache)

        bad_keys = ServiceKeys(client, token, tampered)
        with pytest.raises(KeyReleaseDenied, match=r"code measurement .* not allowed"):
            executor.call_async(tampered, (bad_keys, blobs[0])).result(timeout=120)
        assert audit[-1]["outcome"] == "deny"
        client.close()
        driver_keys.source.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("executor", BACKENDS, indirect=True)
def test_a_key_source_url_opens_in_the_workers_with_the_job_token_from_their_environment(
    executor: FunctionExecutor,
    make_service: Callable[..., KeyService],
    audit: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    """The settings-based path of encrypted stores: only a URL travels; the token comes by extra_env."""
    from xtremehub.security.keyservice_client import _platform_code, service_keys_from_url

    service = make_service()
    policy = service.policy("genomes")
    assert policy is not None
    service.put_policy(policy.successor(measurements=frozenset({measure(_platform_code)})))
    pki = init_pki(tmp_path / "tls", hosts=["127.0.0.1"])
    token = service.issue_job_token(identity=RESEARCHER, job_id="job-u", datasets=["genomes"], purpose="research")

    def unwrap_from_url(source: str, blob: bytes) -> tuple[int, str]:
        import hashlib
        import os

        from xtremehub.security.keyservice_client import service_keys_from_url

        return os.getpid(), hashlib.sha256(service_keys_from_url(source).unwrap("genomes", blob)).hexdigest()

    with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key) as server:
        source = f"keyservice://127.0.0.1:{server.port}?ca={pki.ca_cert}"
        os.environ["XHUB_JOB_TOKEN"] = token
        try:
            here = service_keys_from_url(source)
            blobs = [here.wrap("genomes", k) for k in DATA_KEYS[:3]]
        finally:
            del os.environ["XHUB_JOB_TOKEN"]
        assert token not in source
        before = len(audit)
        results = executor.get_result(
            executor.map(unwrap_from_url, [(source, b) for b in blobs], extra_env={"XHUB_JOB_TOKEN": token})
        )
        assert os.getpid() not in {pid for pid, _ in results}
        assert [d for _, d in results] == [hashlib.sha256(k).hexdigest() for k in DATA_KEYS[:3]]
        worker = [r for r in audit[before:] if r["event"] == "key.release"]
        assert worker
        assert all(r["outcome"] == "allow" and r["job"] == "job-u" for r in worker)
        with pytest.raises(Exception, match="no job token"):
            executor.call_async(unwrap_from_url, (source, blobs[0])).result(timeout=120)
        here.source.close()  # type: ignore[attr-defined]
