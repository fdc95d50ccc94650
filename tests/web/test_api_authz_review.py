"""Regressions of the security review of the REST API and the cockpit (H1, H2, H3, L1, M2, M3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import bearer, with_usage_policies
from xtremehub import storage
from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import Settings
from xtremehub.security.issuer import EmbeddedIssuer
from xtremehub.web import WebConfig, create_app

#: mallory may write datasets and read their metadata, not the lab's objects (nor their keys).
POLICIES = """
@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");
@id("meta") permit(principal, action == XHub::Action::"read", resource is XHub::Dataset);
@id("contrib") permit(principal in XHub::Role::"contributor", action == XHub::Action::"write",
                      resource == XHub::Dataset::"*");
@id("curate") permit(principal in XHub::Role::"curator", action, resource is XHub::Dataset);
@id("lab") permit(principal in XHub::Role::"lab", action == XHub::Action::"read",
                  resource in XHub::Bucket::"mem://secret");
@id("lab-keys") permit(principal in XHub::Role::"lab", action == XHub::Action::"read", resource is XHub::Key);
@id("embargo") forbid(principal, action, resource is XHub::Dataset)
               when { resource has tags && resource.tags.contains("embargo") };
"""
SECRET = "mem://secret/patients.csv"


@pytest.fixture
def app_client(tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer) -> Iterator[TestClient]:
    """Security on, the review's policies plus the usage policies approvals write."""
    storage.put(SECRET, b"name,diagnosis\nalice,cancer\nbob,flu\n")
    with with_usage_policies(tmp_path, settings, catalog, issuer, POLICIES) as c:
        yield c


def test_registering_an_unreadable_object_is_refused_for_every_kind(
    app_client: TestClient, issuer: EmbeddedIssuer
) -> None:
    h = bearer(issuer, "mallory", "contributor")
    assert app_client.get("/api/v1/objects/preview", params={"url": SECRET}, headers=h).status_code == 403
    for kind in ("object", "derived", "prefix"):
        body = {"url": SECRET, "kind": kind, "format": "csv", "facts": {}, "source_version": "1"}
        assert app_client.post("/api/v1/datasets", json=body, headers=h).status_code == 403, kind


def test_previews_and_approvals_need_the_data(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog, tmp_path: Path
) -> None:
    ds = catalog.register(SECRET, actor="mallory", kind="derived", format="csv", facts={}, source_version="1")
    h = bearer(issuer, "mallory", "contributor")
    app_client.cookies.set("xhub_session", h["Authorization"].split()[1])
    for suffix in ("preview.html", "preview.png"):
        r = app_client.get(f"/cockpit/datasets/{ds.id}/{suffix}")
        assert r.status_code == 403, suffix
        assert "cancer" not in r.text
    page = app_client.get(f"/cockpit/datasets/{ds.id}")
    assert page.status_code == 200
    assert "preview.html" not in page.text
    r = app_client.post(f"/api/v1/datasets/{ds.id}/access-requests", json={"purpose": "x"}, headers=h)
    rid, etag = r.json()["id"], r.headers["etag"]
    r = app_client.post(f"/api/v1/access-requests/{rid}/approve", headers={**h, "If-Match": etag})
    assert r.status_code == 403
    assert "own request" in r.text
    # a dataset whose approval grants no data (a stream): still never one's own (it covers the key)
    cam = catalog.register("xhub-stream://lab/cam", actor="mallory", kind="stream", facts={}, source_version="1")
    r = app_client.post(f"/api/v1/datasets/{cam.id}/access-requests", json={"purpose": "x"}, headers=h)
    r = app_client.post(
        f"/api/v1/access-requests/{r.json()['id']}/approve", headers={**h, "If-Match": r.headers["etag"]}
    )
    assert r.status_code == 403
    assert "own request" in r.text
    assert not list((tmp_path / "catalog-home" / "policies").glob("access-*"))
    # the owner (mallory) may not grant carol what mallory cannot read
    r = app_client.post(
        f"/api/v1/datasets/{ds.id}/access-requests", json={"purpose": "y"}, headers=bearer(issuer, "carol")
    )
    r = app_client.post(
        f"/api/v1/access-requests/{r.json()['id']}/approve", headers={**h, "If-Match": r.headers["etag"]}
    )
    assert r.status_code == 403
    assert "may not read it themselves" in r.text
    # ... and neither through the cockpit form
    req = catalog.request_access(ds.id, actor="dave", purpose="z")
    r = app_client.post(f"/cockpit/access/{req.id}", data={"decision": "approve", "etag": req.etag})
    assert r.status_code == 400
    assert catalog.get_access_request(req.id).status == "pending"
    # a lab member who owns the dataset may grant it
    lab = bearer(issuer, "lena", "lab", "contributor")
    own = catalog.register("mem://secret/other.csv", actor="lena", kind="object", facts={}, source_version="1")
    storage.put("mem://secret/other.csv", b"a\n")
    r = app_client.post(f"/api/v1/datasets/{own.id}/access-requests", json={"purpose": "p"}, headers=h)
    r = app_client.post(
        f"/api/v1/access-requests/{r.json()['id']}/approve", headers={**lab, "If-Match": r.headers["etag"]}
    )
    assert r.status_code == 200, r.text


