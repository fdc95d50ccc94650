"""Lineage: jobs linking dataset versions they read to datasets they wrote; up/down to a depth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xtremehub.catalog import InputRef, JobRecord
from xtremehub.catalog.store import SqlCatalog
from xtremehub.errors import DatasetNotFound, InvalidMetadata

T0 = datetime(2026, 12, 6, 10, tzinfo=UTC)
T1 = datetime(2026, 12, 6, 11, tzinfo=UTC)


def _ds(cat: SqlCatalog, name: str, kind: str = "object") -> str:
    return cat.register(f"s3://lab/{name}", actor="alice", kind=kind, facts={}, source_version="v1").id  # type: ignore[arg-type]


def _job(job_id: str, inputs: list[str], outputs: list[str], **kw: object) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        function="pipelines.align",
        owner="alice",
        started=T0,
        finished=T1,
        inputs=tuple(InputRef(d, 1, ("chr1:1-1000",)) for d in inputs),
        outputs=tuple(outputs),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def chain(fresh_catalog: SqlCatalog) -> dict[str, str]:
    """raw + ref -> align -> bam -> call -> vcf; bam -> qc -> report."""
    ids = {n: _ds(fresh_catalog, n) for n in ("raw.fq", "ref.fa")}
    ids |= {n: _ds(fresh_catalog, n, "derived") for n in ("x.bam", "x.vcf", "qc.html")}
    fresh_catalog.record_job(_job("align", [ids["raw.fq"], ids["ref.fa"]], [ids["x.bam"]], parameters={"k": 15}))
    fresh_catalog.record_job(_job("call", [ids["x.bam"], ids["ref.fa"]], [ids["x.vcf"]]))
    fresh_catalog.record_job(_job("qc", [ids["x.bam"]], [ids["qc.html"]], status="failed"))
    return ids


def _names(graph_ids: tuple[str, ...], ids: dict[str, str]) -> set[str]:
    back = {v: k for k, v in ids.items()}
    return {back[i] for i in graph_ids}


def test_job_round_trip(fresh_catalog: SqlCatalog, chain: dict[str, str]) -> None:
    job = fresh_catalog.get_job("align")
    read = sorted((InputRef(chain[n], 1, ("chr1:1-1000",)) for n in ("raw.fq", "ref.fa")), key=lambda r: r.dataset_id)
    assert job.inputs == tuple(read)
    assert (job.outputs, dict(job.parameters)) == ((chain["x.bam"],), {"k": 15})
    assert (job.started, job.status) == (T0, "succeeded")
    assert fresh_catalog.get_job("qc").status == "failed"
    with pytest.raises(DatasetNotFound, match="no such job"):
        fresh_catalog.get_job("nope")


def test_upstream_and_downstream_to_a_depth(fresh_catalog: SqlCatalog, chain: dict[str, str]) -> None:
    up = fresh_catalog.lineage(chain["x.vcf"], direction="up", depth=5)
    assert _names(tuple(d.id for d in up.datasets), chain) == {"x.vcf", "x.bam", "ref.fa", "raw.fq"}
    assert {j.job_id for j in up.jobs} == {"align", "call"}
    assert up.root == f"dataset:{chain['x.vcf']}"
    edges = {(e.source, e.target, e.kind) for e in up.edges}
    assert (f"dataset:{chain['x.bam']}", "job:call", "input") in edges
    assert ("job:call", f"dataset:{chain['x.vcf']}", "output") in edges
    assert ("job:align", f"dataset:{chain['x.bam']}", "output") in edges
    one = fresh_catalog.lineage(chain["x.vcf"], direction="up", depth=1)
    assert _names(tuple(d.id for d in one.datasets), chain) == {"x.vcf", "x.bam", "ref.fa"}
    assert {j.job_id for j in one.jobs} == {"call"}
    down = fresh_catalog.lineage(chain["raw.fq"], direction="down", depth=2)
    assert _names(tuple(d.id for d in down.datasets), chain) == {"raw.fq", "x.bam", "x.vcf", "qc.html"}
    both = fresh_catalog.lineage(chain["x.bam"], direction="both", depth=1)
    assert _names(tuple(d.id for d in both.datasets), chain) == set(chain)
    assert {j.job_id for j in both.jobs} == {"align", "call", "qc"}
    zero = fresh_catalog.lineage(chain["x.bam"], depth=0)
    assert (len(zero.datasets), zero.jobs, zero.edges) == (1, (), ())


def test_cycles_and_unknown_datasets_are_refused(fresh_catalog: SqlCatalog, chain: dict[str, str]) -> None:
    with pytest.raises(InvalidMetadata, match="cycle") as info:  # vcf is downstream of raw
        fresh_catalog.record_job(_job("loop", [chain["x.vcf"]], [chain["raw.fq"]]))
    assert info.value.field == "outputs"
    with pytest.raises(InvalidMetadata, match="cycle"):  # reads and writes the same dataset
        fresh_catalog.record_job(_job("self", [chain["x.bam"]], [chain["x.bam"]]))
    with pytest.raises(DatasetNotFound, match="ds-ghost"):
        fresh_catalog.record_job(_job("ghost", ["ds-ghost"], [chain["qc.html"]]))
    with pytest.raises(DatasetNotFound):
        fresh_catalog.get_job("ghost")  # nothing half-written
    with pytest.raises(InvalidMetadata, match="depth"):
        fresh_catalog.lineage(chain["x.bam"], depth=51)
    with pytest.raises(InvalidMetadata, match="direction"):
        fresh_catalog.lineage(chain["x.bam"], direction="sideways")  # type: ignore[arg-type]


def test_recording_a_job_again_replaces_it(fresh_catalog: SqlCatalog, chain: dict[str, str]) -> None:
    fresh_catalog.record_job(_job("qc", [chain["raw.fq"]], [chain["qc.html"]]))
    assert [r.dataset_id for r in fresh_catalog.get_job("qc").inputs] == [chain["raw.fq"]]
    down = fresh_catalog.lineage(chain["x.bam"], direction="down", depth=3)
    assert "qc" not in {j.job_id for j in down.jobs}


def test_list_jobs_keeps_the_most_recent_oldest_first(fresh_catalog: SqlCatalog, chain: dict[str, str]) -> None:
    later = JobRecord("later", "pipelines.report", "alice", T1, T1, inputs=(InputRef(chain["x.vcf"], 1, ()),))
    fresh_catalog.record_job(later)
    assert [j.job_id for j in fresh_catalog.list_jobs()] == ["align", "call", "qc", "later"]
    assert fresh_catalog.list_jobs(limit=2) == [fresh_catalog.get_job("qc"), fresh_catalog.get_job("later")]
    with pytest.raises(InvalidMetadata, match="limit"):
        fresh_catalog.list_jobs(limit=0)


def test_job_page_in_start_order_leaving_out_the_excluded(fresh_catalog: SqlCatalog) -> None:
    """``job_page``: jobs oldest first, a page of them from an offset, the count in that order,
    the jobs named in ``exclude`` left out of both."""
    for i in range(5):  # started j4 first, j0 last
        fresh_catalog.record_job(JobRecord(f"j{i}", "pipelines.step", "alice", T0 - timedelta(minutes=i), T1))
    page, total = fresh_catalog.job_page(limit=2, offset=1)
    assert ([j.job_id for j in page], total) == (["j3", "j2"], 5)
    page, total = fresh_catalog.job_page(limit=10, exclude=["j3", "not-a-job"])
    assert ([j.job_id for j in page], total) == (["j4", "j2", "j1", "j0"], 4)
    page, total = fresh_catalog.job_page(limit=3, offset=4)
    assert ([j.job_id for j in page], total) == (["j0"], 5)
    assert fresh_catalog.job_page(limit=0) == ([], 5)
    with pytest.raises(InvalidMetadata):
        fresh_catalog.job_page(limit=10_001)
    with pytest.raises(InvalidMetadata):
        fresh_catalog.job_page(limit=1, offset=-1)
    # the telemetry's jobs are left out however many there are (a NOT IN of 40,000 ids exceeded
    # SQLite's 32,766 variables)
    many = [f"telemetry-{n}" for n in range(40_000)] + ["j1"]
    page, total = fresh_catalog.job_page(limit=10, exclude=many)
    assert ([j.job_id for j in page], total) == (["j4", "j3", "j2", "j0"], 4)
