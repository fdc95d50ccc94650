"""Registering over REST: streams with their facts, objects that are missing or change under the
registration, and a PostgreSQL catalog that goes away and comes back (API and cockpit)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from xtremehub.catalog import open_catalog
from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import Settings
from xtremehub.errors import HistoryNotTiered
from xtremehub.streams import StreamManager
from xtremehub.testing.postgres import PostgresServer
from xtremehub.web import WebConfig, create_app
from xtremehub.web.dataset_rules import data_resource
from xtremehub.web.problems import status_of
from xtremehub.web.streams import StreamSource

STREAM = "xhub-stream://lab/sensors"


@pytest.fixture
def with_streams(settings: Settings, catalog: SqlCatalog) -> Iterator[tuple[TestClient, StreamManager]]:
    """An app whose stream store is an embedded store the test writes to (flushed to LTS at once)."""
    with StreamManager.embedded(settings.home / "streams", lts_flush_delay=0.0, tiering_interval=0.05) as manager:
        source = StreamSource(None, settings, manager=manager)
        app = create_app(WebConfig(), catalog=catalog, settings=settings, streams=source)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield client, manager


def test_a_stream_registers_with_its_facts_and_a_version_per_cut(
    with_streams: tuple[TestClient, StreamManager], sensor_events: Any
) -> None:
    client, manager = with_streams
    sensor_events(manager, 12)
    made = client.post("/api/v1/datasets", json={"url": STREAM, "tags": ["iot"]})
    assert made.status_code == 201, made.text
    ds = made.json()
    assert (ds["kind"], ds["format"], ds["facts"]["events"], ds["facts"]["segments"]) == ("stream", "stream", 12, 1)
    assert ds["facts"]["bytes"] > 0
    assert ds["facts"]["average_bytes_per_second"] > 0
    sensor_events(manager, 8, start=12)
    again = client.post("/api/v1/datasets", json={"url": STREAM}).json()
    assert (again["id"], again["latest_version"], again["facts"]["events"]) == (ds["id"], 2, 20)
    versions = client.get(f"/api/v1/datasets/{ds['id']}/versions").json()
    assert len({v["source_version"] for v in versions}) == 2
    missing = client.post("/api/v1/datasets", json={"url": "xhub-stream://lab/absent"})
    assert missing.status_code == 404, missing.text
    assert missing.json()["type"].endswith("/stream-not-found")
    assert "xhub-stream://lab/absent" in missing.json()["detail"]
    assert client.post("/api/v1/datasets", json={"url": "xhub-stream://lab"}).status_code == 400
    assert client.post("/api/v1/datasets", json={"url": STREAM, "kind": "prefix"}).status_code == 422
    # review: "stream" claimed for an object made the server judge (and read) it as a stream
    claimed = client.post("/api/v1/datasets", json={"url": "mem://lab/secret/patients.csv", "kind": "stream"})
    assert claimed.status_code == 422, claimed.text
    assert "not a stream URL" in claimed.json()["detail"]
    assert data_resource("stream", "mem://lab/secret/patients.csv") == ("object", "mem://lab/secret/patients.csv")
    assert status_of(HistoryNotTiered("lab/sensors/0: bytes up to 9 are not all in LTS yet")) == 503  # retry later


def test_missing_and_changing_objects_are_refused_and_nothing_is_kept(
    client: TestClient, tmp_path: Path, rewrite_during_facts: list[str]
) -> None:
    absent = f"file://{tmp_path}/absent.vcf"
    for body in ({"url": absent}, {"url": absent, "facts": {"variants": 3}, "source_version": "v1"}):
        r = client.post("/api/v1/datasets", json=body)
        assert r.status_code == 404, r.text
        assert r.json()["type"].endswith("/object-not-found")
        assert absent in r.json()["detail"]
    present = tmp_path / "t.csv"
    present.write_text("a,b\n1,2\n")
    r = client.post("/api/v1/datasets", json={"url": f"file://{present}"})
    assert r.status_code == 409, r.text  # rewritten while its index was read
    assert "changed while it was being registered" in r.json()["detail"]
    assert rewrite_during_facts == [f"file://{present}"]
    assert client.get("/api/v1/datasets").json()["total"] == 0  # nothing half-registered
    described = client.post("/api/v1/datasets", json={"url": f"file://{present}", "facts": {}, "source_version": "1"})
    assert described.status_code == 201, described.text  # it exists: described as given


def test_described_web_objects_are_not_probed(client: TestClient) -> None:
    """The existence check never reaches out to a caller-chosen web host (enc+http too)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        for url in (f"http://127.0.0.1:{port}/a.csv", f"enc+http://127.0.0.1:{port}/b.csv"):
            r = client.post("/api/v1/datasets", json={"url": url, "facts": {}, "source_version": "1"})
            assert r.status_code == 201, r.text
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_postgres_away_is_503_everywhere_then_recovers(tmp_path: Path) -> None:
    body = {"url": "s3://lab/during.csv", "facts": {"rows": 1}, "source_version": "v1"}
    with PostgresServer.start() as server:  # its own server: this test stops it
        url = server.create_database()
        catalog = open_catalog(url, settings=Settings(home=tmp_path))
        app = create_app(WebConfig(), catalog=catalog, settings=Settings(home=tmp_path))
        try:
            with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
                assert client.get("/api/v1/datasets").status_code == 200
                server.stop()
                port, database = str(server.port), url.rsplit("/", 1)[-1]
                for r in (client.get("/api/v1/datasets"), client.post("/api/v1/datasets", json=body)):
                    assert r.status_code == 503, r.text
                    assert r.headers["retry-after"] == "5"
                    assert "cannot be reached" in r.json()["detail"]
                    assert port not in r.text
                    assert database not in r.text
                    assert "127.0.0.1" not in r.text
                page = client.get("/cockpit/datasets")
                assert page.status_code == 503
                assert page.headers["retry-after"] == "5"
                shown = _text(page.text)
                assert "The catalog cannot be reached right now" in shown
                assert "0 datasets" not in shown
                assert port not in page.text
                assert database not in page.text
                assert "postgresql" not in page.text
                server.start_again()
                assert client.get("/api/v1/datasets").json()["total"] == 0  # the failed POST left nothing
                assert client.post("/api/v1/datasets", json=body).status_code == 201
                assert client.get("/api/v1/datasets").json()["total"] == 1
                assert client.get("/cockpit/datasets").status_code == 200
        finally:
            catalog.close()