def test_reregistering_another_owners_url_needs_write_on_it(app_client: TestClient, issuer: EmbeddedIssuer) -> None:
    lab = bearer(issuer, "lena", "lab", "contributor")
    body = {"url": SECRET, "kind": "object", "facts": {"a": 1}, "source_version": "1"}
    assert app_client.post("/api/v1/datasets", json=body, headers=lab).status_code == 201
    other = bearer(issuer, "lou", "lab", "contributor")  # may read the object, not write lena's dataset
    r = app_client.post(
        "/api/v1/datasets", json={**body, "facts": {"a": "forged"}, "source_version": "2"}, headers=other
    )
    assert r.status_code == 403
    assert app_client.post("/api/v1/datasets", json={**body, "source_version": "2"}, headers=lab).status_code == 403
    curator = bearer(issuer, "lena", "lab", "curator")  # may write the dataset: a new version, same kind only
    r = app_client.post("/api/v1/datasets", json={**body, "kind": "derived", "source_version": "2"}, headers=curator)
    assert r.status_code == 422
    assert "registered as object" in r.text
    r = app_client.post("/api/v1/datasets", json={**body, "source_version": "2"}, headers=curator)
    assert r.status_code == 201
    assert r.json()["latest_version"] == 2


def test_tag_policies_hold_in_search_lineage_and_cockpit(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog
) -> None:
    hidden = catalog.register(
        "s3://lab/secret.csv", actor="alice", kind="derived", title="EMBARGOED-TITLE", tags=("embargo",),
        facts={"k": "v"}, source_version="1",
    )  # fmt: skip
    catalog.register("s3://lab/open.csv", actor="alice", title="open one", tags=("open",), facts={}, source_version="1")
    h = bearer(issuer, "bob")
    assert app_client.get(f"/api/v1/datasets/{hidden.id}", headers=h).status_code == 403
    page = app_client.get("/api/v1/datasets", headers=h).json()
    assert [d["title"] for d in page["items"]] == ["open one"]
    assert page["total"] == 1
    assert "embargo" not in page["facets"]["tag"]
    assert page["facets"]["kind"] == {"object": 1}
    app_client.cookies.set("xhub_session", h["Authorization"].split()[1])
    assert app_client.get(f"/cockpit/datasets/{hidden.id}").status_code == 403
    listing = app_client.get("/cockpit/datasets")
    assert "EMBARGOED-TITLE" not in listing.text
    assert "open one" in listing.text
    assert "embargo" not in listing.text


def test_cockpit_shows_others_requests_only_to_deciders(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog
) -> None:
    ds = catalog.register("s3://lab/shared.csv", actor="alice", facts={}, source_version="1")
    catalog.request_access(ds.id, actor="carol", purpose="carol-secret-purpose")
    app_client.cookies.set("xhub_session", bearer(issuer, "bob")["Authorization"].split()[1])
    assert "carol-secret-purpose" not in app_client.get(f"/cockpit/datasets/{ds.id}").text
    app_client.cookies.set("xhub_session", bearer(issuer, "alice")["Authorization"].split()[1])
    assert "carol-secret-purpose" in app_client.get(f"/cockpit/datasets/{ds.id}").text


def test_security_off_single_user_still_does_everything(client: TestClient, tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_text("a,b\n1,2\n")
    body = {"url": f"file://{data}", "kind": "derived", "format": "csv", "facts": {}, "source_version": "1"}
    r = client.post("/api/v1/datasets", json=body)
    assert r.status_code == 201
    ds = r.json()["id"]
    assert client.get(f"/cockpit/datasets/{ds}/preview.html").status_code == 200
    r = client.post(f"/api/v1/datasets/{ds}/access-requests", json={"purpose": "x"})
    r = client.post(f"/api/v1/access-requests/{r.json()['id']}/approve", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 200  # the local user is an admin: self-approval is theirs to make
    assert client.get("/api/v1/datasets").json()["total"] == 1


def test_rebound_host_names_and_cross_site_posts_are_refused(client: TestClient, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("id_rsa-contents\n")
    r = client.get("/api/v1/objects/preview", params={"url": str(secret)}, headers={"Host": "attacker.example:8000"})
    assert r.status_code == 400
    assert "id_rsa" not in r.text
    body = b'{"url":"file:///etc/hostname","kind":"derived","facts":{},"source_version":"1"}'
    for headers in (
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "application/json", "Origin": "null"},
    ):
        r = client.post("/api/v1/datasets", content=body, headers=headers)
        assert r.status_code == 403, headers
    r = client.post(
        "/cockpit/access/ar-x", data={"decision": "approve", "etag": "e"}, headers={"Origin": "http://x.io"}
    )
    assert r.status_code == 403
    # the same origin, and clients that are not browsers, still work
    assert client.get("/api/v1/datasets", headers={"Host": "localhost:8000"}).status_code == 200
    same = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}
    data = tmp_path / "x.csv"
    data.write_text("a\n1\n")
    ok = {"url": f"file://{data}", "facts": {}, "source_version": "1"}
    assert client.post("/api/v1/datasets", json=ok, headers=same).status_code == 201


def test_allowed_hosts_come_from_the_config(catalog: SqlCatalog, settings: Settings) -> None:
    config = WebConfig.load(config_file=None, env={"XHUB_WEB_ALLOWED_HOSTS": "hub.lab.example"})
    assert config.allowed_hosts == ("hub.lab.example",)
    with TestClient(create_app(config, catalog=catalog, settings=settings), base_url="http://hub.lab.example") as c:
        assert c.get("/api/v1/datasets").status_code == 200
        assert c.get("/api/v1/datasets", headers={"Host": "other.example"}).status_code == 400
