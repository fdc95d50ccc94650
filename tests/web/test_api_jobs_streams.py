"""Jobs (telemetry store and directory, plots), streams (rates, lag, backlog) and object previews."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from xtremehub.catalog import JobRecord
from xtremehub.catalog.store import SqlCatalog
from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.config import S3Settings, Settings, TelemetrySettings
from xtremehub.optimizer.store import TelemetryStore
from xtremehub.streams import StreamManager
from xtremehub.web import WebConfig, create_app
from xtremehub.web.streams import StreamSource


def _rows(job: str, n: int, failed: int = -1) -> list[TaskTelemetry]:
    return [
        TaskTelemetry(job_id=job, call_id=i, worker=f"w{i % 2}", status="error" if i == failed else "success",
                      error_type="builtins.ValueError" if i == failed else "", submit=100.0, start=100.0 + 0.1 * i,
                      end=100.3 + 0.1 * i, bytes_read=1000 * (i + 1))
        for i in range(n)
    ]  # fmt: skip


def test_jobs_list_in_pages(tmp_path: Path, catalog: SqlCatalog) -> None:
    """``limit``/``offset`` page through the jobs list's order (telemetry jobs, then every job
    only the catalog knows, oldest first), with ``X-Total-Count`` and a ``Link`` to the next page;
    without them the list is as before."""
    home = tmp_path / "home"
    (home / "optimizer").mkdir(parents=True)
    with TelemetryStore(home / "optimizer" / "telemetry.sqlite") as store:
        store.add(_rows("a-M000", 2), function="demo.scan")
    tdir = tmp_path / "telemetry"
    tdir.mkdir()
    (tdir / "b-M001.jsonl").write_text("\n".join(r.to_json() for r in _rows("b-M001", 3)) + "\n")
    t0 = datetime(2026, 12, 7, 10, tzinfo=UTC)
    for i, job_id in enumerate(("c0", "b-M001", "c1", "c2")):  # b-M001: in the telemetry too, named here
        catalog.record_job(
            JobRecord(job_id, f"pipelines.{job_id}", "alice", t0 + timedelta(minutes=i), t0 + timedelta(hours=1))
        )
    settings = Settings(home=home, telemetry=TelemetrySettings(dir=str(tdir)))
    with TestClient(create_app(WebConfig(), catalog=catalog, settings=settings), base_url="http://127.0.0.1") as client:
        everything = client.get("/api/v1/jobs")
        assert [(j["job_id"], j["function"]) for j in everything.json()] == [
            ("a-M000", "demo.scan"), ("b-M001", "pipelines.b-M001"), ("c0", "pipelines.c0"),
            ("c1", "pipelines.c1"), ("c2", "pipelines.c2"),
        ]  # fmt: skip
        assert "Link" not in everything.headers
        seen, url, links = [], "/api/v1/jobs?limit=2", []
        while url:
            page = client.get(url)
            assert page.status_code == 200, page.text
            assert page.headers["X-Total-Count"] == "5"
            seen.append(page.json())
            link = page.headers.get("Link")
            url = link.split(";")[0].strip("<>") if link else ""
            links.append(url)
        assert [[j["job_id"] for j in p] for p in seen] == [["a-M000", "b-M001"], ["c0", "c1"], ["c2"]]
        assert links == ["/api/v1/jobs?limit=2&offset=2", "/api/v1/jobs?limit=2&offset=4", ""]
        assert [j for p in seen for j in p] == everything.json()
        assert client.get("/api/v1/jobs?offset=3").json() == everything.json()[3:]  # limit 1,000
        assert client.get("/api/v1/jobs?limit=0").status_code == 422
        assert client.get("/api/v1/jobs?limit=1001").status_code == 422


def test_jobs_from_the_store_and_the_telemetry_dir(tmp_path: Path, catalog: SqlCatalog) -> None:
    home = tmp_path / "home"
    (home / "optimizer").mkdir(parents=True)
    with TelemetryStore(home / "optimizer" / "telemetry.sqlite") as store:
        store.add(_rows("a-M000", 6, failed=2), function="demo.scan")
    tdir = tmp_path / "telemetry"
    tdir.mkdir()
    (tdir / "b-M001.jsonl").write_text("\n".join(r.to_json() for r in _rows("b-M001", 3)) + "\n")
    (tdir / "broken.jsonl").write_text("{not json\n")
    settings = Settings(home=home, telemetry=TelemetrySettings(dir=str(tdir)))
    with TestClient(create_app(WebConfig(), catalog=catalog, settings=settings), base_url="http://127.0.0.1") as client:
        jobs = client.get("/api/v1/jobs")
        assert jobs.status_code == 200, jobs.text
        assert [(j["job_id"], j["function"], j["calls"]) for j in jobs.json()] == [
            ("a-M000", "demo.scan", 6),
            ("b-M001", "unknown", 3),
        ]
        one = client.get("/api/v1/jobs/a-M000").json()
        assert one["stats"]["tasks"] == 6
        assert one["stats"]["failures"] == 1
        assert one["failures"] == [
            {"call_id": 2, "worker": "w0", "error_type": "builtins.ValueError", "attempts": 1, "message": "",
             "remote_traceback": "", "traceback_omitted": 0}
        ]  # fmt: skip
        assert one["record"] is None
        rows = client.get("/api/v1/jobs/b-M001/telemetry").json()
        assert [r["bytes_read"] for r in rows] == [1000, 2000, 3000]
        png = client.get("/api/v1/jobs/a-M000/plots/timeline.png")
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
        assert client.get("/api/v1/jobs/a-M000/plots/histogram.png").content.startswith(b"\x89PNG")
        assert client.get("/api/v1/jobs/nope").status_code == 404
        assert client.get("/api/v1/jobs/a-M000/plots/pie.png").status_code == 422


@pytest.fixture
def stream_client(tmp_path: Path, catalog: SqlCatalog) -> Iterator[tuple[TestClient, StreamManager]]:
    manager = StreamManager.embedded(tmp_path / "streams", lts=str(tmp_path / "lts") + "/")
    clock = [1000.0]
    source = StreamSource(None, Settings(home=tmp_path), manager=manager, clock=lambda: clock[0])
    app = create_app(WebConfig(), catalog=catalog, settings=Settings(home=tmp_path), streams=source)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            client.clock = clock  # type: ignore[attr-defined]
            yield client, manager
    finally:
        manager.close()


def test_streams_scopes_describe_rate_lag_backlog(stream_client: tuple[TestClient, StreamManager]) -> None:
    client, manager = stream_client
    manager.create_scope("lab")
    manager.create_stream("lab", "sensors")
    with manager.create_writer("lab", "sensors") as writer:
        for i in range(10):
            writer.write_event(f"reading-{i}".encode(), routing_key="s1")
    group = manager.create_reader_group("viewers", "lab", ["lab/sensors"], start="head")
    reader = group.create_reader("r1")
    assert reader.read_next(timeout=5) is not None
    reader.close()
    assert client.get("/api/v1/streams/scopes").json() == ["lab"]
    assert client.get("/api/v1/streams/scopes/lab").json() == ["sensors"]
    described = client.get("/api/v1/streams/scopes/lab/streams/sensors")
    assert described.status_code == 200, described.text
    body = described.json()
    assert body["sealed"] is False
    held = sum(s["length"] for s in body["segments"])
    assert held > 0
    first = client.get("/api/v1/streams/scopes/lab/streams/sensors/rate").json()
    assert first["bytes"] == held
    assert first["bytes_per_second"] is None  # one sample so far
    with manager.create_writer("lab", "sensors") as writer:
        writer.write_event(b"x" * 1000, routing_key="s1")
    client.clock[0] += 2.0  # type: ignore[attr-defined]
    second = client.get("/api/v1/streams/scopes/lab/streams/sensors/rate").json()
    assert second["bytes_per_second"] == pytest.approx((second["bytes"] - held) / 2.0)
    assert second["bytes"] - held >= 1000
    assert client.get("/api/v1/streams/scopes/lab/reader-groups").json() == ["viewers"]
    lag = client.get("/api/v1/streams/scopes/lab/reader-groups/viewers/lag").json()
    assert 0 < lag["lag_bytes"] <= second["bytes"]
    assert lag["per_stream"] == {"lab/sensors": lag["lag_bytes"]}
    backlog = client.get("/api/v1/streams/scopes/lab/streams/sensors/backlog").json()
    assert backlog["stream"] == "lab/sensors"
    assert 0 <= backlog["stream_untiered_bytes"] <= second["bytes"]
    assert client.get("/api/v1/streams/backlog").json()["lts_available"] is True
    assert client.get("/api/v1/streams/scopes/lab/streams/nope").status_code == 404
    assert client.get("/api/v1/streams/scopes/nope").status_code == 404
    assert client.get("/api/v1/streams/scopes/lab/reader-groups/nope/lag").status_code == 404
    assert client.get("/api/v1/streams/scopes/..%2Fetc").status_code in (404, 422)


def test_object_preview_text_binary_and_traversal(tmp_path: Path, client: TestClient, testdata: Path) -> None:
    text = tmp_path / "notes.csv"
    text.write_text("a,b\n1,2\n3,4\n")
    r = client.get("/api/v1/objects/preview", params={"url": str(text), "lines": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == 12
    assert body["content_type"] == "text/csv"
    assert body["lines"] == ["a,b", "1,2"]
    assert body["truncated"] is False
    gz = next(p for p in testdata.rglob("*.gz") if p.stat().st_size > 5000)
    r = client.get("/api/v1/objects/preview", params={"url": str(gz), "bytes": 100})
    assert r.json()["content_type"] == "application/gzip"
    assert r.json()["head_bytes"] == 100
    assert r.json()["truncated"] is True
    assert r.json()["lines"] is None
    for bad in (f"{tmp_path}/../../etc/passwd", "s3://b/a/../x", ".."):
        refused = client.get("/api/v1/objects/preview", params={"url": bad})
        assert refused.status_code == 400, bad
        assert refused.headers["content-type"] == "application/problem+json"
    for bad in ("s3://b/a/%2e%2e/x", "/tmp/a\x00b", "c:\\x"):  # outside the documented pattern
        assert client.get("/api/v1/objects/preview", params={"url": bad}).status_code == 400, bad
    assert client.get("/api/v1/objects/preview", params={"url": str(tmp_path / "none")}).status_code == 404
    assert json.loads(client.get("/api/v1/objects/preview").text)["status"] == 422


def test_unreachable_backends_are_503_with_retry_after(tmp_path: Path, catalog: SqlCatalog) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = WebConfig(streams=f"tcp://127.0.0.1:{port}")
    with TestClient(
        create_app(config, catalog=catalog, settings=Settings(home=tmp_path)), base_url="http://127.0.0.1"
    ) as client:
        r = client.get("/api/v1/streams/scopes")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert r.headers["content-type"] == "application/problem+json"
        assert str(port) not in r.json()["detail"]  # an internal endpoint: in the server's log only
        assert "stream server cannot be reached" in r.json()["detail"]
        overview = client.get("/cockpit/streams")
        assert "cannot be reached right now" in overview.text
        assert str(port) not in overview.text
        one = client.get("/cockpit/streams/lab/sensors")
        assert one.status_code == 503
        assert str(port) not in one.text
    s3 = S3Settings(
        endpoint_url=f"http://127.0.0.1:{port}", access_key_id="k", secret_access_key="s",
        addressing_style="path", connect_timeout=1.0, max_retries=0,
    )  # fmt: skip
    app = create_app(WebConfig(), catalog=catalog, settings=Settings(home=tmp_path, s3=s3))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.get("/api/v1/objects/preview", params={"url": "s3://lab/reads.csv"})
        assert r.status_code == 503, r.text
        assert r.json()["detail"].startswith("s3://lab/reads.csv: its storage cannot be reached")
        assert str(port) not in r.json()["detail"]
    locked = StreamManager.embedded(tmp_path / "owned")  # another owner of the data directory
    try:
        config = WebConfig(streams=str(tmp_path / "owned"))
        with TestClient(
            create_app(config, catalog=catalog, settings=Settings(home=tmp_path)), base_url="http://127.0.0.1"
        ) as client:
            assert client.get("/api/v1/streams/scopes").status_code == 503
    finally:
        locked.close()
