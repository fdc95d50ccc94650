"""An approver grants only what they could use themselves: the data (object, prefix or stream)
and the release of the dataset's key, for the request's purpose; an admin approves anyway.
An approved stream dataset is readable for its purpose until the approval is revoked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import bearer
from xtremehub import storage
from xtremehub.catalog.store import SqlCatalog
from xtremehub.cli.serve import security
from xtremehub.config import Settings
from xtremehub.security.issuer import EmbeddedIssuer
from xtremehub.streams import StreamManager
from xtremehub.web import WebConfig, create_app
from xtremehub.web.streams import StreamSource

#: Everyone reads datasets' metadata and asks for access; "lab" reads the secret bucket, "icu" the
#: icu scope; "keys" release every dataset's key; "study" reads the bucket and keys for "research" only;
#: "admin" administers datasets (and so decides any request), without reading data or keys.
POLICIES = """
@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");
@id("meta") permit(principal, action == XHub::Action::"read", resource is XHub::Dataset);
@id("lab") permit(principal in XHub::Role::"lab", action == XHub::Action::"read",
                  resource in XHub::Bucket::"mem://approver-secret");
@id("icu") permit(principal in XHub::Role::"icu", action == XHub::Action::"read", resource in XHub::Scope::"icu");
@id("admins") permit(principal in XHub::Role::"admin", action == XHub::Action::"admin", resource is XHub::Dataset);
@id("keys") permit(principal in XHub::Role::"keys", action == XHub::Action::"read", resource is XHub::Key);
@id("study") permit(principal in XHub::Role::"study", action == XHub::Action::"read", resource)
             when { context.purpose == "research" && (resource is XHub::Key ||
                    resource in XHub::Bucket::"mem://approver-secret") };
"""
SECRET = "mem://approver-secret/patients.csv"


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[StreamManager]:
    m = StreamManager.embedded(tmp_path / "streams", lts=str(tmp_path / "lts") + "/")
    m.create_scope("icu")
    m.create_stream("icu", "monitor")
    m.create_stream("icu", "other")
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def app_client(
    tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer, manager: StreamManager
) -> Iterator[TestClient]:
    """Security on as ``xhub serve --policy`` runs it (:data:`POLICIES` plus the catalog's usage
    policies), with a real embedded stream store behind the stream endpoints."""
    storage.put(SECRET, b"name,diagnosis\nalice,cancer\n")
    where = tmp_path / "pol"
    where.mkdir()
    (where / "web.cedar").write_text(POLICIES)
    config = WebConfig(security=True, oidc_issuer=issuer.url, policy=(str(where),))
    validator, authorizer = security(config, Settings(home=tmp_path / "catalog-home"))
    source = StreamSource(None, settings, manager=manager)
    app = create_app(
        config, catalog=catalog, settings=settings, validator=validator, authorizer=authorizer, streams=source
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def _ask(client: TestClient, issuer: EmbeddedIssuer, ds_id: str, purpose: str) -> tuple[str, str]:
    made = client.post(
        f"/api/v1/datasets/{ds_id}/access-requests", json={"purpose": purpose}, headers=bearer(issuer, "carol")
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.headers["etag"]


def _approve(client: TestClient, issuer: EmbeddedIssuer, asked: tuple[str, str], who: str, *roles: str) -> TestClient:
    return client.post(  # type: ignore[return-value]
        f"/api/v1/access-requests/{asked[0]}/approve", headers={**bearer(issuer, who, *roles), "If-Match": asked[1]}
    )


def test_approving_an_object_needs_the_release_of_its_key(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog, tmp_path: Path
) -> None:
    policies = tmp_path / "catalog-home" / "policies"
    ds = catalog.register(SECRET, actor="lena", kind="object", format="csv", facts={}, source_version="1")
    asked = _ask(app_client, issuer, ds.id, "research")
    r = _approve(app_client, issuer, asked, "lena", "lab")  # reads the object, may not release its key
    assert r.status_code == 403
    assert f"may not grant the key of {ds.id}" in r.text
    assert not list(policies.glob("access-*"))
    assert catalog.get_access_request(asked[0]).status == "pending"
    # ... nor through the cockpit form
    app_client.cookies.set("xhub_session", bearer(issuer, "lena", "lab")["Authorization"].split()[1])
    form = app_client.post(f"/cockpit/access/{asked[0]}", data={"decision": "approve", "etag": asked[1]})
    assert form.status_code == 400
    assert "may not grant the key" in form.text
    app_client.cookies.clear()
    assert catalog.get_access_request(asked[0]).status == "pending"

    # rights for another purpose than the request's are not enough
    ds2 = catalog.register(SECRET + ".2", actor="pia", kind="object", format="csv", facts={}, source_version="1")
    storage.put(SECRET + ".2", b"x\n")
    marketing = _ask(app_client, issuer, ds2.id, "marketing")
    assert _approve(app_client, issuer, marketing, "pia", "study").status_code == 403
    research = _ask(app_client, issuer, ds2.id, "research")
    assert _approve(app_client, issuer, research, "pia", "study").status_code == 200

    # with the data and the key, the owner approves; an admin approves without either
    ok = _approve(app_client, issuer, asked, "lena", "lab", "keys")
    assert ok.status_code == 200, ok.text
    ds3 = catalog.register("mem://elsewhere/x.csv", actor="dave", kind="object", facts={}, source_version="1")
    other = _ask(app_client, issuer, ds3.id, "research")
    assert _approve(app_client, issuer, other, "root", "admin").status_code == 200


def test_an_approved_stream_is_readable_for_its_purpose_until_revoked(
    app_client: TestClient, issuer: EmbeddedIssuer, catalog: SqlCatalog
) -> None:
    ds = catalog.register("xhub-stream://icu/monitor", actor="sam", kind="stream", facts={}, source_version="c1")
    page = "/api/v1/streams/scopes/icu/streams/monitor"
    carol = bearer(issuer, "carol")
    stated = {**carol, "X-XHub-Purpose": "sepsis study"}
    assert app_client.get(page, headers=stated).status_code == 403

    asked = _ask(app_client, issuer, ds.id, "sepsis study")
    r = _approve(app_client, issuer, asked, "sam", "keys")  # the owner may not read the stream himself
    assert r.status_code == 403
    assert "may not read it themselves" in r.text
    r = _approve(app_client, issuer, asked, "sam", "icu")  # reads the stream, may not release its key
    assert r.status_code == 403
    assert "may not grant the key" in r.text
    ok = _approve(app_client, issuer, asked, "sam", "icu", "keys")
    assert ok.status_code == 200, ok.text

    got = app_client.get(page, headers=stated)
    assert got.status_code == 200, got.text
    assert got.json()["segments"]
    assert app_client.get(page + "/rate", headers=stated).status_code == 200
    assert app_client.get(page, headers={**carol, "X-XHub-Purpose": "marketing"}).status_code == 403
    assert app_client.get(page, headers=carol).status_code == 403
    assert app_client.get("/api/v1/streams/scopes/icu/streams/other", headers=stated).status_code == 403

    revoked = app_client.post(
        f"/api/v1/access-requests/{asked[0]}/reject",
        headers={**bearer(issuer, "sam", "icu", "keys"), "If-Match": ok.headers["etag"]},
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert app_client.get(page, headers=stated).status_code == 403
