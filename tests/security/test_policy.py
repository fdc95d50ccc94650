"""The Cedar policy engine: roles, purpose of use, time windows, resource hierarchy, deny by default."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xtremehub.errors import ConfigError, Forbidden
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import DEFAULT_DENY, CedarAuthorizer, PolicyConfig, compile_policies
from xtremehub.security.policy_store import PolicySnapshot

POLICIES = """
@id("research-read")
@reason("members of research read the lungs data")
permit(principal in XHub::Role::"research", action == XHub::Action::"read", resource in XHub::Bucket::"s3://lungs");

@id("purpose-research-only")
@reason("the lungs data may only be read for the purpose research")
forbid(principal, action == XHub::Action::"read", resource in XHub::Bucket::"s3://lungs")
unless { context.purpose == "research" };

@id("raw-admin-only")
forbid(principal, action, resource in XHub::Prefix::"s3://lungs/raw/") unless { principal in XHub::Role::"admin" };

@id("curators-write-ct")
permit(principal in XHub::Role::"curator", action == XHub::Action::"write", resource in XHub::Prefix::"s3://lungs/ct/");

@id("surgery-office-hours")
permit(principal in XHub::Role::"surgeon", action == XHub::Action::"read", resource in XHub::Scope::"surgery")
when { context.hour >= 8 && context.hour < 18 && context.weekday <= 5 };

@id("lungs-key-research")
permit(principal in XHub::Role::"research", action == XHub::Action::"read", resource in XHub::Dataset::"lungs")
when { context.purpose == "research" };

@id("cohort-agreement-2026")
permit(principal in XHub::Group::"partner-hospital", action == XHub::Action::"read",
       resource == XHub::Dataset::"cohort")
