"""A real failing executor job (local backend, lineage into the catalog) in the API and the cockpit:
its failed call with the remote traceback, whether the telemetry also knows the job or not."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from xtremehub import FunctionExecutor
from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import Settings, TelemetrySettings
from xtremehub.web import WebConfig, create_app

MARK = "<b>bad</b> record"


def explode_on_two(x: int) -> int:
    if x == 2:
        raise ValueError(MARK)
    return x


def _failing_job(catalog: SqlCatalog, settings: Settings) -> str:
    with FunctionExecutor(backend="local", workers=1, catalog=catalog, retries=0, settings=settings) as fexec:
        fexec.get_result(fexec.map(explode_on_two, [1, 2, 3]), throw_except=False)
        (record,) = fexec.lineage.records  # type: ignore[union-attr]
    return str(record.job_id)


def _assert_served(client: TestClient, job_id: str, *, telemetry: bool) -> None:
    listed = [j for j in client.get("/api/v1/jobs").json() if j["job_id"] == job_id]
    assert [(j["function"], j["calls"], j["failures"]) for j in listed] == [(f"{__name__}:explode_on_two", 3, 1)]
    one = client.get(f"/api/v1/jobs/{job_id}")
    assert one.status_code == 200, one.text
    (failure,) = one.json()["failures"]
    assert (failure["call_id"], failure["error_type"], failure["message"]) == (1, "builtins.ValueError", MARK)
    assert "in explode_on_two" in failure["remote_traceback"]
    assert f"ValueError: {MARK}" in failure["remote_traceback"]
    assert one.json()["stats"]["tasks"] == 3
    assert one.json()["record"]["status"] == "failed"
    summary = one.json()["record"]["telemetry"]
    assert "failed_calls" not in summary  # listed once, as "failures"
    assert summary["failures"] == 1  # the rest of the summary stays
    rows = client.get(f"/api/v1/jobs/{job_id}/telemetry").json()
    assert [r["status"] for r in rows] == (["success", "error", "success"] if telemetry else [])
    assert client.get(f"/api/v1/jobs/{job_id}/plots/timeline.png").status_code == (200 if telemetry else 404)

    assert client.get("/cockpit/jobs").text.count(f'href="/cockpit/jobs/{job_id}"') == 1
    page = client.get(f"/cockpit/jobs/{job_id}")
    assert page.status_code == 200
    assert "in explode_on_two" in page.text
    assert "ValueError: &lt;b&gt;bad&lt;/b&gt; record" in page.text  # the remote traceback, escaped
    assert MARK not in page.text
    assert ('id="timeline"' in page.text) is telemetry


def test_a_failed_job_only_the_catalog_knows(tmp_path: Path, catalog: SqlCatalog) -> None:
    settings = Settings(home=tmp_path / "home")  # the defaults: no telemetry kept apart from the catalog
    job_id = _failing_job(catalog, settings)
    with TestClient(create_app(WebConfig(), catalog=catalog, settings=settings), base_url="http://127.0.0.1") as c:
        _assert_served(c, job_id, telemetry=False)


def test_a_failed_job_in_the_telemetry_and_the_catalog(tmp_path: Path, catalog: SqlCatalog) -> None:
    settings = Settings(home=tmp_path / "home", telemetry=TelemetrySettings(dir=str(tmp_path / "telemetry")))
    job_id = _failing_job(catalog, settings)
    assert (tmp_path / "telemetry" / f"{job_id}.jsonl").is_file()
    with TestClient(create_app(WebConfig(), catalog=catalog, settings=settings), base_url="http://127.0.0.1") as c:
        _assert_served(c, job_id, telemetry=True)
        (failure,) = c.get(f"/api/v1/jobs/{job_id}").json()["failures"]
        assert (failure["worker"], failure["attempts"]) == ("local-0", 1)
