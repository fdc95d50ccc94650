"""The cockpit's pages in-process (TestClient): rendering, escaping, search, access requests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import sqlite_catalog
from xtremehub.catalog.model import InputRef, JobRecord, SearchQuery
from xtremehub.config import Settings
from xtremehub.web import WebConfig, create_app

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture
def catalog(testdata: Path, tmp_path: Path) -> Iterator[Any]:
    """The real catalog store on SQLite, with real test files and one job's lineage."""
    (tmp_path / "cat").mkdir()
    with sqlite_catalog(tmp_path / "cat") as cat:
        _fill(cat, testdata)
        yield cat


def _fill(cat: Any, testdata: Path) -> None:
    reads = cat.register(
        (testdata / "fastq/sample.fastq.bgz").as_uri(),
        actor="alice",
        title="Sample reads",
        description="2000 reads, 101 bp",
        tags=("genomics", "illumina"),
        format="fastq.gz",
        source_version="v1",
        facts={"reads": 2000, "bases": 202000, "read_length": {"min": 101, "max": 101}},
    )
    calls = cat.register(
        (testdata / "vcf/ex1.vcf.gz").as_uri(),
        actor="alice",
        title="Variant calls",
        facts={},
        source_version="v1",
        format="vcf.gz",
        tags=("genomics",),
        kind="derived",
    )
    cat.register(
        (testdata / "csv-spectrum/csvs/simple.csv").as_uri(),
        actor="bob",
        title="Simple table",
        format="csv",
        facts={},
        source_version="v1",
    )
    cat.register(
        "s3://lab/evil.txt",
        actor="mallory",
        title="Evil " + XSS,
        description=XSS,
        tags=(XSS,),
        format="text",
        facts={},
        source_version="v1",
    )
    t = datetime(2026, 12, 6, tzinfo=UTC)
    cat.record_job(
        JobRecord(
            "job-1", "pipelines.variants.call", "alice", t, t, inputs=(InputRef(reads.id, 1),), outputs=(calls.id,)
        )
    )


@pytest.fixture
def ids(catalog: Any) -> dict[str, str]:
    """Dataset ids by short name (the store chooses ids)."""
    titles = {"Sample reads": "reads", "Variant calls": "calls", "Simple table": "table"}
    found = {}
    for ds in catalog.search(SearchQuery(limit=50)).items:
        found[titles.get(ds.title, "evil")] = ds.id
    return found


