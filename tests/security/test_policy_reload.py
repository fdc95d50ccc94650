"""Policies change: reload on change, every change audited with old/new hash, stale updates refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.errors import ConfigError, StalePolicy
from xtremehub.security.audit import AuditConfig, AuditLog, read_lines
from xtremehub.security.audit_verify import verify_log
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig
from xtremehub.security.policy_store import MANIFEST, PolicyStore, text_hash

ALLOW_ALICE = '@id("alice-read") permit(principal == XHub::User::"alice", action == XHub::Action::"read", resource);'
ALLOW_ALICE_WRITE = (
    '@id("alice-write") permit(principal == XHub::User::"alice", action == XHub::Action::"write", resource);'
)
ALICE = Identity("alice")


def records(log: AuditLog) -> list[dict[str, object]]:
    return [json.loads(line) for _, line in read_lines(log.location)]


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(AuditConfig(location=str(tmp_path / "audit.log"), signing_key=tmp_path / "keys" / "audit.key"))
    yield log
    log.close()


def request(action: Action = Action.READ) -> AccessRequest:
    return AccessRequest(ALICE, action, Resource("dataset", "lungs"))


def test_file_edits_are_reloaded_and_audited(tmp_path: Path, audit: AuditLog) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    authz = CedarAuthorizer(PolicyConfig(sources=(str(policies),), reload_interval=0), audit=audit)
    assert not authz.decide(request()).allowed

    (policies / "alice.cedar").write_text(ALLOW_ALICE)
    assert authz.reload()
    assert authz.decide(request()).policy_id == "alice-read"

    (policies / "alice.cedar").write_text(ALLOW_ALICE_WRITE)
    assert authz.reload()
    assert not authz.decide(request()).allowed
    assert authz.decide(request(Action.WRITE)).policy_id == "alice-write"

    (policies / "alice.cedar").unlink()
    assert authz.reload()
    assert not authz.decide(request(Action.WRITE)).allowed
    assert not authz.reload()  # nothing changed since

    changes = [r for r in records(audit) if r["kind"] == "policy"]
    assert [c["action"] for c in changes] == ["load", "add", "replace", "remove"]
    add, replace, remove = changes[1:]
    assert add["resource"] == f"policy:{policies}/alice.cedar"
    assert add["detail"]["old_hash"] is None  # type: ignore[index]
    assert add["detail"]["new_hash"] == text_hash(ALLOW_ALICE)  # type: ignore[index]
    assert replace["detail"]["old_hash"] == text_hash(ALLOW_ALICE)  # type: ignore[index]
    assert replace["detail"]["new_hash"] == text_hash(ALLOW_ALICE_WRITE)  # type: ignore[index]
    assert remove["detail"]["old_hash"] == text_hash(ALLOW_ALICE_WRITE)  # type: ignore[index]
    assert remove["detail"]["new_hash"] is None  # type: ignore[index]
    assert verify_log(audit.location, public_key=audit.public_key).ok


def test_automatic_reload_after_the_interval(tmp_path: Path, audit: AuditLog) -> None:
    authz = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path / "p"),), reload_interval=0.05), audit=audit)
    assert not authz.decide(request()).allowed
    storage.put(str(tmp_path / "p" / "a.cedar"), ALLOW_ALICE.encode())
    deadline = time.monotonic() + 5
    while not authz.decide(request()).allowed:
        assert time.monotonic() < deadline, "the new policy was never picked up"
        time.sleep(0.02)
    assert any(r["action"] == "add" for r in records(audit))


def test_a_broken_edit_keeps_the_policies_in_force(tmp_path: Path, audit: AuditLog) -> None:
    (tmp_path / "a.cedar").write_text(ALLOW_ALICE)
    authz = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path),), reload_interval=0), audit=audit)
    (tmp_path / "a.cedar").write_text("permit(principal, action, resource")  # unterminated
    with pytest.raises(ConfigError, match=r"a\.cedar: not valid Cedar"):
        authz.reload()
    assert authz.decide(request()).policy_id == "alice-read"
    rejected = [r for r in records(audit) if r["action"] == "reject"]
    assert len(rejected) == 1
    assert "a.cedar" in str(rejected[0]["reason"])


def test_update_versions_and_refuses_a_stale_base(tmp_path: Path, audit: AuditLog) -> None:
    url = str(tmp_path / "store") + "/"
    store = PolicyStore(url, audit=audit)
    v0 = store.load()
    assert (v0.version, v0.sources) == (0, {})
    v1 = store.update({"alice.cedar": ALLOW_ALICE}, base=v0.digest, subject="admin-ann")
    assert (v1.version, v1.predecessor) == (1, v0.digest)
    v2 = store.update({"alice.cedar": ALLOW_ALICE_WRITE}, base=v1.digest, subject="admin-ann")
    assert (v2.version, v2.predecessor) == (2, v1.digest)

    # a second admin who read version 1 tries to change it: refused, nothing written
    other = PolicyStore(url)
    with pytest.raises(StalePolicy, match=rf"at version 2 \(digest {v2.digest[:12]}\).*based on {v1.digest[:12]}"):
        other.update({"alice.cedar": None}, base=v1.digest)
    assert (tmp_path / "store" / "alice.cedar").read_text() == ALLOW_ALICE_WRITE
    assert json.loads((tmp_path / "store" / MANIFEST).read_text())["version"] == 2

    updates = [r for r in records(audit) if r["kind"] == "policy" and r["subject"] == "admin-ann"]
    assert [(u["action"], u["detail"]["version"]) for u in updates] == [("add", 1), ("replace", 2)]  # type: ignore[index]


def test_a_hand_edit_after_an_update_is_a_new_version(tmp_path: Path) -> None:
    store = PolicyStore(str(tmp_path))
    v1 = store.update({"a.cedar": ALLOW_ALICE}, base=store.load().digest)
    (tmp_path / "a.cedar").write_text(ALLOW_ALICE_WRITE)  # e.g. a git checkout
    edited = store.load()
    assert (edited.version, edited.predecessor) == (2, v1.digest)
    v3 = store.update({"b.cedar": ALLOW_ALICE}, base=edited.digest)
    assert (v3.version, v3.predecessor) == (3, edited.digest)


def test_update_names_must_be_plain_cedar_files(tmp_path: Path) -> None:
    store = PolicyStore(str(tmp_path))
    for bad in ("../x.cedar", "x.txt", ".hidden.cedar", "sub/x.cedar"):
        with pytest.raises(ConfigError, match="plain"):
            store.update({bad: ALLOW_ALICE}, base=store.load().digest)


def test_policies_in_a_memory_store_reload(audit: AuditLog) -> None:
    url = "mem://policy-reload-test/policies/"
    store = PolicyStore(url)
    authz = CedarAuthorizer(PolicyConfig(sources=(url,), reload_interval=0), audit=audit)
    store.update({"a.cedar": ALLOW_ALICE}, base=store.load().digest)
    assert authz.reload()
    assert authz.decide(request()).allowed
    assert authz.versions == (1,)
    # files nested below the prefix are not policies of this source
    storage.put(url + "archive/old.cedar", b"permit(principal, action, resource);")
    assert not authz.reload()


def test_build_authorizer_records_every_decision(tmp_path: Path, audit: AuditLog) -> None:
    from xtremehub.errors import Forbidden
    from xtremehub.security.policy import build_authorizer

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.cedar").write_text(ALLOW_ALICE)
    authz = build_authorizer(PolicyConfig(sources=(str(tmp_path / "p"),), reload_interval=0), audit)
    authz.check(AccessRequest(ALICE, Action.READ, Resource("stream", "lungs/ct"), purpose="research"))
    bob = Identity("bob", roles=frozenset({"x"}))
    with pytest.raises(Forbidden, match=r"\[policy default-deny\]"):
        authz.check(AccessRequest(bob, Action.WRITE, Resource("stream", "lungs/ct")))
    decisions = [r for r in records(audit) if r["kind"] == "decision"]
    assert [(d["subject"], d["action"], d["decision"], d["policy"]) for d in decisions] == [
        ("alice", "read", "allow", "alice-read"),
        ("bob", "write", "deny", "default-deny"),
    ]
    assert decisions[0]["resource"] == "stream:lungs/ct"
    assert decisions[0]["purpose"] == "research"
    assert decisions[1]["roles"] == ["x"]
    assert decisions[0]["detail"]["policy_set"] == authz.authorizer.policy_digest  # type: ignore[attr-defined,index]


def test_policy_updates_and_audit_log_in_s3(s3_root: str, s3_settings: object, tmp_path: Path) -> None:
    from xtremehub.config import Settings

    assert isinstance(s3_settings, Settings)
    config = AuditConfig(
        location=s3_root + "audit/", signing_key=tmp_path / "k", checkpoint_every=2, settings=s3_settings
    )
    with AuditLog(config) as log:
        store = PolicyStore(s3_root + "policies/", settings=s3_settings, audit=log)
        authz = CedarAuthorizer(
            PolicyConfig(sources=(s3_root + "policies/",), reload_interval=0, settings=s3_settings), audit=log
        )
        v1 = store.update({"a.cedar": ALLOW_ALICE}, base=store.load().digest, subject="admin")
        assert authz.reload()
        assert authz.decide(request()).policy_id == "alice-read"
        with pytest.raises(StalePolicy):
            PolicyStore(s3_root + "policies/", settings=s3_settings).update({"a.cedar": None}, base="f" * 64)
        assert storage.get(s3_root + "policies/a.cedar", settings=s3_settings).decode() == ALLOW_ALICE
        assert authz.versions == (v1.version,)
    report = verify_log(s3_root + "audit/", public_key=log.public_key, settings=s3_settings)
    assert report.ok
    assert report.uncovered == 0
    recs = [json.loads(line) for _, line in read_lines(s3_root + "audit/", settings=s3_settings)]
    assert [r["subject"] for r in recs if r["action"] == "add"] == ["admin", "policy-loader"]


def test_policy_storage_down_keeps_the_policies_in_force(
    s3_root: str, s3_settings: object, seaweedfs: object, audit: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    """Automatic reloads from S3 during an outage: decisions go on with the last policies read."""
    import dataclasses

    from xtremehub.config import Settings
    from xtremehub.testing.seaweedfs import SeaweedFS
    from xtremehub.testing.tcprelay import TcpRelay

    assert isinstance(s3_settings, Settings)
    assert isinstance(seaweedfs, SeaweedFS)
    url = s3_root + "policies-outage/"
    PolicyStore(url, settings=s3_settings).update(
        {"a.cedar": ALLOW_ALICE}, base=PolicyStore(url, settings=s3_settings).load().digest
    )
    host, port = seaweedfs.settings().s3.endpoint_url.rsplit("//", 1)[1].rsplit(":", 1)  # type: ignore[union-attr]
    relay = TcpRelay(host, int(port))  # the authorizer reaches S3 through it; closing it is the outage
    s3 = dataclasses.replace(
        s3_settings.s3, endpoint_url=f"http://127.0.0.1:{relay.port}", connect_timeout=1.0, max_retries=0
    )
    settings = dataclasses.replace(s3_settings, s3=s3)
    authz = CedarAuthorizer(PolicyConfig(sources=(url,), reload_interval=0.01, settings=settings), audit=audit)
    assert authz.decide(request()).policy_id == "alice-read"
    relay.close()
    time.sleep(0.05)
    with caplog.at_level("ERROR", logger="xtremehub.security.policy"):
        decision = authz.decide(request())  # reloads first: the listing fails
    assert decision.allowed
    assert decision.policy_id == "alice-read"
    assert "policy sources unreachable, previous policies stay in force" in caplog.text
    assert not authz.decide(request(Action.WRITE)).allowed  # still the same policies: deny by default


def test_concurrent_updates_from_processes_one_wins(tmp_path: Path) -> None:
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[2] / "src"
    store = PolicyStore(str(tmp_path / "p"))
    base = store.load().digest
    script = (
        "import sys\n"
        "from xtremehub.errors import StalePolicy\n"
        "from xtremehub.security.policy_store import PolicyStore\n"
        "text = 'permit(principal, action, resource);'\n"
        "try:\n"
        "    PolicyStore(sys.argv[1]).update({sys.argv[2] + '.cedar': text}, base=sys.argv[3])\n"
        "    print('won')\n"
        "except StalePolicy:\n"
        "    print('stale')\n"
    )
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "p"), f"f{i}", base],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outcomes == ["stale", "stale", "stale", "won"]
    final = store.load()
    assert (final.version, len(final.sources)) == (1, 1)


def test_deciding_threads_during_reloads(tmp_path: Path, audit: AuditLog) -> None:
    import threading

    (tmp_path / "a.cedar").write_text(ALLOW_ALICE)
    authz = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path),), reload_interval=0.001), audit=audit)
    errors: list[BaseException] = []
    seen: set[str | None] = set()
    stop = threading.Event()

    def decide() -> None:
        while not stop.is_set():
            try:
                seen.add(authz.decide(request()).policy_id)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        (tmp_path / "a.cedar").write_text(ALLOW_ALICE if i % 2 else ALLOW_ALICE_WRITE)
        time.sleep(0.01)
    (tmp_path / "a.cedar").write_text(ALLOW_ALICE)
    authz.reload()
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert seen <= {"alice-read", "default-deny"}
    assert authz.decide(request()).policy_id == "alice-read"
    assert verify_log(audit.location, public_key=audit.public_key).ok
