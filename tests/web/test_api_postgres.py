"""One smoke test of the API on the real PostgreSQL catalog (the rest run on SQLite)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from xtremehub.catalog import open_catalog
from xtremehub.config import Settings
from xtremehub.testing.postgres import PostgresServer
from xtremehub.web import WebConfig, create_app


def test_register_search_patch_on_postgres(postgres: PostgresServer, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    catalog = open_catalog(postgres.create_database("xhub_web"), settings=settings)
    with (
        catalog,
        TestClient(create_app(WebConfig(), catalog=catalog, settings=settings), base_url="http://127.0.0.1") as client,
    ):
        body = {"url": "s3://lab/pg.vcf.gz", "title": "variants", "tags": ["genome"], "facts": {"contigs": 24}}
        made = client.post("/api/v1/datasets", json={**body, "source_version": "e1", "format": "vcf.gz"})
        assert made.status_code == 201, made.text
        ds = made.json()
        page = client.get("/api/v1/datasets", params={"q": "variants", "tag": "genome"}).json()
        assert [d["id"] for d in page["items"]] == [ds["id"]]
        assert page["facets"]["format"] == {"vcf.gz": 1}
        ok = client.patch(f"/api/v1/datasets/{ds['id']}", json={"title": "v2"}, headers={"If-Match": ds["etag"]})
        assert ok.status_code == 200, ok.text
        stale = client.patch(f"/api/v1/datasets/{ds['id']}", json={"title": "v3"}, headers={"If-Match": ds["etag"]})
        assert stale.status_code == 412
        assert client.get(f"/api/v1/datasets/{ds['id']}").json()["title"] == "v2"
        injected = client.get("/api/v1/datasets", params={"q": "'; DROP TABLE datasets; --"})
        assert injected.status_code == 200
        assert client.get("/api/v1/datasets").json()["total"] == 1
