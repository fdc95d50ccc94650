"""``xhub catalog``: add with explicit facts, ls, search, show, versions, lineage, the request flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from xtremehub.catalog import InputRef, JobRecord
from xtremehub.catalog.store import SqlCatalog
from xtremehub.cli import cli
from xtremehub.security.audit import read_lines
from xtremehub.security.audit_signing import load_public_key
from xtremehub.security.audit_verify import verify_log


@pytest.fixture
def xhub(fresh_catalog: SqlCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XHUB_CONFIG", str(tmp_path / "no-config.toml"))
    url = fresh_catalog._engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    def run(*args: str, who: str = "alice", ok: bool = True) -> str:
        result = runner.invoke(cli, ["--home", str(tmp_path), "catalog", "--catalog", url, "--as", who, *args])
        assert (result.exit_code == 0) is ok, result.output + repr(result.exception)
        return result.output if ok else result.output + str(result.exception)

    return run


def test_add_search_show_versions(xhub) -> None:  # type: ignore[no-untyped-def]
    facts = json.dumps({"reads": 1200, "instrument": "NovaSeq"})
    out = xhub(
        *("add", "s3://lab/run7.fastq.gz", "--title", "Run 7", "--tag", "wgs", "--tag", "lung", "--json"),
        *("--licence", "CC-BY-4.0", "--format", "fastq.gz", "--facts", facts, "--source-version", "e1"),
    )
    ds = json.loads(out)
    assert (ds["title"], ds["tags"], ds["facts"]["reads"], ds["latest_version"]) == ("Run 7", ["wgs", "lung"], 1200, 1)
    xhub("add", "s3://lab/run7.fastq.gz", "--facts", '{"reads": 1300}', "--source-version", "e2")
    xhub("add", "s3://lab/other.vcf.gz", "--format", "vcf.gz", "--facts", "{}", who="bob")
    page = json.loads(xhub("search", "novaseq", "--json"))
    assert [d["id"] for d in page["items"]] == []  # the newest version's facts no longer name it
    page = json.loads(xhub("search", "run", "--tag", "lung", "--json"))
    assert page["total"] == 1
    assert page["facets"]["tag"] == {"lung": 1, "wgs": 1}
    text = xhub("ls")
    assert "2 of 2" in text.replace("1-2 of 2", "2 of 2")
    assert "owner: alice (1), bob (1)" in text
    assert json.loads(xhub("search", "--owner", "bob", "--json"))["total"] == 1
    shown = xhub("show", ds["id"])
    assert "title: Run 7" in shown
    assert '"reads": 1300' in shown
    versions = json.loads(xhub("versions", ds["id"], "--json"))
    assert [v["source_version"] for v in versions] == ["e1", "e2"]
    assert "no such dataset: 'ds-none'" in xhub("show", "ds-none", ok=False)
    assert "facts: not JSON" in xhub("add", "s3://lab/x", "--facts", "{not json", ok=False)


def test_lineage_and_access_requests(xhub, fresh_catalog: SqlCatalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = json.loads(xhub("add", "s3://lab/in.fq", "--facts", "{}", "--json"))
    out = json.loads(xhub("add", "s3://lab/out.bam", "--kind", "derived", "--facts", "{}", "--json"))
    from datetime import UTC, datetime

    t = datetime.now(UTC)
    fresh_catalog.record_job(
        JobRecord("job-1", "align", "alice", t, t, inputs=(InputRef(src["id"], 1),), outputs=(out["id"],))
    )
    lines = xhub("lineage", out["id"], "--up", "--depth", "2")
    assert f"{src['id']} (in.fq) -> job job-1 (align, succeeded)" in lines
    graph = json.loads(xhub("lineage", src["id"], "--down", "--json"))
    assert {d["id"] for d in graph["datasets"]} == {src["id"], out["id"]}

    req = json.loads(xhub("request", src["id"], "--purpose", "research", "--expires", "30d", "--json", who="carol"))
    assert req["status"] == "pending"
    assert "pending" in xhub("requests", "--status", "pending")
    assert "only the owner" in xhub("approve", req["id"], who="carol", ok=False)
    approved = json.loads(xhub("approve", req["id"], "--reason", "ok", "--json"))
    assert (approved["status"], approved["policy_id"]) == ("approved", f"access-{req['id']}")
    assert (tmp_path / "policies" / f"access-{req['id']}.cedar").exists()
    revoked = json.loads(xhub("reject", req["id"], "--json"))
    assert revoked["status"] == "revoked"
    assert not (tmp_path / "policies" / f"access-{req['id']}.cedar").exists()
    assert json.loads(xhub("requests", "--requester", "carol", "--json"))[0]["status"] == "revoked"

    # nothing configured: every command above was audited in <home>/audit/catalog.log, signed
    log = tmp_path / "audit" / "catalog.log"
    records = [json.loads(line) for _, line in read_lines(str(log))]
    done = [(r["subject"], r["action"]) for r in records if r["kind"] == "catalog"]
    assert done == [
        ("alice", "register"),
        ("alice", "register"),
        ("alice", "record-job"),  # the fixture's catalog, same home: one log
        ("carol", "request-access"),
        ("carol", "decide-access-denied"),
        ("alice", "approve-access"),
        ("alice", "revoke-access"),
    ]
    report = verify_log(str(log), public_key=load_public_key(tmp_path / "audit.key.pub"))
    assert report.ok
    assert report.uncovered == 0  # every command's catalog closed its log with a checkpoint


def test_the_audit_log_is_configurable_and_can_be_off(
    fresh_catalog: SqlCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_catalog._engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("XHUB_CONFIG", str(tmp_path / "no-config.toml"))
    runner = CliRunner()
    home = tmp_path / "cli-home"
    add = ["--home", str(home), "catalog", "--catalog", url, "--as", "alice", "add", "s3://lab/a", "--facts", "{}"]
    monkeypatch.setenv("XHUB_CATALOG_AUDIT_LOG", str(tmp_path / "elsewhere.log"))
    assert runner.invoke(cli, add).exit_code == 0
    assert next(json.loads(line)["action"] for _, line in read_lines(str(tmp_path / "elsewhere.log"))) == "register"
    monkeypatch.setenv("XHUB_CATALOG_AUDIT_LOG", "off")
    assert runner.invoke(cli, [*add[:-3], "s3://lab/b", "--facts", "{}"]).exit_code == 0
    assert not (home / "audit").exists()  # off: not the default log either
    assert sum(1 for _ in read_lines(str(tmp_path / "elsewhere.log"))) == 2  # register + closing checkpoint
    # a storage prefix has one writer; every process opening the catalog would be one: refused
    monkeypatch.setenv("XHUB_CATALOG_AUDIT_LOG", "s3://audit/catalog/")
    refused = runner.invoke(cli, [*add[:-3], "s3://lab/c", "--facts", "{}"])
    assert refused.exit_code != 0
    assert "catalog.audit_log must be a local file" in refused.output + str(refused.exception)


def test_add_a_stream_registers_its_facts_and_a_new_cut(xhub, tmp_path: Path, sensor_events) -> None:  # type: ignore[no-untyped-def]
    sensor_events(tmp_path / "streams", 30)  # --home tmp_path: the store `xhub streams` uses
    ds = json.loads(xhub("add", "xhub-stream://lab/sensors", "--json"))
    assert (ds["kind"], ds["format"], ds["facts"]["events"], ds["latest_version"]) == ("stream", "stream", 30, 1)
    sensor_events(tmp_path / "streams", 5, start=30)
    line = xhub("add", "xhub-stream://lab/sensors")
    assert line.startswith(f"{ds['id']}  v2  stream"), line
    assert json.loads(xhub("show", ds["id"], "--json"))["facts"]["events"] == 35
    assert "xhub-stream://lab/gone: no such stream" in xhub("add", "xhub-stream://lab/gone", ok=False)


@pytest.mark.parametrize(
    "web",
    [
        'oidc_issuer = "https://idp.example"',
        'security = true\noidc_issuer = "https://idp.example"\npolicy = "/etc/xhub/policies"',
    ],
)
def test_with_identities_configured_the_cli_neither_impersonates_nor_decides(
    fresh_catalog: SqlCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: str
) -> None:
    """``--as`` and ``--role`` are labels, not authentication: where tokens and policies decide
    (``[web]``), the CLI acts only as the login name and leaves decisions to the REST API."""
    import getpass

    config = tmp_path / "config.toml"
    config.write_text(f"[web]\n{web}\n")
    monkeypatch.setenv("XHUB_CONFIG", str(config))
    url = fresh_catalog._engine.url.render_as_string(hide_password=False)
    login = getpass.getuser()
    ds = fresh_catalog.register("s3://lab/secret.csv", actor=login, facts={}, source_version="1")
    req = fresh_catalog.request_access(ds.id, actor="mallory", purpose="x")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["--home", str(tmp_path), "catalog", "--catalog", url, *args])
        return result.exit_code, result.output

    code, out = run("--as", "mallory", "request", ds.id, "--purpose", "y")
    assert code != 0
    assert "acts only as the login name" in out
    for args in (("--as", login, "approve", req.id), ("approve", req.id, "--role", "admin"), ("reject", req.id)):
        code, out = run(*args)
        assert code != 0, args
        assert "decide access requests through the REST API" in out
    assert fresh_catalog.get_access_request(req.id).status == "pending"
    assert not list((tmp_path / "policies").glob("access-*"))
    code, out = run("requests", "--json")  # reading is what the database allows
    assert code == 0, out
    assert json.loads(out)[0]["id"] == req.id
