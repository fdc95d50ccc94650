"""Access requests: owner/admin decide; approval is a Cedar usage policy the authorizer enforces."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xtremehub.catalog.store import SqlCatalog
from xtremehub.errors import DatasetNotFound, Forbidden, InvalidMetadata, PreconditionFailed
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import PolicyConfig, build_authorizer

URL = "s3://lungs/ct/cohort7.fastq.gz"


def _allowed(policies: Path, who: str, purpose: str, at: datetime, resource: Resource) -> bool:
    authz = build_authorizer(PolicyConfig(sources=(str(policies),), reload_interval=0))
    request = AccessRequest(Identity(who), Action.READ, resource, purpose=purpose, at=at.timestamp())
    return authz.decide(request).allowed


def test_approval_is_a_usage_policy_for_purpose_until_expiry(fresh_catalog: SqlCatalog, tmp_path: Path) -> None:
    ds = fresh_catalog.register(URL, actor="alice", facts={}, source_version="e1")
    expires = datetime.now(UTC) + timedelta(days=30)
    req = fresh_catalog.request_access(ds.id, actor="carol", purpose="lung cancer research", expires=expires)
    assert (req.status, req.requester, req.dataset_id, req.policy_id) == ("pending", "carol", ds.id, None)
    with pytest.raises(Forbidden, match="only the owner"):
        fresh_catalog.decide(req.id, approve=True, actor="mallory", if_match=req.etag)
    with pytest.raises(PreconditionFailed):
        fresh_catalog.decide(req.id, approve=True, actor="alice", if_match="stale")
    done = fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=req.etag, reason="ethics ok")
    assert (done.status, done.decided_by, done.reason) == ("approved", "alice", "ethics ok")
    assert done.policy_id == f"access-{req.id}"
    assert done.expires is not None
    assert abs((done.expires - expires).total_seconds()) < 1e-3

    policies = tmp_path / "policies"
    assert (policies / f"access-{req.id}.cedar").exists()
    now = datetime.now(UTC)
    dataset, obj = Resource("dataset", ds.id), Resource("object", URL)
    for resource in (dataset, obj):
        assert _allowed(policies, "carol", "lung cancer research", now, resource)
        assert not _allowed(policies, "carol", "marketing", now, resource)
        assert not _allowed(policies, "carol", "lung cancer research", expires + timedelta(seconds=1), resource)
        assert not _allowed(policies, "dave", "lung cancer research", now, resource)
    assert not _allowed(policies, "carol", "lung cancer research", now, Resource("object", "s3://lungs/ct/other.fq"))

    with pytest.raises(InvalidMetadata, match="approved, not pending"):  # decided once
        fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=done.etag)
    revoked = fresh_catalog.decide(req.id, approve=False, actor="alice", if_match=done.etag, reason="study over")
    assert revoked.status == "revoked"
    assert not (policies / f"access-{req.id}.cedar").exists()
    assert not _allowed(policies, "carol", "lung cancer research", now, dataset)


def test_reject_writes_no_policy_and_admins_decide(fresh_catalog: SqlCatalog, tmp_path: Path) -> None:
    ds = fresh_catalog.register(URL, actor="alice", facts={}, source_version="e1")
    first = fresh_catalog.request_access(ds.id, actor="carol", purpose="research")
    rejected = fresh_catalog.decide(first.id, approve=False, actor="alice", if_match=first.etag, reason="no")
    assert (rejected.status, rejected.policy_id) == ("rejected", None)
    assert not list((tmp_path / "policies").glob("access-*.cedar"))
    second = fresh_catalog.request_access(ds.id, actor="carol", purpose="teaching")
    by_role = fresh_catalog.decide(second.id, approve=True, actor="ops", roles={"admin"}, if_match=second.etag)
    assert by_role.status == "approved"
    assert by_role.expires is not None  # the default term
    assert timedelta(days=89) < by_role.expires - datetime.now(UTC) <= timedelta(days=90)
    third = fresh_catalog.request_access(ds.id, actor="dave", purpose="research")
    by_setting = fresh_catalog.decide(third.id, approve=True, actor="root-admin", if_match=third.etag)
    assert by_setting.decided_by == "root-admin"
    assert [r.id for r in fresh_catalog.access_requests(dataset_id=ds.id, status="approved")] == [third.id, second.id]
    assert [r.id for r in fresh_catalog.access_requests(requester="carol")] == [second.id, first.id]
    assert fresh_catalog.access_requests(status="pending") == ()
    with pytest.raises(InvalidMetadata, match="status"):
        fresh_catalog.access_requests(status="maybe")


def test_bad_requests(fresh_catalog: SqlCatalog) -> None:
    ds = fresh_catalog.register(URL, actor="alice", facts={}, source_version="e1")
    with pytest.raises(DatasetNotFound):
        fresh_catalog.request_access("ds-none", actor="carol", purpose="research")
    with pytest.raises(InvalidMetadata, match="purpose"):
        fresh_catalog.request_access(ds.id, actor="carol", purpose=" ")
    with pytest.raises(InvalidMetadata, match="purpose"):
        fresh_catalog.request_access(ds.id, actor="carol", purpose="p" * 501)
    with pytest.raises(InvalidMetadata, match="expires"):
        fresh_catalog.request_access(ds.id, actor="carol", purpose="x", expires=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(DatasetNotFound, match="access request"):
        fresh_catalog.decide("ar-none", approve=True, actor="alice", if_match="x")
    # a purpose with Cedar quoting characters stays one string literal
    tricky = 'research" || true || "'
    req = fresh_catalog.request_access(ds.id, actor="carol", purpose=tricky)
    fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=req.etag)


def test_a_failed_policy_write_leaves_the_request_pending(catalog_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from xtremehub.security.policy_store import PolicyStore

    (tmp_path / "blocker").write_text("a file where the policy directory should be")
    with catalog_factory(tmp_path) as cat:
        cat._policy_store = PolicyStore(str(tmp_path / "blocker" / "policies"))
        ds = cat.register(URL, actor="alice", facts={}, source_version="e1")
        req = cat.request_access(ds.id, actor="carol", purpose="research")
        with pytest.raises(OSError, match="policies"):  # the storage layer's error, naming the path
            cat.decide(req.id, approve=True, actor="alice", if_match=req.etag)
        (after,) = cat.access_requests(dataset_id=ds.id)
        assert (after.status, after.etag, after.policy_id) == ("pending", req.etag, None)


def test_everything_is_audited(catalog_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with catalog_factory(tmp_path) as cat:  # nothing configured: the log under its home
        ds = cat.register(URL, actor="alice", facts={}, source_version="e1")
        cat.register(URL, actor="alice", facts={}, source_version="e2")
        req = cat.request_access(ds.id, actor="carol", purpose="research")
        with pytest.raises(Forbidden):
            cat.decide(req.id, approve=True, actor="mallory", if_match=req.etag)
        cat.decide(req.id, approve=True, actor="alice", if_match=req.etag)
    records = [json.loads(line) for line in (tmp_path / "audit" / "catalog.log").read_text().splitlines()]
    seen = [(r["subject"], r["action"]) for r in records if r.get("kind") == "catalog"]
    assert seen == [
        ("alice", "register"),
        ("alice", "new-version"),
        ("carol", "request-access"),
        ("mallory", "decide-access-denied"),
        ("alice", "approve-access"),
    ]
    approve = next(r for r in records if r.get("action") == "approve-access")
    assert approve["detail"]["purpose"] == "research"
    assert approve["resource"] == f"dataset:{ds.id}"


def test_an_approval_past_its_expiry_reads_as_expired(fresh_catalog: SqlCatalog, tmp_path: Path) -> None:
    import time

    ds = fresh_catalog.register(URL, actor="alice", facts={}, source_version="e1")
    expires = datetime.now(UTC) + timedelta(seconds=2)
    req = fresh_catalog.request_access(ds.id, actor="carol", purpose="research", expires=expires)
    approved = fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=req.etag)
    assert approved.status == "approved"
    assert [r.id for r in fresh_catalog.access_requests(status="approved")] == [req.id]
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    assert fresh_catalog.get_access_request(req.id).status == "expired"
    assert [r.id for r in fresh_catalog.access_requests(status="expired")] == [req.id]
    assert fresh_catalog.access_requests(status="approved") == ()
    assert not _allowed(tmp_path / "policies", "carol", "research", datetime.now(UTC), Resource("dataset", ds.id))
    revoked = fresh_catalog.decide(req.id, approve=False, actor="alice", if_match=approved.etag)  # clean-up still works
    assert revoked.status == "revoked"
    assert not (tmp_path / "policies" / f"access-{req.id}.cedar").exists()


def test_an_approved_stream_is_readable_for_its_purpose_until_revoked(
    fresh_catalog: SqlCatalog, tmp_path: Path
) -> None:
    ds = fresh_catalog.register("xhub-stream://icu/monitor-3", actor="alice", facts={}, source_version="c1")
    assert ds.kind == "stream"
    policies, now = tmp_path / "policies", datetime.now(UTC)
    stream = Resource("stream", "icu/monitor-3")
    req = fresh_catalog.request_access(ds.id, actor="carol", purpose="sepsis study")
    done = fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=req.etag)
    assert _allowed(policies, "carol", "sepsis study", now, stream)
    assert _allowed(policies, "carol", "sepsis study", now, Resource("key", ds.key_name))
    assert not _allowed(policies, "carol", "marketing", now, stream)
    assert done.expires is not None
    assert not _allowed(policies, "carol", "sepsis study", done.expires + timedelta(seconds=1), stream)
    # the stream only: not its scope, not the scope's other streams
    assert not _allowed(policies, "carol", "sepsis study", now, Resource("stream", "icu/monitor-4"))
    assert not _allowed(policies, "carol", "sepsis study", now, Resource("scope", "icu"))
    fresh_catalog.decide(req.id, approve=False, actor="alice", if_match=done.etag)
    assert not _allowed(policies, "carol", "sepsis study", now, stream)


def test_listeners_hear_of_a_policy_only_after_its_decision_committed(
    fresh_catalog: SqlCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An authorizer reloads when the decision is visible to everyone; a decision that fails to
    commit never puts its policy in force (the listener never sees the file)."""
    ds = fresh_catalog.register(URL, actor="alice", facts={}, source_version="e1")
    req = fresh_catalog.request_access(ds.id, actor="carol", purpose="research")
    policy = tmp_path / "policies" / f"access-{req.id}.cedar"
    heard: list[tuple[str, bool]] = []
    fresh_catalog.on_policy_change(
        lambda: heard.append((fresh_catalog.get_access_request(req.id).status, policy.exists()))
    )

    from xtremehub.catalog.store import access

    real = access.rows.access_request
    calls: list[int] = []

    def fail_once(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the commit failed")
        return real(*args)

    with monkeypatch.context() as patch:
        patch.setattr(access.rows, "access_request", fail_once)  # after the policy is written, before commit
        with pytest.raises(RuntimeError, match="commit failed"):
            fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=req.etag)
    assert not policy.exists()
    assert fresh_catalog.get_access_request(req.id).status == "pending"
    assert heard == [("pending", False)]  # told after the policy was taken back, never while it was there
    heard.clear()

    done = fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=req.etag)
    assert heard == [("approved", True)]
    fresh_catalog.decide(req.id, approve=False, actor="alice", if_match=done.etag)
    assert heard == [("approved", True), ("revoked", False)]


def test_a_listener_that_fails_leaves_the_decision_committed(
    fresh_catalog: SqlCatalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = fresh_catalog.register(URL, actor="alice", facts={}, source_version="e1")
    req = fresh_catalog.request_access(ds.id, actor="carol", purpose="research")

    def broken() -> None:
        raise ValueError("reload broke")

    fresh_catalog.on_policy_change(broken)
    done = fresh_catalog.decide(req.id, approve=True, actor="alice", if_match=req.etag)
    assert done.status == fresh_catalog.get_access_request(req.id).status == "approved"
    assert (tmp_path / "policies" / f"access-{req.id}.cedar").exists()
    assert "a usage-policy listener failed" in caplog.text
