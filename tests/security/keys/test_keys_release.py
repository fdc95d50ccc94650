"""Key release through the embedded key service: the protocol, and each attack refused with a typed error."""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from keyrelease_support import (
    MASTER,
    OUTSIDER,
    RESEARCHER,
    Clock,
    EdDSAIssuer,
    allowed_task,
    genomes_policy,
    other_task,
)

from xtremehub.errors import (
    AuthenticationFailed,
    ConfigError,
    Forbidden,
    IntegrityError,
    KeyReleaseDenied,
    StalePolicy,
)
from xtremehub.security.attest import Evidence, SoftwareAttester, measure
from xtremehub.security.authz import AccessRequest, Action, Decision
from xtremehub.security.keypolicy import KeyPolicy
from xtremehub.security.keyservice import KeyService, ReleaseRequest, ReleaseResponse, ReplayCache
from xtremehub.security.keyservice_client import ServiceKeys, blob_version, fetch_kek, rewrap
from xtremehub.security.keyservice_store import MasterKey

DATA_KEY = bytes(range(32))


def job_token(service: KeyService, who: Any = RESEARCHER, datasets: tuple[str, ...] = ("genomes",), **kw: Any) -> str:
    return service.issue_job_token(
        identity=who, job_id=kw.pop("job_id", "job-1"), datasets=datasets, purpose=kw.pop("purpose", "research")
    )


class Recorder:
    """A transport that keeps every request it forwards (to replay or tamper with them)."""

    def __init__(self, service: KeyService) -> None:
        self.service, self.requests = service, list[ReleaseRequest]()

    def release(self, request: ReleaseRequest) -> ReleaseResponse:
        self.requests.append(request)
        return self.service.release(request)


def test_the_allowed_job_wraps_and_unwraps_and_each_release_is_audited(
    service: KeyService, audit: list[dict[str, Any]]
) -> None:
    keys = ServiceKeys(service, job_token(service), SoftwareAttester(allowed_task))
    wrapped = keys.wrap("genomes", DATA_KEY)
    assert blob_version(wrapped) == 1
    assert DATA_KEY not in wrapped
    assert keys.unwrap("genomes", wrapped) == DATA_KEY
    assert keys.fetched == 1  # one release for both calls
    releases = [r for r in audit if r["event"] == "key.release"]
    assert len(releases) == 1
    assert releases[0] | {"at": 0} == {
        "event": "key.release",
        "outcome": "allow",
        "at": 0,
        "dataset": "genomes",
        "version": 1,
        "subject": "alice",
        "job": "job-1",
        "purpose": "research",
        "measurement": measure(allowed_task),
    }


def test_a_callable_is_measured_with_the_software_attester(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service), allowed_task)
    assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY


def test_tampered_code_is_refused(service: KeyService, audit: list[dict[str, Any]]) -> None:
    keys = ServiceKeys(service, job_token(service), SoftwareAttester(other_task))
    with pytest.raises(KeyReleaseDenied, match=r"code measurement sha256:.* is not allowed .*'genomes'"):
        keys.wrap("genomes", DATA_KEY)
    assert audit[-1]["outcome"] == "deny"
    assert "code measurement" in audit[-1]["reason"]


def test_a_forged_measurement_not_bound_to_the_request_is_refused(service: KeyService) -> None:
    class Forger:
        """Claims the allowed measurement, but binds it to another request."""

        def attest(self, report_data: bytes) -> Evidence:
            return Evidence("software", measure(allowed_task), os.urandom(32).hex())

    keys = ServiceKeys(service, job_token(service), Forger())
    with pytest.raises(KeyReleaseDenied, match="not bound to this request"):
        keys.wrap("genomes", DATA_KEY)


def test_an_edited_measurement_is_refused(service: KeyService) -> None:
    class Editor:
        def attest(self, report_data: bytes) -> Evidence:
            good = measure(allowed_task)
            return Evidence("software", good[:-4] + "beef", report_data.hex())

    with pytest.raises(KeyReleaseDenied, match="code measurement"):
        ServiceKeys(service, job_token(service), Editor()).wrap("genomes", DATA_KEY)


def test_unknown_attestation_kind_is_refused(service: KeyService) -> None:
    class Quote:
        def attest(self, report_data: bytes) -> Evidence:
            return Evidence("sgx-dcap", measure(allowed_task), report_data.hex(), quote="AAAA")

    with pytest.raises(KeyReleaseDenied, match="'sgx-dcap' is not accepted"):
        ServiceKeys(service, job_token(service), Quote()).wrap("genomes", DATA_KEY)