@pytest.fixture
def client(catalog: Any, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(WebConfig(), catalog=catalog, settings=Settings(home=tmp_path / "home"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
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


def test_detail_shows_facts_lineage_and_preview(client: TestClient, catalog: Any, ids: dict[str, str]) -> None:
    page = client.get(f"/cockpit/datasets/{ids['reads']}")
    assert page.status_code == 200
    for text in (
        "Sample reads",
        "read_length.min",
        "202000",
        "genomics",
        f"/cockpit/datasets/{ids['reads']}/preview.png",
        "<svg",
    ):
        assert text in page.text
    png = client.get(f"/cockpit/datasets/{ids['reads']}/preview.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content[:4] == b"\x89PNG"
    table = client.get(f"/cockpit/datasets/{ids['table']}/preview.html")
    assert "<th>a</th>" in table.text
    assert client.get(f"/cockpit/datasets/{ids['evil']}/preview.png").status_code == 404
    assert client.get("/cockpit/datasets/nope").status_code == 404


def test_html_in_descriptions_and_tags_is_text(client: TestClient, ids: dict[str, str]) -> None:
    for url in (f"/cockpit/datasets/{ids['evil']}", "/cockpit/datasets?q=evil"):
        page = client.get(url).text
        assert "<script>window.__xss" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page


def test_request_and_approve_access(client: TestClient, catalog: Any, ids: dict[str, str]) -> None:
    answer = client.post(f"/cockpit/datasets/{ids['reads']}/access", data={"purpose": "train a caller", "days": "30"})
    assert answer.status_code == 200
    assert "Your request was filed" in answer.text
    (req,) = catalog.access_requests(dataset_id=ids["reads"])
    listing = client.get("/cockpit/access")
    assert "train a caller" in listing.text
    assert "Approve" in listing.text
    done = client.post(f"/cockpit/access/{req.id}", data={"decision": "approve", "etag": req.etag})
    assert done.status_code == 200
    assert "approved" in done.text
    assert catalog.access_requests(dataset_id=ids["reads"])[0].status == "approved"
    stale = client.post(f"/cockpit/access/{req.id}", data={"decision": "reject", "etag": req.etag})
    assert stale.status_code in (400, 409)
    assert catalog.access_requests(dataset_id=ids["reads"])[0].status == "approved"


def test_static_files_are_served_offline(client: TestClient) -> None:
    js = client.get("/cockpit/static/vendor/htmx.min.js")
    assert js.status_code == 200
    assert "htmx" in js.text[:2000]
    page = client.get("/cockpit/datasets").text
    assert "https://" not in page.split("<main>")[0], "a CDN link in the page head"


def _telemetry(home: Path) -> None:
    from xtremehub.compute.telemetry import TaskTelemetry
    from xtremehub.optimizer.store import TelemetryStore

    rows = [
        TaskTelemetry(job_id="ex1-M0", call_id=i, worker=f"local-{i % 2}", status="success" if i != 3 else "error",
                      error_type="builtins.ValueError" if i == 3 else "", submit=100.0, start=100.0 + 0.1 * i,
                      end=100.3 + 0.1 * i, bytes_read=1000 * i)
        for i in range(6)
    ]  # fmt: skip
    (home / "optimizer").mkdir(parents=True, exist_ok=True)
    with TelemetryStore(home / "optimizer" / "telemetry.sqlite") as store:
        store.add(rows, function="pipelines.demo.count")


def test_jobs_pages_show_plots_and_failures(tmp_path: Path, catalog: Any) -> None:
    home = tmp_path / "jobs-home"
    _telemetry(home)
    t = datetime(2026, 12, 6, tzinfo=UTC)
    tb = 'Traceback (most recent call last):\n  File "job.py", line 3\nValueError: <b>bad</b> record'
    failed = {"failed_calls": [{"call_id": 3, "error_type": "builtins.ValueError", "remote_traceback": tb}]}
    catalog.record_job(JobRecord("ex1-M0", "pipelines.demo.count", "alice", t, t, status="failed", telemetry=failed))
    app = create_app(WebConfig(), catalog=catalog, settings=Settings(home=home))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        listing = c.get("/cockpit/jobs")
        assert "ex1-M0" in listing.text
        assert "pipelines.demo.count" in listing.text
        job = c.get("/cockpit/jobs/ex1-M0")
        assert job.status_code == 200
        assert "ValueError: &lt;b&gt;bad&lt;/b&gt; record" in job.text  # the remote traceback, escaped
        assert job.text.count("builtins.ValueError") >= 1
        for which in ("timeline", "histogram"):
            png = c.get(f"/cockpit/jobs/ex1-M0/{which}.png")
            assert png.headers["content-type"] == "image/png"
            assert png.content[:4] == b"\x89PNG"
        assert c.get("/cockpit/jobs/nope").status_code == 404


def test_streams_pages_refresh_live(tmp_path: Path, catalog: Any) -> None:
    from xtremehub.streams.client.manager import StreamManager

    home = tmp_path / "streams-home"
    with StreamManager.embedded(home / "streams") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "frames")
        manager.create_reader_group("viewers", "lab", ["frames"])
        with manager.create_writer("lab", "frames") as writer:
            for i in range(50):
                writer.write_event(b"x" * 100, routing_key=str(i))
    app = create_app(WebConfig(), catalog=catalog, settings=Settings(home=home))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        page = c.get("/cockpit/streams")
        assert "Scope lab" in page.text
        assert 'hx-trigger="every 2s"' in page.text
        assert "viewers" in page.text
        live = c.get("/cockpit/streams/live", headers={"HX-Request": "true"})
        assert "<html" not in live.text
        assert "frames" in live.text
        detail = c.get("/cockpit/streams/lab/frames")
        assert detail.status_code == 200
        assert "Segments over time" in detail.text
        png = c.get("/cockpit/streams/lab/frames/rate.png")
        assert png.content[:4] == b"\x89PNG"
        assert c.get("/cockpit/streams/lab/nope").status_code == 404


def test_the_docs_show_the_screenshots_the_browser_tests_take() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    page = docs / "catalog.md"
    assert "## The cockpit" in page.read_text()
    images = re.findall(r"\]\((images/cockpit-[\w-]+\.png)\)", page.read_text())
    assert len(images) >= 5
    for image in images:
        data = (docs / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", image
        assert len(data) > 10_000, image


def test_pages_over_postgresql(postgres: Any, testdata: Path, tmp_path: Path) -> None:
    """Smoke test on the real PostgreSQL store: search, a dataset page, its preview, an access request."""
    from xtremehub.catalog import open_catalog

    settings = Settings(home=tmp_path / "pg-home")
    catalog = open_catalog(postgres.create_database("xhub_cockpit"), settings=settings)
    try:
        ds = catalog.register(
            (testdata / "vcf/ex1.vcf.gz").as_uri(), actor="local", title="PG calls <b>", format="vcf.gz",
            tags=("pg",), source_version="v1", facts={"variants": 165},
        )  # fmt: skip
        with TestClient(create_app(WebConfig(), catalog=catalog, settings=settings), base_url="http://127.0.0.1") as c:
            assert "PG calls &lt;b&gt;" in c.get("/cockpit/datasets", params={"q": "calls", "tag": "pg"}).text
            assert "165" in c.get(f"/cockpit/datasets/{ds.id}").text
            assert c.get(f"/cockpit/datasets/{ds.id}/preview.png").content[:4] == b"\x89PNG"
            c.post(f"/cockpit/datasets/{ds.id}/access", data={"purpose": "smoke test"})
            (req,) = catalog.access_requests(dataset_id=ds.id)
            c.post(f"/cockpit/access/{req.id}", data={"decision": "reject", "etag": req.etag, "reason": "no"})
            assert catalog.access_requests(dataset_id=ds.id)[0].status == "rejected"
    finally:
        catalog.close()


def test_page_errors_are_pages_and_api_errors_stay_problems(client: TestClient, ids: dict[str, str]) -> None:
    short = client.post(f"/cockpit/datasets/{ids['reads']}/access", data={"purpose": "x"})
    assert short.status_code == 422
    assert short.headers["content-type"].startswith("text/html")
    assert "purpose" in short.text
    missing = client.get("/cockpit/datasets/nope/preview.html")
    assert missing.status_code == 404
    assert "Not found" in missing.text
    api = client.get("/api/v1/datasets/nope")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")
