"""FunctionExecutor(token=/credentials=): one job token per job, derived from the submitter's token.

Real parts: an HTTPS key service (``KeyServer``) on loopback and local worker processes. The
workers read ``XHUB_JOB_TOKEN`` at key release; the audit log names the executor's own job ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from keyrelease_support import EdDSAIssuer

from xtremehub import FunctionExecutor
from xtremehub.config import EncryptionSettings, Settings
from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security.attest import measure
from xtremehub.security.jobcreds import JobCredentials
from xtremehub.security.keyservice import KeyService
from xtremehub.security.keyservice_client import KeyClient, ServiceKeys
from xtremehub.security.keyservice_http import KeyServer
from xtremehub.security.pki import init_pki

DATA_KEYS = [bytes([i]) * 32 for i in range(4)]


def _task() -> Callable[..., Any]:
    def unwrap(keys: Any, blob: bytes) -> tuple[str, list[str]]:
        import hashlib
        import os

        seen = [value for name, value in os.environ.items() if name.startswith("XHUB_")]
        return hashlib.sha256(keys.unwrap("genomes", blob)).hexdigest(), seen

    return unwrap


@pytest.fixture
def secured(make_service: Callable[..., KeyService], tmp_path: Path) -> Any:
    task = _task()
    service = make_service()
    policy = service.policy("genomes")
    assert policy is not None
    service.put_policy(policy.successor(measurements=frozenset({measure(task)})))
    pki = init_pki(tmp_path / "tls", hosts=["127.0.0.1"])
    with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key) as server:
        yield task, service, server, pki


def test_each_job_gets_its_own_job_token_and_workers_never_see_the_submitters(
    secured: Any, issuer: EdDSAIssuer, audit: list[dict[str, Any]]
) -> None:
    task, service, server, pki = secured
    submitter = issuer.mint("alice", ["research"])
    client = KeyClient(server.url, ca_file=pki.ca_cert)
    blobs = [
        ServiceKeys(
            service, service.issue_job_token(submitter, job_id="wrap", datasets=["genomes"], purpose="research"), task
        ).wrap("genomes", k)
        for k in DATA_KEYS
    ]
    keys = ServiceKeys(client, None, task)  # no token inside: the worker reads XHUB_JOB_TOKEN
    source = f"keyservice://127.0.0.1:{server.port}?ca={pki.ca_cert}"
    settings = Settings(encryption=EncryptionSettings(keys=source, dataset="genomes"))
    creds = JobCredentials.from_settings(submitter, settings, purpose="research")
    with FunctionExecutor("local", workers=2, settings=settings, credentials=creds, progress=False) as fexec:
        first = fexec.get_result(fexec.map(task, [(keys, b) for b in blobs]))
        second = fexec.get_result(fexec.map(task, [(keys, b) for b in blobs[:1]]))
        job_ids = [f"{fexec.executor_id}-M000", f"{fexec.executor_id}-M001"]
    assert [d for d, _ in first] == [hashlib.sha256(k).hexdigest() for k in DATA_KEYS]
    assert second[0][0] == hashlib.sha256(DATA_KEYS[0]).hexdigest()
    for _, env in first + second:
        assert submitter not in env
        assert any(v.startswith("xjt1.") for v in env)
    issued = [r for r in audit if r["event"] == "job_token.issued" and r.get("job") in job_ids]
    assert [r["job"] for r in issued] == job_ids
    assert all(r["subject"] == "alice" and r["purpose"] == "research" for r in issued)
    released = {r["job"] for r in audit if r["event"] == "key.release" and r["outcome"] == "allow"}
    assert set(job_ids) <= released
    client.close()


def test_an_invalid_submitter_token_fails_the_map_before_any_call_runs(
    secured: Any, issuer: EdDSAIssuer, audit: list[dict[str, Any]]
) -> None:
    task, service, _, _ = secured
    expired = issuer.mint("alice", ["research"], lifetime=-10)
    creds = JobCredentials(expired, service, ("genomes",), "research")
    with FunctionExecutor("local", workers=1, credentials=creds, progress=False) as fexec:
        with pytest.raises(AuthenticationFailed, match="expired"):
            fexec.map(task, [(None, b"")])
        assert fexec.futures == []
    assert audit[-1]["event"] == "job_token.issued"
    assert audit[-1]["outcome"] == "deny"


def test_token_without_a_key_service_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a key service"):
        FunctionExecutor("local", workers=1, token="abc", settings=Settings(), progress=False)
    with pytest.raises(ConfigError, match="not both"):
        FunctionExecutor("local", workers=1, token="abc", credentials=object(), progress=False)  # type: ignore[arg-type]


class _Minter:
    def issue_job_token(self, bearer: str, *, job_id: str, datasets: Any, purpose: str | None) -> str:
        return "jobtok-" + job_id


def _snoop(_: int) -> tuple[str | None, bool]:
    """What a worker can find: its job token, and whether the submitter's token is anywhere in memory."""
    import gc
    import os

    from xtremehub.security.jobcreds import JobCredentials

    leaked = any(isinstance(o, JobCredentials) for o in gc.get_objects())
    leaked |= any(isinstance(o, str) and o == "SUBMITTER-" + "SECRET" for o in gc.get_objects())
    return os.environ.get("XHUB_JOB_TOKEN"), leaked


def test_forked_local_workers_do_not_inherit_the_submitters_token(tmp_path: Path) -> None:
    creds = JobCredentials("SUBMITTER-" + "SECRET", _Minter())
    settings = Settings(home=tmp_path)
    with FunctionExecutor("local", workers=1, settings=settings, credentials=creds, progress=False) as fexec:
        ((job_token, leaked),) = fexec.get_result(fexec.map(_snoop, [1]))
        assert fexec.backend._start_method == "forkserver"  # type: ignore[attr-defined]
    assert job_token == f"jobtok-{fexec.executor_id}-M000"
    assert not leaked
