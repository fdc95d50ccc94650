"""The cockpit's pages in-process (TestClient): rendering, escaping, search, access requests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from cockpit_catalog import MemoryCatalog
from fastapi import FastAPI
from fastapi.testclient import TestClient

from xtremehub.catalog.model import InputRef, JobRecord
from xtremehub.security.identity import Identity
from xtremehub.web import cockpit

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


class LocalGate:
    secured = False

    def authenticate(self, token: str | None) -> Identity:
        return Identity(subject="local", roles=frozenset({"admin"}))

    def allowed(self, identity: Identity, action: object, resource: object) -> bool:
        return True

    def authorize(self, identity: Identity, action: object, resource: object) -> None:
        return None


@pytest.fixture
def catalog(testdata: Path) -> MemoryCatalog:
    cat = MemoryCatalog()
    reads = cat.register(
        str(testdata / "fastq/sample.fastq.bgz"),
        actor="alice",
        title="Sample reads",
        description="2000 reads, 101 bp",
        tags=("genomics", "illumina"),
        format="fastq.gz",
        facts={"reads": 2000, "bases": 202000, "read_length": {"min": 101, "max": 101}},
    )
    calls = cat.register(
        str(testdata / "vcf/ex1.vcf.gz"),
        actor="alice",
        title="Variant calls",
        format="vcf.gz",
        tags=("genomics",),
        kind="derived",
    )
    cat.register(str(testdata / "csv-spectrum/csvs/simple.csv"), actor="bob", title="Simple table", format="csv")
    cat.register("s3://lab/evil.txt", actor="mallory", title="Evil " + XSS, description=XSS, tags=(XSS,), format="text")
    t = datetime(2026, 12, 6, tzinfo=UTC)
    cat.record_job(
        JobRecord(
            "job-1", "pipelines.variants.call", "alice", t, t, inputs=(InputRef(reads.id, 1),), outputs=(calls.id,)
        )
    )
    return cat


@pytest.fixture
def client(catalog: MemoryCatalog, tmp_path: Path) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.xhub = SimpleNamespace(catalog=catalog, gate=LocalGate(), settings=None, config=None)
    app.include_router(cockpit.router)
    cockpit.setup(app)
    with TestClient(app) as c:
        yield c


def test_search_facets_and_pages(client: TestClient) -> None:
    page = client.get("/cockpit/datasets", params={"q": "reads"})
    assert page.status_code == 200
    assert "Sample reads" in page.text
    assert "Variant calls" not in page.text
    assert "1 dataset" in page.text
    page = client.get("/cockpit/datasets", params={"tag": "genomics"})
    assert "Sample reads" in page.text
    assert "Variant calls" in page.text
    assert "Simple table" not in page.text
    fragment = client.get("/cockpit/datasets", params={"q": "table"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert "Simple table" in fragment.text
    assert "Content-Security-Policy" in page.headers
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_detail_shows_facts_lineage_and_preview(client: TestClient, catalog: MemoryCatalog) -> None:
    page = client.get("/cockpit/datasets/ds-1")
    assert page.status_code == 200
    for text in ("Sample reads", "read_length.min", "202000", "genomics", "/cockpit/datasets/ds-1/preview.png", "<svg"):
        assert text in page.text
    png = client.get("/cockpit/datasets/ds-1/preview.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content[:4] == b"\x89PNG"
    table = client.get("/cockpit/datasets/ds-3/preview.html")
    assert "<th>a</th>" in table.text
    assert client.get("/cockpit/datasets/ds-4/preview.png").status_code == 404
    assert client.get("/cockpit/datasets/nope").status_code == 404


def test_html_in_descriptions_and_tags_is_text(client: TestClient) -> None:
    for url in ("/cockpit/datasets/ds-4", "/cockpit/datasets?q=evil"):
        page = client.get(url).text
        assert "<script>window.__xss" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page


def test_request_and_approve_access(client: TestClient, catalog: MemoryCatalog) -> None:
    answer = client.post("/cockpit/datasets/ds-1/access", data={"purpose": "train a caller", "days": "30"})
    assert answer.status_code == 200
    assert "Your request was filed" in answer.text
    (req,) = catalog.access_requests(dataset_id="ds-1")
    listing = client.get("/cockpit/access")
    assert "train a caller" in listing.text
    assert "Approve" in listing.text
    done = client.post(f"/cockpit/access/{req.id}", data={"decision": "approve", "etag": req.etag})
    assert done.status_code == 200
    assert "approved" in done.text
    assert catalog.access_requests(dataset_id="ds-1")[0].status == "approved"
    stale = client.post(f"/cockpit/access/{req.id}", data={"decision": "reject", "etag": req.etag})
    assert stale.status_code in (400, 409)
    assert catalog.access_requests(dataset_id="ds-1")[0].status == "approved"


def test_static_files_are_served_offline(client: TestClient) -> None:
    js = client.get("/cockpit/static/vendor/htmx.min.js")
    assert js.status_code == 200
    assert "htmx" in js.text[:2000]
    page = client.get("/cockpit/datasets").text
    assert "https://" not in page.split("<main>")[0], "a CDN link in the page head"
