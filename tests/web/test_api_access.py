"""Access requests and lineage over REST."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from memcatalog import MemoryCatalog

from conftest import bearer
from xtremehub.catalog.model import InputRef, JobRecord
from xtremehub.security.issuer import EmbeddedIssuer


def test_request_approve_reject_with_if_match(secured: TestClient, issuer: EmbeddedIssuer) -> None:
    carol = bearer(issuer, "carol", "curator")  # owner of the dataset
    ds = secured.post("/api/v1/datasets", json={"url": "s3://lungs/ct.csv", "facts": {}}, headers=carol).json()
    bob = bearer(issuer, "bob")
    made = secured.post(f"/api/v1/datasets/{ds['id']}/access-requests", json={"purpose": "research"}, headers=bob)
    assert made.status_code == 201, made.text
    req = made.json()
    assert req["status"] == "pending"
    assert req["requester"] == "bob"
    # bob sees his own request; dave sees nothing
    assert [r["id"] for r in secured.get("/api/v1/access-requests", headers=bob).json()] == [req["id"]]
    assert secured.get("/api/v1/access-requests", headers=bearer(issuer, "dave")).json() == []
    assert secured.get(f"/api/v1/access-requests/{req['id']}", headers=bearer(issuer, "dave")).status_code == 404
    # bob cannot approve his own request on carol's dataset
    tag = {"If-Match": made.headers["etag"]}
    assert secured.post(f"/api/v1/access-requests/{req['id']}/approve", headers={**bob, **tag}).status_code == 403
    assert secured.post(f"/api/v1/access-requests/{req['id']}/approve", headers=carol).status_code == 428
    ok = secured.post(f"/api/v1/access-requests/{req['id']}/approve", json={"reason": "fine"}, headers={**carol, **tag})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "approved"
    assert ok.json()["decided_by"] == "carol"
    # a second decision based on the old etag is a lost update: refused
    late = secured.post(f"/api/v1/access-requests/{req['id']}/reject", headers={**carol, **tag})
    assert late.status_code == 412
    current = secured.get(f"/api/v1/access-requests/{req['id']}", headers=carol).json()
    assert current["status"] == "approved"
    missing = secured.post("/api/v1/datasets/nope/access-requests", json={"purpose": "x"}, headers=bob)
    assert missing.status_code == 404


def test_lineage_up_and_down(client: TestClient, catalog: MemoryCatalog) -> None:
    ids = [
        client.post("/api/v1/datasets", json={"url": f"s3://lab/{n}", "facts": {}}).json()["id"]
        for n in ("in.fq", "out.bam")
    ]
    t = datetime(2026, 12, 6, tzinfo=UTC)
    catalog.record_job(JobRecord("j1", "align", "local", t, t, inputs=(InputRef(ids[0], 1),), outputs=(ids[1],)))
    up = client.get(f"/api/v1/datasets/{ids[1]}/lineage", params={"direction": "up"})
    assert up.status_code == 200, up.text
    assert {(e["source"], e["target"]) for e in up.json()["edges"]} == {
        (f"dataset:{ids[0]}", "job:j1"),
        ("job:j1", f"dataset:{ids[1]}"),
    }
    assert [j["function"] for j in up.json()["jobs"]] == ["align"]
    down = client.get(f"/api/v1/datasets/{ids[0]}/lineage", params={"direction": "down", "depth": 2}).json()
    assert {d["id"] for d in down["datasets"]} == set(ids)
    assert client.get(f"/api/v1/datasets/{ids[0]}/lineage", params={"depth": 0}).status_code == 422
    assert client.get(f"/api/v1/datasets/{ids[0]}/lineage", params={"direction": "sideways"}).status_code == 422
