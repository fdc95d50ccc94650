"""Deciding many requests at once (a page of search results): the same decisions and audit records
as deciding them one by one, with one Cedar evaluation when the requests can share their entities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xtremehub.security.audit import AuditConfig, Audited, AuditLog, read_lines
from xtremehub.security.authz import AccessRequest, Action, Decision, Resource, decide_each
from xtremehub.security.identity import Identity
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig
from xtremehub.web.auth import AllowAuthenticated, Gate

POLICIES = """
@id("analysts-read") @reason("analysts read datasets tagged open")
permit(principal in XHub::Role::"analyst", action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has tags && resource.tags.contains("open") };
@id("own") permit(principal, action, resource is XHub::Dataset) when { resource has owner && resource.owner == "ann" };
@id("named") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"d-named");
@id("embargo") @reason("embargoed data is for its owner only")
forbid(principal, action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has tags && resource.tags.contains("embargo") } unless { principal == XHub::User::"ann" };
@id("strict") forbid(principal, action == XHub::Action::"write", resource is XHub::Dataset)
  when { resource.locked };
@id("lungs") permit(principal in XHub::Role::"research", action == XHub::Action::"read",
  resource in XHub::Prefix::"s3://lungs/ct/") when { context.purpose == "research" };
"""

ANN = Identity("ann", roles=frozenset({"analyst"}))
BOB = Identity("bob", roles=frozenset({"analyst", "research"}))


def _dataset(name: str, owner: str, *tags: str, **more: object) -> Resource:
    return Resource("dataset", name, {"owner": owner, "kind": "object", "tags": list(tags), **more})


def _requests() -> list[AccessRequest]:
    """An allow/deny mix: permits, a forbid, the default deny, a named dataset, an unknown kind,
    a refused path, objects sharing prefixes, a purpose, and a forbid that cannot be evaluated."""
    read = Action.READ
    return [
        AccessRequest(BOB, read, _dataset("d1", "cy", "open")),
        AccessRequest(BOB, read, _dataset("d2", "cy", "open", "embargo")),
        AccessRequest(BOB, read, _dataset("d3", "cy", "closed")),
        AccessRequest(BOB, read, _dataset("d-named", "cy")),
        AccessRequest(BOB, read, _dataset("d4", "ann", "embargo")),
        AccessRequest(BOB, read, Resource("teapot", "x")),
        AccessRequest(BOB, read, Resource("object", "s3://lungs/ct/../raw/x")),
        AccessRequest(BOB, read, Resource("object", "s3://lungs/ct/a.fq"), purpose="research"),
        AccessRequest(BOB, read, Resource("object", "s3://lungs/ct/b.fq"), purpose="ads"),
        AccessRequest(BOB, Action.WRITE, _dataset("d5", "ann")),  # `strict` errs: denied, fail closed
        AccessRequest(BOB, Action.WRITE, _dataset("d6", "ann", locked=False)),
        AccessRequest(BOB, read, _dataset("d1", "cy", "open")),  # the same dataset twice
    ]


def _authz(tmp_path: Path, policies: str = POLICIES) -> CedarAuthorizer:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "p.cedar").write_text(policies)
    return CedarAuthorizer(PolicyConfig(sources=(str(tmp_path / "policies"),), reload_interval=0))


class _Counting:
    """Counts the Cedar calls of an authorizer (its ``_cedar`` module replaced)."""

    def __init__(self, cedar: Any) -> None:
        self.cedar = cedar
        self.single = 0
        self.batch = 0

    def is_authorized(self, *args: Any) -> Any:
        self.single += 1
        return self.cedar.is_authorized(*args)

    def is_authorized_batch(self, *args: Any) -> Any:
        self.batch += 1
        return self.cedar.is_authorized_batch(*args)


def test_a_batch_decides_as_one_by_one_in_one_cedar_call(tmp_path: Path) -> None:
    authz = _authz(tmp_path)
    assert authz._compiled.batchable
    requests = _requests()
    alone = [authz.decide(r) for r in requests]
    counting = _Counting(authz._cedar)
    authz._cedar = counting
    together = authz.decide_batch(requests)
    assert together == alone
    assert [d.allowed for d in alone] == [True, False, False, True, False, False, False, True, False, False, True, True]
    assert alone[1].policy_id == "embargo"
    assert "owner only" in alone[1].reason
    assert alone[9].policy_id == "strict"
    assert "fail closed" in alone[9].reason
    assert counting.batch == 1
    assert counting.single == 1  # only the request whose evaluation erred (d5) is decided again alone


def test_requests_that_cannot_share_entities_are_decided_alone(tmp_path: Path) -> None:
    authz = _authz(tmp_path)
    # two callers (different principals) and one dataset with two sets of attributes
    requests = [
        AccessRequest(BOB, Action.READ, _dataset("d1", "cy", "open")),
        AccessRequest(ANN, Action.READ, _dataset("d2", "cy", "open", "embargo")),
        AccessRequest(BOB, Action.READ, _dataset("d1", "cy", "embargo")),
    ]
    alone = [authz.decide(r) for r in requests]
    counting = _Counting(authz._cedar)
    authz._cedar = counting
    assert authz.decide_batch(requests) == alone
    assert [d.allowed for d in alone] == [True, True, False]
    assert (counting.batch, counting.single) == (0, 3)
    assert authz.decide_batch([]) == []


def test_a_policy_reading_a_named_entity_keeps_decisions_alone(tmp_path: Path) -> None:
    # in one batch, d-ref would be an entity (another request's resource) with an owner
    authz = _authz(tmp_path, 'permit(principal, action, resource) when { XHub::Dataset::"d-ref".owner == "ann" };')
    requests = [
        AccessRequest(BOB, Action.READ, _dataset("d-ref", "ann")),
        AccessRequest(BOB, Action.READ, _dataset("d7", "cy")),
    ]
    alone = [authz.decide(r) for r in requests]
    assert [d.allowed for d in alone] == [True, False]
    counting = _Counting(authz._cedar)
    authz._cedar = counting
    assert authz.decide_batch(requests) == alone
    assert counting.batch == 0
    assert not authz._compiled.batchable


@pytest.mark.parametrize(
    "policy",
    [
        'permit(principal, action, resource) when { XHub::Object::"s3://a/b" in resource };',
        'permit(principal, action, resource) when { XHub::Dataset::"x" has owner };',
        # indirect reads a review found (batched, a fail-closed forbid turned into an allow)
        'permit(principal, action, resource) when { (if 1 > 0 then XHub::Dataset::"x" else resource).owner == "a" };',
        'permit(principal, action, resource) when { {e: XHub::Dataset::"x"}.e.owner == "a" };',
        'permit(principal, action, resource) when { XHub::Key::"x#1" is XHub::Key in XHub::Dataset::"x" };',
        'forbid(principal, action, resource) when { (if resource is XHub::Dataset then XHub::Dataset::"k" '
        'else resource).owner != "sec" };',
    ],
)
def test_named_entity_lookups_are_found(tmp_path: Path, policy: str) -> None:
    assert not _authz(tmp_path, policy)._compiled.batchable


@pytest.mark.parametrize(
    "policy",
    [
        'permit(principal, action, resource == XHub::Dataset::"*");',
        'permit(principal, action, resource) when { resource == XHub::Dataset::"x" '
        '|| XHub::Dataset::"y" != resource };',
        'permit(principal, action, resource) when { resource in XHub::Project::"p" };',
        'permit(principal, action, resource) when { action in [XHub::Action::"read", XHub::Action::"list"] };',
        'permit(principal, action, resource) when { [XHub::Dataset::"a", XHub::Dataset::"b"].contains(resource) };',
    ],
)
def test_entity_literals_that_are_only_compared_keep_the_batch(tmp_path: Path, policy: str) -> None:
    assert _authz(tmp_path, policy)._compiled.batchable


def test_entities_that_differ_only_as_true_and_1_are_not_merged(tmp_path: Path) -> None:
    """Python's ``True == 1`` must not make two different entities of one uid count as the same."""
    authz = _authz(tmp_path, "permit(principal, action, resource) when { resource.approved == true };")
    assert authz._compiled.batchable
    requests = [
        AccessRequest(BOB, Action.READ, _dataset("d-same", "ann", approved=True)),
        AccessRequest(BOB, Action.READ, _dataset("d-same", "ann", approved=1)),
    ]
    alone = [authz.decide(r) for r in requests]
    assert [d.allowed for d in alone] == [True, False]
    assert authz.decide_batch(requests) == alone