def test_a_replayed_nonce_is_refused(service: KeyService, audit: list[dict[str, Any]]) -> None:
    recorder = Recorder(service)
    keys = ServiceKeys(recorder, job_token(service), SoftwareAttester(allowed_task))
    keys.wrap("genomes", DATA_KEY)
    with pytest.raises(KeyReleaseDenied, match="nonce replayed"):
        service.release(recorder.requests[0])
    assert audit[-1] | {"at": 0, "reason": ""} == {
        "event": "key.release",
        "outcome": "deny",
        "at": 0,
        "reason": "",
        "dataset": "genomes",
        "version": None,
        "subject": "alice",
        "job": "job-1",
        "purpose": "research",
    }


def test_a_stale_timestamp_and_a_short_nonce_are_refused(service: KeyService) -> None:
    recorder = Recorder(service)
    ServiceKeys(recorder, job_token(service), allowed_task).wrap("genomes", DATA_KEY)
    request = recorder.requests[0]
    old = dataclasses.replace(request, nonce=os.urandom(32), timestamp=request.timestamp - 3600)
    with pytest.raises(KeyReleaseDenied, match="not fresh"):
        service.release(old)
    short = dataclasses.replace(request, nonce=b"1234")
    with pytest.raises(KeyReleaseDenied, match="at least 16 random bytes"):
        service.release(short)


def test_a_release_for_another_jobs_dataset_is_refused(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service, datasets=("genomes",)), allowed_task)
    with pytest.raises(KeyReleaseDenied, match="job 'job-1' was not granted dataset 'proteomes'"):
        keys.wrap("proteomes", DATA_KEY)
    other_job = ServiceKeys(service, job_token(service, datasets=("proteomes",), job_id="job-2"), allowed_task)
    assert other_job.unwrap("proteomes", other_job.wrap("proteomes", DATA_KEY)) == DATA_KEY


def test_a_wrong_purpose_is_refused(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service, purpose="marketing"), allowed_task)
    with pytest.raises(KeyReleaseDenied, match="purpose 'marketing' is not allowed"):
        keys.wrap("genomes", DATA_KEY)


def test_an_identity_without_role_or_subject_is_refused(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service, who=OUTSIDER), allowed_task)
    with pytest.raises(KeyReleaseDenied, match="'mallory' is neither a subject nor in a role"):
        keys.wrap("genomes", DATA_KEY)


def test_a_listed_subject_is_admitted_without_the_role(service: KeyService) -> None:
    service.put_policy(service.policy("genomes").successor(subjects=frozenset({"mallory"})))  # type: ignore[union-attr]
    keys = ServiceKeys(service, job_token(service, who=OUTSIDER), allowed_task)
    assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY


def test_an_expired_job_token_is_refused(make_service: Callable[..., KeyService], audit: list[dict[str, Any]]) -> None:
    clock = Clock()
    service = make_service(clock=clock, job_token_ttl=60)
    keys = ServiceKeys(service, job_token(service), allowed_task)
    clock.now += 61 + service.jobs.leeway
    with pytest.raises(AuthenticationFailed, match="job token of job 'job-1' expired"):
        keys.wrap("genomes", DATA_KEY)
    assert audit[-1]["outcome"] == "deny"
    assert "subject" not in audit[-1]


def test_a_job_token_never_outlives_the_submitters_token(service: KeyService) -> None:
    short = dataclasses.replace(RESEARCHER, expires_at=service.jobs._clock() + 5)
    grant = service.jobs.verify(job_token(service, who=short))
    assert grant.expires_at == short.expires_at


def test_a_forged_job_token_is_refused(service: KeyService) -> None:
    token = job_token(service)
    prefix, body, mac = token.split(".")
    claims = base64.urlsafe_b64decode(body + "==").replace(b'"genomes"', b'"proteome"')
    forged = f"{prefix}.{base64.urlsafe_b64encode(claims).rstrip(b'=').decode()}.{mac}"
    with pytest.raises(AuthenticationFailed, match="signature is invalid"):
        ServiceKeys(service, forged, allowed_task).wrap("genomes", DATA_KEY)
    with pytest.raises(AuthenticationFailed, match="malformed"):
        ServiceKeys(service, "not-a-token", allowed_task).wrap("genomes", DATA_KEY)
    other = KeyService(service.store.directory.parent / "other", MasterKey(b"O" * 32))
    with pytest.raises(AuthenticationFailed, match="signature is invalid"):  # another service's token
        other.jobs.verify(token)


