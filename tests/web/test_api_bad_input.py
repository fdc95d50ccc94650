"""Bad input gets a clear problem answer and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from xtremehub.catalog.model import SearchQuery
from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import Settings
from xtremehub.web import WebConfig, create_app

PROBLEM = "application/problem+json"


def test_malformed_json_is_400(client: TestClient, catalog: SqlCatalog) -> None:
    for body in (b'{"url": "s3://a/b"', b"\xff\xfe", b'{"url": }', b"[1, 2"):
        r = client.post("/api/v1/datasets", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert "not valid JSON" in r.json()["detail"]
    assert catalog.search(SearchQuery()).total == 0


def test_unknown_fields_and_bad_values_are_422_naming_the_field(client: TestClient, catalog: SqlCatalog) -> None:
    r = client.post("/api/v1/datasets", json={"url": "s3://a/b", "colour": "red"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.colour"
    assert "colour" in r.json()["detail"]
    r = client.post("/api/v1/datasets", json={"url": "s3://a/b", "tags": ["x" * 101]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.tags.0"
    assert client.post("/api/v1/datasets", json={"url": "s3://a/b", "kind": "table"}).status_code == 422
    assert client.post("/api/v1/datasets", json=["s3://a/b"]).status_code == 422
    assert client.get("/api/v1/datasets", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/datasets", params={"limit": "ten"}).status_code == 422
    assert catalog.search(SearchQuery()).total == 0


def test_oversized_bodies_are_413_before_being_read(settings: Settings, catalog: SqlCatalog) -> None:
    app = create_app(WebConfig(max_body_bytes=4096), catalog=catalog, settings=settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        big = {"url": "s3://a/b", "description": "x" * 10_000}
        r = client.post("/api/v1/datasets", json=big)
        assert r.status_code == 413
        assert r.headers["content-type"] == PROBLEM
        assert "4096" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
            yield b'{"url": "s3://a/b", "description": "'
            for _ in range(100):
                yield b"y" * 1000
            yield b'"}'

        r = client.post("/api/v1/datasets", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        small = client.post("/api/v1/datasets", json={"url": "s3://a/b", "facts": {}, "source_version": "v1"})
        assert small.status_code == 201
    assert catalog.search(SearchQuery()).total == 1


def test_sql_metacharacters_and_long_search_strings(client: TestClient) -> None:
    client.post(
        "/api/v1/datasets",
        json={"url": "s3://a/b", "title": "O'Brien; DROP TABLE datasets; --", "facts": {}, "source_version": "v1"},
    )
    for q in ("'; DROP TABLE datasets; --", "%", "_", '" OR 1=1 --', "\\", "a' OR 'a'='a", "*", "NULL"):
        r = client.get("/api/v1/datasets", params={"q": q})
        assert r.status_code == 200, (q, r.text)
    hit = client.get("/api/v1/datasets", params={"q": "DROP TABLE"}).json()
    assert hit["total"] == 1
    assert client.get("/api/v1/datasets", params={"q": "x" * 1000}).status_code == 200
    long = client.get("/api/v1/datasets", params={"q": "x" * 1001})
    assert long.status_code == 422
    assert long.json()["detail"].startswith("q:")
    assert client.get("/api/v1/datasets", params={"q": "x" * 20_000}).status_code == 422
    assert client.get("/api/v1/datasets", params={"tag": "t" * 501}).status_code == 422
    assert client.get("/api/v1/datasets").json()["total"] == 1  # still there


def test_html_in_descriptions_is_returned_as_data(client: TestClient) -> None:
    script = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    made = client.post(
        "/api/v1/datasets",
        json={"url": "s3://a/h", "description": script, "tags": ["<b>"], "facts": {}, "source_version": "v1"},
    )
    assert made.status_code == 201
    got = client.get(f"/api/v1/datasets/{made.json()['id']}")
    assert got.headers["content-type"] == "application/json"  # never text/html
    assert got.json()["description"] == script
    assert got.json()["tags"] == ["<b>"]


def test_path_traversal_in_registered_urls_is_400(client: TestClient, catalog: SqlCatalog) -> None:
    for url in ("/data/lab/../../etc/shadow", "s3://lab/a/../../b", "s3://..", "file:///data/./x"):
        r = client.post("/api/v1/datasets", json={"url": url, "facts": {}, "source_version": "v1"})
        assert r.status_code == 400, url
        assert "refused" in r.json()["detail"]
    for url in ("file:///data/%2e%2e/etc", "s3://lab/a\\..\\b", "s3://a/\x00b"):  # outside the documented pattern
        r = client.post("/api/v1/datasets", json={"url": url, "facts": {}, "source_version": "v1"})
        assert r.status_code == 400, url
        assert r.json()["errors"][0]["field"] == "body.url"
    assert catalog.search(SearchQuery()).total == 0


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    r = client.put("/api/v1/datasets")
    assert r.status_code == 405
    assert r.headers["content-type"] == PROBLEM


def test_tokens_never_come_back_in_problems(secured: TestClient) -> None:
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJldmUifQ."
    r = secured.get("/api/v1/datasets", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert forged not in r.text
    assert "eyJ" not in r.text
