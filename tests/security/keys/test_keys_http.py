"""The key service over HTTPS: TLS with the local CA, mutual TLS, job tokens from a bearer token, the CLI."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from keyrelease_support import (
    MASTER,
    OUTSIDER,
    RESEARCHER,
    EdDSAIssuer,
    allowed_task,
    cli_env,
    keys_serve,
    other_task,
)

from xtremehub.cli import cli
from xtremehub.errors import AuthenticationFailed, ConfigError, Forbidden, KeyReleaseDenied, StalePolicy
from xtremehub.security.attest import measure
from xtremehub.security.keypolicy import KeyPolicy
from xtremehub.security.keyservice import KeyService
from xtremehub.security.keyservice_client import KeyClient, ServiceKeys
from xtremehub.security.keyservice_http import KeyServer
from xtremehub.security.keyservice_store import MasterKey
from xtremehub.security.pki import PKIFiles, init_pki

DATA_KEY = b"\x07" * 32


@pytest.fixture
def pki(tmp_path: Path) -> PKIFiles:
    return init_pki(tmp_path / "tls", hosts=["localhost", "127.0.0.1"])


@pytest.fixture
def https(service: KeyService, pki: PKIFiles) -> Iterator[KeyServer]:
    with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key) as server:
        yield server


@pytest.fixture
def mtls(service: KeyService, pki: PKIFiles) -> Iterator[KeyServer]:
    with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key, client_ca=pki.ca_cert) as server:
        yield server


def token_for(service: KeyService, **kw: Any) -> str:
    return service.issue_job_token(
        identity=RESEARCHER, job_id="job-h", datasets=kw.get("datasets", ["genomes"]), purpose="research"
    )


def test_release_over_https(https: KeyServer, service: KeyService, pki: PKIFiles) -> None:
    assert https.url.startswith("https://127.0.0.1:")
    keys = ServiceKeys(KeyClient(https.url, ca_file=pki.ca_cert), token_for(service), allowed_task)
    assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY


def test_denials_cross_https_as_typed_errors(https: KeyServer, service: KeyService, pki: PKIFiles) -> None:
    client = KeyClient(https.url, ca_file=pki.ca_cert)
    with pytest.raises(KeyReleaseDenied, match="code measurement"):
        ServiceKeys(client, token_for(service), other_task).wrap("genomes", DATA_KEY)
    with pytest.raises(KeyReleaseDenied, match="not granted dataset 'proteomes'"):
        ServiceKeys(client, token_for(service), allowed_task).wrap("proteomes", DATA_KEY)
    with pytest.raises(AuthenticationFailed, match="malformed"):
        ServiceKeys(client, "garbage", allowed_task).wrap("genomes", DATA_KEY)


def test_a_client_without_the_ca_is_refused(https: KeyServer, service: KeyService) -> None:
    keys = ServiceKeys(KeyClient(https.url), token_for(service), allowed_task)  # system CAs only
    with pytest.raises(KeyReleaseDenied, match=r"TLS with the key service .* failed: SSLCertVerificationError"):
        keys.wrap("genomes", DATA_KEY)


def test_mutual_tls_requires_a_client_certificate(mtls: KeyServer, service: KeyService, pki: PKIFiles) -> None:
    without = ServiceKeys(KeyClient(mtls.url, ca_file=pki.ca_cert), token_for(service), allowed_task)
    with pytest.raises(KeyReleaseDenied, match="key service"):
        without.wrap("genomes", DATA_KEY)
    client = KeyClient(mtls.url, ca_file=pki.ca_cert, cert_file=pki.client_cert, key_file=pki.client_key)
    keys = ServiceKeys(client, token_for(service), allowed_task)
    assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY


def test_job_tokens_from_a_bearer_token_over_https(
    https: KeyServer, service: KeyService, pki: PKIFiles, issuer: EdDSAIssuer
) -> None:
    client = KeyClient(https.url, ca_file=pki.ca_cert)
    bearer = issuer.mint("alice", ["research"])
    token = client.issue_job_token(bearer, "job-b", ["genomes"], "research")
    keys = ServiceKeys(client, token, allowed_task)
    assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY
    with pytest.raises(AuthenticationFailed, match="signature"):
        client.issue_job_token(EdDSAIssuer().mint("alice", ["research"]), "job-b", ["genomes"], "research")
    request = urllib.request.Request(
        https.url + "/v1/job-tokens", data=b'{"job_id": "j", "datasets": []}', method="POST"
    )
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=ctx)
    assert err.value.code == 401
    assert json.loads(err.value.read())["error"] == "AuthenticationFailed"
    err.value.close()


def test_bad_requests_get_400_not_a_traceback(https: KeyServer, pki: PKIFiles) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    for body in (b"not json", b"[1]", b'{"dataset": "genomes"}'):
        request = urllib.request.Request(https.url + "/v1/release", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, context=ctx)
        assert err.value.code == 403
        answer = json.loads(err.value.read())
        err.value.close()
        assert answer["error"] == "KeyReleaseDenied"
        assert "Traceback" not in answer["message"]
    with urllib.request.urlopen(https.url + "/v1/health", context=ctx) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}


def test_plain_http_only_on_loopback_unless_insecure(service: KeyService) -> None:
    with pytest.raises(ConfigError, match=r"refusing to serve keys on 0\.0\.0\.0 without TLS"):
        KeyServer(service, host="0.0.0.0")
    server = KeyServer(service, host="0.0.0.0", insecure=True)
    server.stop()
    with KeyServer(service) as plain:
        keys = ServiceKeys(KeyClient(plain.url), token_for(service), allowed_task)
        assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY


def test_the_cli_creates_rotates_and_serves_with_mutual_tls(tmp_path: Path, pki: PKIFiles) -> None:
    env = cli_env(tmp_path)
    runner = CliRunner()

    def invoke(*args) -> Any:
        return runner.invoke(cli, ["keys", "--dir", str(tmp_path / "k"), *args], env=env)

    policy = tmp_path / "genomes.toml"
    lists = 'roles = ["research"]\npurposes = ["research"]\n'
    policy.write_text(f'dataset = "genomes"\n{lists}measurements = ["{measure(allowed_task)}"]\n')
    created = invoke("create", str(policy))
    assert created.exit_code == 0, created.output
    assert created.output == "dataset genomes: KEK version 1, policy version 1\n"
    shown = json.loads(invoke("policy", "genomes").output)
    assert shown["version"] == 1
    stale = tmp_path / "stale.toml"
    stale.write_text(policy.read_text() + 'version = 2\npredecessor = "sha256:00"\n')
    refused = invoke("policy", "genomes", "--set", str(stale))
    assert refused.exit_code != 0
    assert "not based on the current policy" in str(refused.exception)
    assert invoke("rotate", "genomes").output == "dataset genomes: KEK version 2\n"
    audit_log = tmp_path / "audit.jsonl"
    options = ("--tls-dir", str(pki.directory), "--mtls", "--audit-log", str(audit_log))
    with keys_serve(tmp_path / "k", *options, env=env, expect="(mutual TLS)") as served:
        url = served.url
        assert url.startswith("https://127.0.0.1:")
        service = KeyService(tmp_path / "k", MasterKey(MASTER))
        client = KeyClient(url, ca_file=pki.ca_cert, cert_file=pki.client_cert, key_file=pki.client_key)
        keys = ServiceKeys(client, token_for(service), allowed_task)
        blob = keys.wrap("genomes", DATA_KEY)
        assert blob[4:8] == (2).to_bytes(4, "big")
        assert keys.unwrap("genomes", blob) == DATA_KEY
        client.close()
    assert served.returncode == 0, served.stderr
    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert [r["outcome"] for r in records if r["event"] == "key.release"] == ["allow"]
    assert MASTER.hex() not in served.stderr


def test_measure_command_prints_the_measurement() -> None:
    result = CliRunner().invoke(cli, ["keys", "measure", "keyrelease_support:allowed_task"])
    assert result.output.strip() == measure(allowed_task)
    bad = CliRunner().invoke(cli, ["keys", "measure", "nonsense"])
    assert isinstance(bad.exception, ConfigError)


def test_no_token_or_key_in_server_logs_or_http_errors(
    https: KeyServer, service: KeyService, pki: PKIFiles, issuer: EdDSAIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = KeyClient(https.url, ca_file=pki.ca_cert)
    bearer = issuer.mint("alice", ["research"])
    token = client.issue_job_token(bearer, "job-l", ["genomes"], "research")
    keys = ServiceKeys(client, token, allowed_task)
    keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY))
    errors = []
    for attempt in (
        lambda: ServiceKeys(client, token, other_task).wrap("genomes", DATA_KEY),
        lambda: ServiceKeys(client, token + "A", allowed_task).wrap("genomes", DATA_KEY),
        lambda: client.issue_job_token(bearer + "A", "job-l", ["genomes"], "research"),
    ):
        with pytest.raises((KeyReleaseDenied, AuthenticationFailed)) as err:
            attempt()
        errors.append(f"{err.value!s} {err.value!r}")
    client.close()
    text = caplog.text + "\n".join(errors)
    assert "POST /v1/release" in caplog.text  # the request log is there, without bodies or headers
    kek = service.store.kek("genomes", 1)
    for secret in (token, bearer, token.split(".")[2], bearer.split(".")[2], kek.hex(), base64.b64encode(kek).decode()):
        assert secret not in text


def test_ipv6_loopback_and_hostname_verification(service: KeyService, pki: PKIFiles, tmp_path: Path) -> None:
    with KeyServer(service, host="::1", cert_file=pki.server_cert, key_file=pki.server_key) as server:
        keys = ServiceKeys(KeyClient(server.url, ca_file=pki.ca_cert), token_for(service), allowed_task)
        with pytest.raises(KeyReleaseDenied, match="SSLCertVerificationError"):  # ::1 is not in that certificate
            keys.wrap("genomes", DATA_KEY)
    pki = init_pki(tmp_path / "v6", hosts=["::1"])
    with KeyServer(service, host="::1", cert_file=pki.server_cert, key_file=pki.server_key) as server:
        assert server.url.startswith("https://[::1]:")
        keys = ServiceKeys(KeyClient(server.url, ca_file=pki.ca_cert), token_for(service), allowed_task)
        assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY
        keys.source.close()  # type: ignore[attr-defined]


def test_the_client_reconnects_after_the_server_closed_an_idle_connection(
    service: KeyService, pki: PKIFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xtremehub.security import keyservice_http

    monkeypatch.setattr(keyservice_http._Handler, "timeout", 0.2)
    with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key) as server:
        client = KeyClient(server.url, ca_file=pki.ca_cert)
        token = token_for(service, datasets=["genomes", "proteomes"])
        ServiceKeys(client, token, allowed_task).wrap("genomes", DATA_KEY)
        time.sleep(0.6)  # the server drops the kept-alive connection
        assert ServiceKeys(client, token, allowed_task).wrap("proteomes", DATA_KEY)[:4] == b"xkw1"
        client.close()


def test_remote_administration_needs_an_admin_role(
    make_service: Callable[..., KeyService], pki: PKIFiles, issuer: EdDSAIssuer, audit: list[dict[str, Any]]
) -> None:
    service = make_service(admin_roles=["key-admin"])
    with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key) as server:
        client = KeyClient(server.url, ca_file=pki.ca_cert)
        admin, alice = issuer.mint("root", ["key-admin"]), issuer.mint("alice", ["research"])
        new = KeyPolicy("images", roles=frozenset({"research"}), purposes=frozenset({"research"}))
        with pytest.raises(Forbidden, match="'alice' may not administer the key of 'images'"):
            client.put_policy(alice, new)
        assert audit[-1] | {"at": 0} == {
            "event": "key.policy",
            "outcome": "deny",
            "at": 0,
            "dataset": "images",
            "by": "alice",
            "reason": "'alice' may not administer the key of 'images' (admin roles: key-admin)",
        }
        assert client.put_policy(admin, new) == 1
        assert service.policy("images") == new
        with pytest.raises(StalePolicy, match="not based on the current policy"):
            client.put_policy(admin, dataclasses.replace(new.successor(), version=5))
        assert client.put_policy(admin, new.successor(measurements=frozenset({measure(allowed_task)}))) == 1
        assert client.rotate(admin, "images") == 2
        with pytest.raises(Forbidden):
            client.rotate(alice, "images")
        with pytest.raises(AuthenticationFailed, match="signature"):
            client.rotate(EdDSAIssuer().mint("root", ["key-admin"]), "images")
        client.close()
    assert service.store.versions("images") == [1, 2]


def test_client_configuration_errors_are_typed() -> None:
    with pytest.raises(ConfigError, match="must be https://HOST:PORT"):
        KeyClient("ftp://keys.lab")
    with pytest.raises(KeyReleaseDenied, match=r"key service https://127\.0\.0\.1:1 unreachable"):
        KeyClient("https://127.0.0.1:1").issue_job_token("t", "j", ["genomes"], None)


def test_concurrent_valid_and_invalid_clients(https: KeyServer, service: KeyService, pki: PKIFiles) -> None:
    """Eight threads share one client: the valid jobs all get keys, the invalid ones never do."""
    from concurrent.futures import ThreadPoolExecutor

    client = KeyClient(https.url, ca_file=pki.ca_cert)
    valid = token_for(service)
    outsider = service.issue_job_token(identity=OUTSIDER, job_id="job-x", datasets=["genomes"], purpose="research")

    def attempt(i: int) -> str:
        kind = ("valid", "tampered-code", "outsider", "forged")[i % 4]
        token = {"outsider": outsider, "forged": valid[:-2] + "AA"}.get(kind, valid)
        code = other_task if kind == "tampered-code" else allowed_task
        try:
            keys = ServiceKeys(client, token, code)
            ok = keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY
            return f"{kind}:{'ok' if ok else 'wrong'}"
        except (KeyReleaseDenied, AuthenticationFailed) as exc:
            return f"{kind}:{type(exc).__name__}"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(64)))
    client.close()
    assert sorted(set(outcomes)) == [
        "forged:AuthenticationFailed",
        "outsider:KeyReleaseDenied",
        "tampered-code:KeyReleaseDenied",
        "valid:ok",
    ]
    assert outcomes.count("valid:ok") == 16