def test_a_job_token_is_derived_from_a_validated_submitter_token(service: KeyService, issuer: EdDSAIssuer) -> None:
    token = service.issue_job_token(
        issuer.mint("alice", ["research"]), job_id="j", datasets=["genomes"], purpose="research"
    )
    assert service.jobs.verify(token).identity.subject == "alice"
    forged = EdDSAIssuer().mint("alice", ["research"])  # signed by another key
    with pytest.raises(AuthenticationFailed, match="signature"):
        service.issue_job_token(forged, job_id="j", datasets=["genomes"], purpose="research")
    with pytest.raises(AuthenticationFailed, match="expired"):
        service.issue_job_token(
            issuer.mint("alice", ["research"], lifetime=-10), job_id="j", datasets=["genomes"], purpose="research"
        )


def test_a_stale_policy_update_is_refused(service: KeyService, audit: list[dict[str, Any]]) -> None:
    current = service.policy("genomes")
    assert current is not None
    assert current.version == 1
    first = current.successor(purposes=frozenset({"research", "clinical"}))
    concurrent = current.successor(purposes=frozenset())
    service.put_policy(first)
    with pytest.raises(
        StalePolicy, match=r"version 2, predecessor sha256:.* not based on the current policy: version 2"
    ):
        service.put_policy(concurrent)
    assert service.policy("genomes") == first
    assert audit[-1]["event"] == "key.policy"
    assert audit[-1]["outcome"] == "deny"
    with pytest.raises(StalePolicy):  # a "first" document over an existing one
        service.put_policy(genomes_policy())
    with pytest.raises(StalePolicy):  # skipping a version
        service.put_policy(dataclasses.replace(first.successor(), version=9))


def test_a_policy_update_takes_effect_for_the_next_release(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service), other_task)
    with pytest.raises(KeyReleaseDenied):
        keys.wrap("genomes", DATA_KEY)
    policy = service.policy("genomes")
    assert policy is not None
    service.put_policy(policy.successor(measurements=policy.measurements | {measure(other_task)}))
    assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY


def test_rotation_keeps_old_objects_readable_and_rewrap_moves_them(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service), allowed_task)
    old = [keys.wrap("genomes", bytes([i]) * 32) for i in range(3)]
    assert service.rotate("genomes") == 2
    fresh = ServiceKeys(service, job_token(service, job_id="job-2"), allowed_task)
    new_blob = fresh.wrap("genomes", DATA_KEY)
    assert blob_version(new_blob) == 2
    assert [fresh.unwrap("genomes", b) for b in old] == [bytes([i]) * 32 for i in range(3)]  # old still readable
    moved = rewrap(keys, "genomes", old)  # the long-lived object learns the new version too
    assert [blob_version(b) for b in moved] == [2, 2, 2]
    assert [fresh.unwrap("genomes", b) for b in moved] == [bytes([i]) * 32 for i in range(3)]
    assert service.store.versions("genomes") == [1, 2]


def test_tampered_wrapped_keys_and_sealed_answers_fail_integrity(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service, datasets=("genomes", "proteomes")), allowed_task)
    blob = bytearray(keys.wrap("genomes", DATA_KEY))
    blob[-1] ^= 1
    with pytest.raises(IntegrityError, match="'genomes' \\(KEK version 1\\) failed authentication"):
        keys.unwrap("genomes", bytes(blob))
    with pytest.raises(IntegrityError, match="not a wrapped data key"):
        keys.unwrap("genomes", b"junk")
    with pytest.raises(IntegrityError):  # another dataset's blob
        keys.unwrap("proteomes", keys.wrap("genomes", DATA_KEY))

    class Tamperer(Recorder):
        def release(self, request: ReleaseRequest) -> ReleaseResponse:
            answer = super().release(request)
            return dataclasses.replace(answer, sealed=answer.sealed[:-1] + bytes([answer.sealed[-1] ^ 1]))

    with pytest.raises(IntegrityError, match="sealed key does not open"):
        fetch_kek(Tamperer(service), job_token(service), "genomes", None, SoftwareAttester(allowed_task))