def test_an_audited_batch_records_each_decision_as_one_by_one(tmp_path: Path) -> None:
    requests = _requests()
    records = []
    for name, batch in (("alone", False), ("batch", True)):
        log = AuditLog(AuditConfig(location=str(tmp_path / f"{name}.log"), signing_key=tmp_path / f"{name}.key"))
        audited = Audited(_authz(tmp_path), log)
        decisions = audited.decide_batch(requests) if batch else [audited.decide(r) for r in requests]
        log.close()
        lines = [json.loads(line) for _, line in read_lines(str(tmp_path / f"{name}.log"))]
        fields = ("kind", "subject", "action", "resource", "purpose", "decision", "policy", "reason", "detail")
        kept = [{k: r.get(k) for k in fields} for r in lines if r.get("kind") == "decision"]
        records.append(([d.allowed for d in decisions], kept))
    assert records[0] == records[1]
    assert len(records[1][1]) == len(requests)


def test_gate_allowed_each_equals_allowed(tmp_path: Path) -> None:
    gate = Gate(None, _authz(tmp_path))
    resources = [r.resource for r in _requests() if r.identity is BOB and r.purpose is None]
    expected = [gate.allowed(BOB, Action.READ, r) for r in resources]
    assert gate.allowed_each(BOB, Action.READ, resources) == expected
    assert True in expected
    assert False in expected


def test_decide_each_without_a_batch_decides_one_by_one() -> None:
    class Nobody:
        def decide(self, request: AccessRequest) -> Decision:
            return Decision(request.resource.name == "yes", "by name", "name")

        def check(self, request: AccessRequest) -> Decision:
            return self.decide(request)

    asked = [AccessRequest(BOB, Action.READ, Resource("dataset", n)) for n in ("yes", "no")]
    assert [d.allowed for d in decide_each(Nobody(), asked)] == [True, False]
    assert [d.allowed for d in decide_each(AllowAuthenticated(), asked)] == [True, True]
