"""Regressions of the security review of the catalog store (M1, M2, L2, L3, prefix grants)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtremehub.catalog.store import SqlCatalog
from xtremehub.errors import Forbidden, InvalidMetadata, UnsafeURL
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import PolicyConfig, build_authorizer


def _approved(cat: SqlCatalog, dataset_id: str, owner: str = "alice") -> str:
    req = cat.request_access(dataset_id, actor="carol", purpose="research")
    cat.decide(req.id, approve=True, actor=owner, if_match=req.etag)
    return req.id


def _reads(policies: Path, resource: Resource) -> bool:
    authz = build_authorizer(PolicyConfig(sources=(str(policies),), reload_interval=0))
    return authz.decide(AccessRequest(Identity("carol"), Action.READ, resource, purpose="research")).allowed


def test_delete_removes_the_usage_policies_of_its_grants(fresh_catalog: SqlCatalog, tmp_path: Path) -> None:
    ds = fresh_catalog.register("s3://lab/x.csv", actor="alice", kind="derived", facts={"a": 1}, source_version="1")
    rid = _approved(fresh_catalog, ds.id)
    assert (tmp_path / "policies" / f"access-{rid}.cedar").exists()
    fresh_catalog.delete(ds.id, actor="alice", if_match=fresh_catalog.get(ds.id).etag)
    assert not list((tmp_path / "policies").glob("access-*"))
    assert not _reads(tmp_path / "policies", Resource("object", "s3://lab/x.csv"))


def test_another_user_cannot_overwrite_a_registered_url(fresh_catalog: SqlCatalog) -> None:
    ds = fresh_catalog.register("s3://lab/y.csv", actor="alice", kind="derived", facts={"a": 1}, source_version="1")
    with pytest.raises(Forbidden, match="only its owner alice"):
        fresh_catalog.register("s3://lab/y.csv", actor="mallory", kind="derived", facts={"a": "x"}, source_version="2")
    with pytest.raises(InvalidMetadata, match="registered as derived"):
        fresh_catalog.register("s3://lab/y.csv", actor="alice", kind="object", facts={"a": 2}, source_version="2")
    assert fresh_catalog.get(ds.id).facts == {"a": 1}
    # the owner, an admin by role, and a [catalog] admin may add versions
    assert fresh_catalog.register("s3://lab/y.csv", actor="alice", kind="derived", facts={}, source_version="2")
    v3 = fresh_catalog.register(
        "s3://lab/y.csv", actor="mallory", kind="derived", facts={}, source_version="3", roles=("admin",)
    )
    v4 = fresh_catalog.register("s3://lab/y.csv", actor="root-admin", kind="derived", facts={}, source_version="4")
    assert (v3.latest_version, v4.latest_version, v4.owner) == (3, 4, "alice")


def test_usage_policy_of_a_file_dataset_matches(fresh_catalog: SqlCatalog, tmp_path: Path) -> None:
    data = tmp_path / "data" / "x.csv"
    data.parent.mkdir()
    data.write_text("a\n1\n")
    ds = fresh_catalog.register(f"file://{data}", actor="alice", facts={}, source_version="1")
    _approved(fresh_catalog, ds.id)
    assert _reads(tmp_path / "policies", Resource("object", f"file://{data}"))
    assert _reads(tmp_path / "policies", Resource("object", str(data)))


def test_prefix_without_slash_is_granted_as_the_listed_prefix(fresh_catalog: SqlCatalog, tmp_path: Path) -> None:
    ds = fresh_catalog.register("s3://lab/run9", actor="alice", kind="prefix", facts={}, source_version="1")
    assert ds.url == "s3://lab/run9/"
    _approved(fresh_catalog, ds.id)
    assert _reads(tmp_path / "policies", Resource("object", "s3://lab/run9/a.fq"))
    assert not _reads(tmp_path / "policies", Resource("object", "s3://lab/run9-other/a.fq"))


def test_register_with_facts_checks_the_url(fresh_catalog: SqlCatalog) -> None:
    for url in ("file:///data/../etc/passwd", "s3://lab/a/%2e%2e/b"):
        with pytest.raises(UnsafeURL):
            fresh_catalog.register(url, actor="alice", facts={}, source_version="1")