def test_an_authorizer_decides_who_and_purpose_when_given(make_service: Callable[..., KeyService]) -> None:
    asked: list[AccessRequest] = []

    class OnlyClinical:
        def decide(self, request: AccessRequest) -> Decision:
            asked.append(request)
            return Decision(request.purpose == "clinical", "purpose must be clinical", "p1")

        def check(self, request: AccessRequest) -> Decision:
            decision = self.decide(request)
            if not decision.allowed:
                raise Forbidden(f"{request.action} on {request.resource.name}: {decision.reason}")
            return decision

    service = make_service(authorizer=OnlyClinical())
    with pytest.raises(KeyReleaseDenied, match="purpose must be clinical"):
        ServiceKeys(service, job_token(service), allowed_task).wrap("genomes", DATA_KEY)
    keys = ServiceKeys(service, job_token(service, purpose="clinical"), allowed_task)  # not in the lists
    assert keys.unwrap("genomes", keys.wrap("genomes", DATA_KEY)) == DATA_KEY
    assert asked[-1].action is Action.READ
    assert asked[-1].resource.kind == "key"
    assert asked[-1].resource.name == "genomes"
    assert asked[-1].identity.subject == "alice"
    with pytest.raises(Forbidden):  # policy changes are ADMIN requests
        service.rotate("genomes", by=RESEARCHER)


def test_unknown_datasets_and_versions_are_refused(service: KeyService) -> None:
    keys = ServiceKeys(service, job_token(service, datasets=("genomes", "absent")), allowed_task)
    with pytest.raises(KeyReleaseDenied, match="'absent' has no key policy"):
        keys.wrap("absent", DATA_KEY)
    with pytest.raises(KeyReleaseDenied, match="no KEK version 7"):
        fetch_kek(service, job_token(service), "genomes", 7, SoftwareAttester(allowed_task))
    with pytest.raises(ConfigError, match="dataset name"):
        service.issue_job_token(identity=RESEARCHER, job_id="j", datasets=["../etc"], purpose="research")


def test_keks_persist_sealed_under_the_master_key(service: KeyService, tmp_path: Path) -> None:
    blob = ServiceKeys(service, job_token(service), allowed_task).wrap("genomes", DATA_KEY)
    again = KeyService(tmp_path / "keys", MasterKey(MASTER))
    assert ServiceKeys(again, job_token(again), allowed_task).unwrap("genomes", blob) == DATA_KEY
    sealed = next((tmp_path / "keys").rglob("kek-1.sealed"))
    assert oct(sealed.stat().st_mode & 0o777) == "0o600"
    assert service.store.kek("genomes", 1) not in sealed.read_bytes()
    wrong = KeyService(tmp_path / "keys", MasterKey(b"W" * 32))
    with pytest.raises(IntegrityError, match="another master key, or the file was altered"):
        wrong.store.kek("genomes", 1)


