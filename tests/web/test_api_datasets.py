"""Datasets over REST: register, get, patch with If-Match, delete, versions, search."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import bearer
from xtremehub.security.issuer import EmbeddedIssuer

FACTS = {"reads": 1000, "bases": 150_000}


def _register(client: TestClient, url: str = "s3://lab/run7/reads.fastq.gz", **fields: object) -> dict:
    body = {"url": url, "title": "Run 7 reads", "format": "fastq.gz", "tags": ["lungs"], "facts": FACTS, **fields}
    r = client.post("/api/v1/datasets", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == f'"{r.json()["etag"]}"'
    assert r.headers["location"].endswith("/api/v1/datasets/" + r.json()["id"])
    return dict(r.json())


def test_register_get_patch_delete(client: TestClient) -> None:
    ds = _register(client)
    assert ds["owner"] == "local"
    assert ds["facts"] == FACTS
    got = client.get(f"/api/v1/datasets/{ds['id']}")
    assert got.status_code == 200
    assert got.json()["title"] == "Run 7 reads"
    etag = got.headers["etag"]
    patched = client.patch(f"/api/v1/datasets/{ds['id']}", json={"title": "Run 7"}, headers={"If-Match": etag})
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Run 7"
    assert patched.headers["etag"] != etag
    # the first writer's etag is now stale: a lost update is refused, nothing overwritten
    stale = client.patch(f"/api/v1/datasets/{ds['id']}", json={"title": "lost"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert client.get(f"/api/v1/datasets/{ds['id']}").json()["title"] == "Run 7"
    missing = client.patch(f"/api/v1/datasets/{ds['id']}", json={"title": "x"})
    assert missing.status_code == 428
    assert client.delete(f"/api/v1/datasets/{ds['id']}").status_code == 428
    gone = client.delete(f"/api/v1/datasets/{ds['id']}", headers={"If-Match": patched.headers["etag"]})
    assert gone.status_code == 204
    nf = client.get(f"/api/v1/datasets/{ds['id']}")
    assert nf.status_code == 404
    assert nf.json()["status"] == 404
    assert ds["id"] in nf.json()["detail"]


def test_versions_and_search_with_facets_and_pages(client: TestClient) -> None:
    for i in range(5):
        _register(client, f"s3://lab/run{i}/reads.fastq.gz", title=f"run {i} lungs", tags=["lungs", f"r{i}"])
    _register(client, "s3://lab/x.vcf.gz", title="variants", format="vcf.gz", tags=["genome"])
    page = client.get("/api/v1/datasets", params={"q": "lungs", "limit": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 5
    assert len(body["items"]) == 2
    assert body["facets"]["format"] == {"fastq.gz": 5}
    assert body["next"] is not None
    assert "offset=2" in body["next"]
    last = client.get(body["next"].replace("offset=2", "offset=4")).json()
    assert len(last["items"]) == 1
    assert last["next"] is None
    vcf = client.get("/api/v1/datasets", params=[("format", "vcf.gz")]).json()
    assert [d["title"] for d in vcf["items"]] == ["variants"]
    first = body["items"][0]["id"]
    versions = client.get(f"/api/v1/datasets/{first}/versions")
    assert versions.status_code == 200
    assert versions.json()[0]["number"] == 1


def test_security_401_403_and_allowed(secured: TestClient, issuer: EmbeddedIssuer) -> None:
    r = secured.get("/api/v1/datasets")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    token = issuer.issue("mallory")
    bad = secured.get("/api/v1/datasets", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert token[:-4] not in bad.text  # the token never comes back
    assert secured.get("/api/v1/datasets", headers={"Authorization": "Basic abc"}).status_code == 401
    # bob may discover (search) but not register or read one
    bob = bearer(issuer, "bob")
    assert secured.get("/api/v1/datasets", headers=bob).status_code == 200
    curator = bearer(issuer, "carol", "curator")
    created = secured.post("/api/v1/datasets", json={"url": "s3://lab/a.csv", "facts": {}}, headers=curator)
    assert created.status_code == 201, created.text
    denied = secured.post("/api/v1/datasets", json={"url": "s3://lab/b.csv", "facts": {}}, headers=bob)
    assert denied.status_code == 403
    assert denied.json()["title"] == "Forbidden"
    ds = created.json()["id"]
    assert secured.get(f"/api/v1/datasets/{ds}", headers=bob).status_code == 403
    assert secured.get(f"/api/v1/datasets/{ds}", headers=bearer(issuer, "alice", "research")).status_code == 200
    assert secured.get("/api/v1/health").status_code == 200  # no token needed
    assert secured.get("/api/v1/openapi.json").status_code == 200