when { context.now >= datetime("2026-01-01T00:00:00Z") && context.now < datetime("2027-01-01T00:00:00Z") };
"""

ALICE = Identity("alice", roles=frozenset({"research"}))
BOB = Identity("bob")
CAROL = Identity("carol", roles=frozenset({"curator", "research"}))
SURGEON = Identity("sam", roles=frozenset({"surgeon"}))
PARTNER = Identity("pat", groups=frozenset({"partner-hospital"}))
ADMIN = Identity("root", roles=frozenset({"admin", "research"}))


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def authz(tmp_path: Path) -> CedarAuthorizer:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "lungs.cedar").write_text(POLICIES)
    return CedarAuthorizer(PolicyConfig(sources=(str(tmp_path / "policies"),), reload_interval=0))


def read(
    who: Identity, kind: str, name: str, purpose: str | None = "research", when: float | None = None
) -> AccessRequest:
    if when is None:
        return AccessRequest(who, Action.READ, Resource(kind, name), purpose=purpose)
    return AccessRequest(who, Action.READ, Resource(kind, name), purpose=purpose, at=when)


def test_role_permits_and_decision_names_the_policy(authz: CedarAuthorizer) -> None:
    decision = authz.check(read(ALICE, "object", "s3://lungs/ct/1.fq.gz"))
    assert decision.allowed
    assert decision.policy_id == "research-read"
    assert "members of research read the lungs data" in decision.reason


def test_missing_role_is_denied_by_default(authz: CedarAuthorizer) -> None:
    decision = authz.decide(read(BOB, "object", "s3://lungs/ct/1.fq.gz"))
    assert not decision.allowed
    assert decision.policy_id == DEFAULT_DENY
    with pytest.raises(Forbidden, match=r"bob may not read object 's3://lungs/ct/1.fq.gz'.*\[policy default-deny\]"):
        authz.check(read(BOB, "object", "s3://lungs/ct/1.fq.gz"))


def test_wrong_purpose_is_forbidden_naming_the_policy(authz: CedarAuthorizer) -> None:
    for purpose in ("marketing", None):
        with pytest.raises(Forbidden) as info:
            authz.check(read(ALICE, "object", "s3://lungs/ct/1.fq.gz", purpose=purpose))
        message = str(info.value)
        assert "[policy purpose-research-only]" in message
        assert "may only be read for the purpose research" in message
        if purpose:
            assert "for purpose 'marketing'" in message


def test_outside_time_window(authz: CedarAuthorizer) -> None:
    monday_10 = at("2026-12-07T10:00:00")
    monday_20 = at("2026-12-07T20:00:00")
    saturday_10 = at("2026-12-05T10:00:00")
    stream = "surgery/or-1"
    assert authz.check(read(SURGEON, "stream", stream, when=monday_10)).policy_id == "surgery-office-hours"
    for when in (monday_20, saturday_10):
        with pytest.raises(Forbidden, match="default-deny"):
            authz.check(read(SURGEON, "stream", stream, when=when))


def test_time_window_in_another_zone(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.cedar").write_text(POLICIES)
    berlin = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path / "p"),), reload_interval=0, timezone="Europe/Berlin"))
    # 17:30 UTC is 18:30 in Berlin in December: outside the 08-18 window there, inside it in UTC
    when = at("2026-12-07T17:30:00")
    assert not berlin.decide(read(SURGEON, "stream", "surgery/or-1", when=when)).allowed
    with pytest.raises(ConfigError, match="unknown time zone"):
        PolicyConfig(sources=(), timezone="Mars/Olympus")


def test_validity_period_with_datetimes(authz: CedarAuthorizer) -> None:
    inside = read(PARTNER, "dataset", "cohort", when=at("2026-06-01T00:00:00"))
    after = read(PARTNER, "dataset", "cohort", when=at("2027-01-01T00:00:01"))
    assert authz.decide(inside).policy_id == "cohort-agreement-2026"
    assert not authz.decide(after).allowed


def test_resource_hierarchy_bucket_prefix_object(authz: CedarAuthorizer) -> None:
    write = Action.WRITE
    assert authz.decide(AccessRequest(CAROL, write, Resource("object", "s3://lungs/ct/a/b/c.fq"))).allowed
    assert authz.decide(AccessRequest(CAROL, write, Resource("prefix", "s3://lungs/ct/a"))).allowed
    assert not authz.decide(AccessRequest(CAROL, write, Resource("object", "s3://lungs/ctx/c.fq"))).allowed
    assert not authz.decide(AccessRequest(CAROL, write, Resource("object", "s3://lungs/other/c.fq"))).allowed
    assert not authz.decide(AccessRequest(CAROL, write, Resource("bucket", "s3://lungs"))).allowed
    # a forbid on a deeper prefix overrides the bucket-wide permit, except for admins
    raw = authz.decide(read(ALICE, "object", "s3://lungs/raw/deep/x.bam"))
    assert (raw.allowed, raw.policy_id) == (False, "raw-admin-only")
    assert authz.decide(read(ADMIN, "object", "s3://lungs/raw/deep/x.bam")).allowed
    # the bucket itself, a prefix URL and an object in the bucket's root
    assert authz.decide(read(ALICE, "bucket", "s3://lungs")).allowed
    assert authz.decide(read(ALICE, "object", "s3://lungs/top.txt")).allowed
    assert not authz.decide(read(ALICE, "object", "s3://lungs-other/top.txt")).allowed


def test_dataset_and_its_keys(authz: CedarAuthorizer) -> None:
    assert authz.decide(read(ALICE, "key", "lungs#3")).policy_id == "lungs-key-research"
    assert authz.decide(read(ALICE, "dataset", "lungs")).allowed
    assert not authz.decide(read(ALICE, "key", "lungs#3", purpose="billing")).allowed
    assert not authz.decide(read(ALICE, "key", "heart")).allowed


def test_deny_by_default_with_no_policies(tmp_path: Path) -> None:
    empty = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path / "none-yet"),), reload_interval=0))
    for action in Action:
        for kind, name in [("object", "s3://x/y"), ("stream", "a/b"), ("dataset", "d"), ("key", "d"), ("scope", "a")]:
            decision = empty.decide(AccessRequest(ADMIN, action, Resource(kind, name), purpose="research"))
            assert (decision.allowed, decision.policy_id) == (False, DEFAULT_DENY)


def test_unknown_resource_kind_is_denied(tmp_path: Path) -> None:
    (tmp_path / "all.cedar").write_text("permit(principal, action, resource);")
    allow_all = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path),), reload_interval=0))
    assert allow_all.decide(read(BOB, "stream", "a/b")).allowed
    decision = allow_all.decide(read(BOB, "teapot", "x"))
    assert not decision.allowed
    assert "unknown resource kind 'teapot'" in decision.reason


def test_resource_attributes_reach_policies(tmp_path: Path) -> None:
    (tmp_path / "own.cedar").write_text(
        '@id("owner-admin") permit(principal, action, resource is XHub::Dataset) '
        "when { resource has owner && resource.owner == principal.issuer };"
    )
    authz = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path),), reload_interval=0))
    dave = Identity("dave", issuer="https://idp")
    owned = Resource("dataset", "d1", attributes={"owner": "https://idp", "size": 2.5})
    assert authz.decide(AccessRequest(dave, Action.ADMIN, owned)).policy_id == "owner-admin"
    assert not authz.decide(AccessRequest(dave, Action.ADMIN, Resource("dataset", "d2"))).allowed


def test_bad_policy_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.cedar").write_text("permit(principal, action, resourc);")
    with pytest.raises(ConfigError, match=r"broken\.cedar: not valid Cedar"):
        CedarAuthorizer(PolicyConfig(sources=(str(tmp_path),)))


def test_duplicate_policy_ids_are_refused() -> None:
    a = PolicySnapshot("p/", {"a.cedar": '@id("x") permit(principal, action, resource);'})
    b = PolicySnapshot("q/", {"b.cedar": '@id("x") forbid(principal, action, resource);'})
    with pytest.raises(ConfigError, match=r"q/b\.cedar: policy id 'x' is also used in p/a\.cedar"):
        compile_policies([a, b])


def test_policies_without_id_are_named_by_file_and_position(tmp_path: Path) -> None:
    (tmp_path / "open.cedar").write_text(
        'forbid(principal, action, resource == XHub::Dataset::"secret");\npermit(principal, action, resource);'
    )
    authz = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path),), reload_interval=0))
    assert authz.decide(read(BOB, "dataset", "public")).policy_id == "open#1"
    assert authz.decide(read(BOB, "dataset", "secret")).policy_id == "open#0"


def test_policies_from_an_s3_store(s3_root: str, s3_settings: object, tmp_path: Path) -> None:
    from xtremehub import storage
    from xtremehub.config import Settings

    assert isinstance(s3_settings, Settings)
    storage.put(s3_root + "policies/lungs.cedar", POLICIES.encode(), settings=s3_settings)
    (tmp_path / "local.cedar").write_text(
        '@id("bob-streams") permit(principal == XHub::User::"bob", action, resource in XHub::Scope::"bob");'
    )
    authz = CedarAuthorizer(
        PolicyConfig(sources=(s3_root + "policies/", str(tmp_path)), reload_interval=0, settings=s3_settings)
    )
    assert authz.decide(read(ALICE, "object", "s3://lungs/ct/1.fq")).policy_id == "research-read"
    assert authz.decide(read(BOB, "stream", "bob/cam")).policy_id == "bob-streams"
    assert len(authz.versions) == 2


def test_docs_policy_examples_compile() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "security.md"
    blocks = re.findall(r"```cedar\n(.*?)```", docs.read_text(), re.S)
    assert blocks, "docs/security.md has no cedar examples"
    compiled = compile_policies([PolicySnapshot("docs/", {f"b{i}.cedar": b for i, b in enumerate(blocks)})])
    assert compiled.effects


def test_a_forbid_that_cannot_be_evaluated_denies(tmp_path: Path) -> None:
    (tmp_path / "p.cedar").write_text(
        'permit(principal, action, resource);\n@id("embargo") forbid(principal, action, resource is XHub::Dataset) '
        "when { resource.embargoed };"  # no `has` guard: an error for datasets without the attribute
    )
    authz = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path),), reload_interval=0))
    plain = authz.decide(read(BOB, "dataset", "d1"))
    assert (plain.allowed, plain.policy_id) == (False, "embargo")
    assert "fail closed" in plain.reason
    assert authz.decide(read(BOB, "dataset", "d2")).policy_id == "embargo"
    open_data = Resource("dataset", "d3", attributes={"embargoed": False, "huge": 2**70})
    assert authz.decide(AccessRequest(BOB, Action.READ, open_data)).allowed
    embargoed = Resource("dataset", "d4", attributes={"embargoed": True})
    assert authz.decide(AccessRequest(BOB, Action.READ, embargoed)).policy_id == "embargo"


def test_dot_segments_cannot_climb_out_of_a_prefix(authz: CedarAuthorizer, tmp_path: Path) -> None:
    write = Action.WRITE
    sneaky = authz.decide(AccessRequest(CAROL, write, Resource("object", "s3://lungs/ct/../raw/x.bam")))
    assert not sneaky.allowed
    assert "'..' path segments are refused" in sneaky.reason
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "l.cedar").write_text(
        f'@id("ct-local") permit(principal, action, resource in XHub::Prefix::"{tmp_path}/data/ct/");'
    )
    local = CedarAuthorizer(PolicyConfig(sources=(str(tmp_path / "local"),), reload_interval=0))
    assert local.decide(read(BOB, "object", f"{tmp_path}/data/ct/x.fq")).allowed
    assert local.decide(read(BOB, "object", f"file://{tmp_path}/data/ct/x.fq")).allowed
    assert not local.decide(read(BOB, "object", f"{tmp_path}/data/ct/../raw/x.fq")).allowed
    assert not local.decide(read(BOB, "object", f"file://{tmp_path}/data/ct/../../etc/passwd")).allowed