def test_master_key_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = MasterKey.generate(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert MasterKey.from_env({"XHUB_MASTER_KEY_FILE": str(path)}).derive("x") == key.derive("x")
    env = {"XHUB_MASTER_KEY": base64.b64encode(MASTER).decode()}
    assert MasterKey.from_env(env).derive("x") == MasterKey(MASTER).derive("x")
    assert MasterKey.from_env({"XHUB_MASTER_KEY": MASTER.hex()}).derive("x") == MasterKey(MASTER).derive("x")
    assert repr(key) == "MasterKey(<hidden>)"
    with pytest.raises(ConfigError, match="no master key"):
        MasterKey.from_env({})
    with pytest.raises(ConfigError, match="XHUB_MASTER_KEY: master key must be 32 bytes") as err:
        MasterKey.from_env({"XHUB_MASTER_KEY": "c2hvcnQ="})
    assert "c2hvcnQ" not in str(err.value)
    with pytest.raises(ConfigError, match="exists"):
        MasterKey.generate(path)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(key)


def test_the_replay_cache_is_bounded_and_forgets_expired_nonces() -> None:
    clock = Clock()
    cache = ReplayCache(capacity=3, ttl=10, clock=clock)
    assert [cache.add(n) for n in (b"a", b"b", b"c", b"d")] == [True, True, True, None]
    assert cache.add(b"a") is False
    clock.now += 11
    assert cache.add(b"a") is True
    assert len(cache) == 1


def test_key_policies_parse_from_toml_and_name_bad_fields(tmp_path: Path) -> None:
    path = tmp_path / "genomes.toml"
    path.write_text('dataset = "genomes"\nroles = ["research"]\npurposes = ["research"]\nmeasurements = []\n')
    assert KeyPolicy.load(path) == KeyPolicy("genomes", roles=frozenset({"research"}), purposes=frozenset({"research"}))
    path.write_text('dataset = "genomes"\nroles = "research"\n')
    with pytest.raises(ConfigError, match=r"genomes\.toml: field 'roles' must be a list of strings"):
        KeyPolicy.load(path)
    path.write_text('dataset = "genomes"\nowner = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['owner'\]"):
        KeyPolicy.load(path)


def test_no_key_token_or_master_key_in_logs_errors_or_audit(
    make_service: Callable[..., KeyService], audit: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    service = make_service(clock=clock)
    token = job_token(service)
    keys = ServiceKeys(service, token, allowed_task)
    blob = keys.wrap("genomes", DATA_KEY)
    service.rotate("genomes")
    messages: list[str] = [repr(keys), repr(service), repr(service.jobs)]
    attempts: list[Callable[[], object]] = [
        lambda: ServiceKeys(service, token, other_task).wrap("genomes", DATA_KEY),
        lambda: ServiceKeys(service, token, allowed_task).wrap("proteomes", DATA_KEY),
        lambda: ServiceKeys(service, job_token(service, purpose="x"), allowed_task).wrap("genomes", DATA_KEY),
        lambda: ServiceKeys(service, token + "x", allowed_task).wrap("genomes", DATA_KEY),
        lambda: keys.unwrap("genomes", blob[:-1] + b"\x00"),
        lambda: service.put_policy(genomes_policy()),
    ]
    for attempt in attempts:
        with pytest.raises(Exception) as err:  # noqa: PT011 - each is a different typed error
            attempt()
        messages += [str(err.value), repr(err.value), "".join(map(str, err.traceback))]
    clock.now += 10_000
    with pytest.raises(AuthenticationFailed) as expired:
        ServiceKeys(service, token, allowed_task).wrap("genomes", DATA_KEY)
    messages.append(str(expired.value))
    text = "\n".join([*messages, caplog.text, repr(audit)])
    secrets = [token, token.split(".")[1], token.split(".")[2], MASTER.decode(), MASTER.hex(), DATA_KEY.hex()]
    for version in (1, 2):
        kek = service.store.kek("genomes", version)
        secrets += [kek.hex(), base64.b64encode(kek).decode(), repr(kek)]
    for secret in secrets:
        assert secret not in text
    assert len(audit) > 8
    assert any(r["outcome"] == "deny" for r in audit)


def test_keys_from_the_environment_are_cached_per_job_token(
    service: KeyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ServiceKeys(service, None, allowed_task)  # a long-lived worker's keys, reused across jobs
    with pytest.raises(AuthenticationFailed, match=r"no job token: .* XHUB_JOB_TOKEN"):
        keys.wrap("genomes", DATA_KEY)
    monkeypatch.setenv("XHUB_JOB_TOKEN", job_token(service, datasets=("genomes",)))
    blob = keys.wrap("genomes", DATA_KEY)
    assert keys.unwrap("genomes", blob) == DATA_KEY
    monkeypatch.setenv("XHUB_JOB_TOKEN", job_token(service, datasets=("proteomes",), job_id="job-2"))
    with pytest.raises(KeyReleaseDenied, match="job 'job-2' was not granted dataset 'genomes'"):
        keys.unwrap("genomes", blob)  # the KEK cached for job-1 is not job-2's


def test_key_source_urls_name_bad_parts(tmp_path: Path) -> None:
    from xtremehub.security.keyservice_client import service_keys_from_url

    assert service_keys_from_url("keyservice+http://127.0.0.1:9?code=keyrelease_support:allowed_task").attester.attest(
        b""
    ).measurement == measure(allowed_task)
    with pytest.raises(ConfigError, match="expected keyservice://HOST:PORT"):
        service_keys_from_url("https://keys:1")
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['token'\]"):
        service_keys_from_url("keyservice://keys:1?token=abc")
    with pytest.raises(ConfigError, match="cannot load code 'nope:x'"):
        service_keys_from_url("keyservice://keys:1?code=nope:x")


def test_a_worker_forgets_its_keks_once_the_job_token_expired(
    make_service: Callable[..., KeyService], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(job_token_ttl=2)
    keys = ServiceKeys(service, job_token(service), allowed_task)
    blob = keys.wrap("genomes", DATA_KEY)
    assert keys.unwrap("genomes", blob) == DATA_KEY  # cached
    later = service.jobs._clock() + 10
    monkeypatch.setattr("xtremehub.security.keyservice_client.time.time", lambda: later)
    monkeypatch.setattr(service.jobs, "_clock", lambda: later)
    with pytest.raises(AuthenticationFailed, match="expired"):
        keys.unwrap("genomes", blob)
    assert keys.fetched == 0
