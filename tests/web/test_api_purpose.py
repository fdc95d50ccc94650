"""A stated purpose of use (``X-XHub-Purpose``, the cockpit's purpose cookie) decides with the
usage policies approved access requests write: the approved dataset appears in the requester's
search, opens, and previews its data for the approved purpose only."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import bearer, with_usage_policies
from xtremehub import storage
from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import Settings
from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig, UserEntry, hash_secret

#: Everyone may search; curators do everything; nobody else reads a dataset without a usage policy.
POLICIES = """
@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");
@id("curate") permit(principal in XHub::Role::"curator", action, resource);
"""
URL = "mem://clinic/cohort.csv"


@pytest.fixture
def app_client(tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer) -> Iterator[TestClient]:
    """Security on: :data:`POLICIES` plus the usage policies approvals write (applied at once)."""
    storage.put(URL, b"id,age\n1,54\n2,61\n")
    with with_usage_policies(tmp_path, settings, catalog, issuer, POLICIES) as c:
        yield c


def _approved(client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog, purpose: str) -> str:
    """Register :data:`URL` as carol's; bob asks for it for ``purpose``; carol approves. The dataset id."""
    ds = catalog.register(URL, actor="carol", kind="object", format="csv", facts={}, source_version="1")
    bob, carol = bearer(issuer, "bob"), bearer(issuer, "carol", "curator")
    made = client.post(f"/api/v1/datasets/{ds.id}/access-requests", json={"purpose": purpose}, headers=bob)
    assert made.status_code == 201, made.text
    ok = client.post(
        f"/api/v1/access-requests/{made.json()['id']}/approve", headers={**carol, "If-Match": made.headers["etag"]}
    )
    assert ok.status_code == 200, ok.text
    return ds.id


def test_the_approved_purpose_opens_the_dataset_in_search_and_its_data(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog
) -> None:
    ds_id = _approved(app_client, issuer, catalog, "cohort study")
    bob = bearer(issuer, "bob")
    stated = {**bob, "X-XHub-Purpose": "cohort study"}
    other = {**bob, "X-XHub-Purpose": "marketing"}

    for headers, visible in ((bob, False), (other, False), (stated, True)):
        got = app_client.get(f"/api/v1/datasets/{ds_id}", headers=headers)
        assert got.status_code == (200 if visible else 403), (headers.get("X-XHub-Purpose"), got.text)
        page = app_client.get("/api/v1/datasets", params={"q": "cohort"}, headers=headers).json()
        assert [d["id"] for d in page["items"]] == ([ds_id] if visible else [])
        assert page["total"] == (1 if visible else 0)
        everything = app_client.get("/api/v1/datasets", headers=headers).json()
        assert everything["total"] == (1 if visible else 0)
        assert sum(everything["facets"]["format"].values()) == (1 if visible else 0)
        preview = app_client.get("/api/v1/objects/preview", params={"url": URL}, headers=headers)
        assert preview.status_code == (200 if visible else 403), preview.text
        if visible:
            assert "54" in preview.text

    # the purpose is trimmed; one with control characters or too long is refused, naming the header
    assert app_client.get(f"/api/v1/datasets/{ds_id}", headers={**bob, "X-XHub-Purpose": " cohort study "}).is_success
    long = app_client.get(f"/api/v1/datasets/{ds_id}", headers={**bob, "X-XHub-Purpose": "p" * 501})
    assert long.status_code == 422
    assert "X-XHub-Purpose" in long.text
    # the OpenAPI document names the header
    spec = app_client.get("/api/v1/openapi.json").json()
    params = spec["paths"]["/api/v1/datasets/{dataset_id}"]["get"]["parameters"]
    assert any(p["name"] == "X-XHub-Purpose" and p["in"] == "header" for p in params)


def test_the_cockpit_decides_for_the_purpose_the_viewer_states(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog
) -> None:
    ds_id = _approved(app_client, issuer, catalog, "cohort study")
    app_client.cookies.set("xhub_session", bearer(issuer, "bob")["Authorization"].split()[1])
    assert app_client.get(f"/cockpit/datasets/{ds_id}").status_code == 403
    assert ds_id not in app_client.get("/cockpit/datasets", params={"q": "cohort"}).text

    r = app_client.post(
        "/cockpit/purpose", data={"purpose": "cohort study", "next": "/cockpit/datasets"}, follow_redirects=False
    )
    assert (r.status_code, r.headers["location"]) == (303, "/cockpit/datasets")
    page = app_client.get("/cockpit/datasets", params={"q": "cohort"})
    assert ds_id in page.text
    assert 'value="cohort study"' in page.text  # the header's form shows the stated purpose
    assert app_client.get(f"/cockpit/datasets/{ds_id}").status_code == 200

    # an off-site ``next`` goes home; an empty purpose drops it again
    r = app_client.post("/cockpit/purpose", data={"purpose": "", "next": "//evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/cockpit/"
    assert app_client.get(f"/cockpit/datasets/{ds_id}").status_code == 403


def test_a_purpose_outside_latin_1_travels_percent_encoded(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog
) -> None:
    ds_id = _approved(app_client, issuer, catalog, "研究 für Lunge")
    bob = bearer(issuer, "bob")
    encoded = urllib.parse.quote("研究 für Lunge", safe="")
    assert app_client.get(f"/api/v1/datasets/{ds_id}", headers={**bob, "X-XHub-Purpose": encoded}).status_code == 200
    bad = app_client.get(f"/api/v1/datasets/{ds_id}", headers={**bob, "X-XHub-Purpose": "%FF%FE"})
    assert bad.status_code == 422
    assert "UTF-8" in bad.text
    app_client.cookies.set("xhub_session", bob["Authorization"].split()[1])
    r = app_client.post("/cockpit/purpose", data={"purpose": "研究 für Lunge", "next": "/cockpit/datasets?q=x"})
    assert r.status_code == 200  # followed to the search page, its query kept
    assert r.url.query == b"q=x"
    assert 'value="研究 für Lunge"' in r.text
    assert app_client.get(f"/cockpit/datasets/{ds_id}").status_code == 200


def test_logging_in_drops_the_previous_viewers_purpose(tmp_path: Path, settings: Settings, catalog: SqlCatalog) -> None:
    users = {"bob": UserEntry("bob", password_hash=hash_secret("pw", rounds=4))}
    with (
        EmbeddedIssuer(IssuerConfig(audience="xtremehub", users=users)) as own,
        with_usage_policies(tmp_path, settings, catalog, own, POLICIES) as client,
    ):
        client.cookies.set("xhub_purpose", "alice%27s%20study")  # left by the previous viewer
        form = {"username": "bob", "password": "pw", "next": "/cockpit/"}
        r = client.post("/cockpit/login", data=form, follow_redirects=False)
        assert r.status_code == 303, r.text
        cookies = r.headers.get_list("set-cookie")
        assert any(c.startswith("xhub_session=") for c in cookies)
        assert any(c.startswith("xhub_purpose=") and "Max-Age=0" in c for c in cookies), cookies
