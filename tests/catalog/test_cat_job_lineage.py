"""Executor lineage: which datasets (and slices) a job read and which objects it wrote, into the catalog."""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import xtremehub
from xtremehub import FunctionExecutor, storage
from xtremehub.catalog import open_catalog
from xtremehub.catalog.lineage import normalize_url
from xtremehub.catalog.store.catalog import SqlCatalog
from xtremehub.compute.lineage import JobLineage, LineageSink
from xtremehub.config import CatalogSettings, default_settings
from xtremehub.connectors import CloudObject
from xtremehub.security.audit import read_lines
from xtremehub.security.audit_signing import load_public_key
from xtremehub.security.audit_verify import verify_log


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[SqlCatalog]:
    with open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        yield catalog


@pytest.fixture
def vcf(testdata: Path, tmp_path: Path) -> str:
    target = tmp_path / "in" / "test.vcf.gz"
    target.parent.mkdir()
    shutil.copy(testdata / "vcf" / "test.vcf.gz", target)
    return str(target)


def count_variants(piece: Any, out_dir: str) -> str:
    """Count the variants of one VCF slice per contig and write them as CSV (one output per slice)."""
    counts: dict[str, int] = {}
    for line in piece.get().splitlines():
        if line and not line.startswith(b"#"):
            contig = line.split(b"\t", 1)[0].decode()
            counts[contig] = counts.get(contig, 0) + 1
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["contig", "variants"])
    writer.writerows(sorted(counts.items()))
    url = f"{out_dir}/counts-{piece.first:06d}.csv"
    storage.put(url, text.getvalue().encode())
    return url


def test_a_job_over_vcf_slices_registers_inputs_outputs_and_the_job(cat: SqlCatalog, vcf: str, tmp_path: Path) -> None:
    source = cat.register(normalize_url(vcf), actor="alice", tags=("variants",))
    slices = CloudObject("vcf", vcf).preprocess().partition("records", num_batches=3)
    out_dir = f"file://{tmp_path / 'out'}"
    with FunctionExecutor(backend="local", workers=2, catalog=cat, owner="alice") as fexec:
        urls = fexec.get_result(fexec.map(count_variants, slices, extra_args={"out_dir": out_dir}))
        assert fexec.lineage is not None
        (job,) = fexec.lineage.records
    assert len(urls) == len(slices) == 3
    # the job: function, owner, code measurement, parameters, telemetry summary
    stored = cat.get_job(job.job_id)
    assert stored.function.endswith(":count_variants")
    assert stored.owner == "alice"
    assert stored.status == "succeeded"
    assert stored.code_measurement is not None
    assert stored.code_measurement.startswith("sha256:")
    assert stored.parameters["calls"] == 3
    assert stored.parameters["arg.out_dir"] == out_dir
    assert stored.telemetry["tasks"] == 3
    assert stored.telemetry["bytes_written"] >= sum(Path(u[len("file://") :]).stat().st_size for u in urls)
    # inputs: the registered VCF, its current version, which record slices were read
    (ref,) = stored.inputs
    assert (ref.dataset_id, ref.version) == (source.id, 1)
    assert sorted(s for s in ref.slices if s.startswith("records")) == sorted(
        f"records {s.first}-{s.first + s.count}" for s in slices
    )
    # outputs: one derived dataset per CSV written, with its connector facts
    assert len(stored.outputs) == 3
    outputs = [cat.get(d) for d in stored.outputs]
    assert sorted(d.url for d in outputs) == sorted(urls)
    assert all(d.kind == "derived" and d.owner == "alice" and d.format == "csv" for d in outputs)
    assert [d.facts["rows"] for d in outputs] == [1, 1, 1]  # test.vcf.gz: 115 variants, all on contig 1
    assert total_counts(urls) == 115
    # the graph, both ways
    up = cat.lineage(outputs[0].id, direction="up")
    assert {d.id for d in up.datasets} == {outputs[0].id, source.id}
    down = cat.lineage(source.id, direction="down")
    assert {d.id for d in down.datasets} >= {d.id for d in outputs}
    assert [j.job_id for j in down.jobs] == [job.job_id]


def total_counts(urls: list[str]) -> int:
    return sum(int(row["variants"]) for u in urls for row in csv.DictReader(io.StringIO(storage.get(u).decode())))


def test_outputs_of_one_job_feed_the_next_and_lineage_chains(cat: SqlCatalog, vcf: str, tmp_path: Path) -> None:
    slices = CloudObject("vcf", vcf).preprocess().partition("records", num_batches=2)
    out_dir = f"file://{tmp_path / 'out'}"
    with FunctionExecutor(backend="local", workers=2, catalog=cat, owner="bob") as fexec:
        urls = fexec.get_result(fexec.map(count_variants, slices, extra_args={"out_dir": out_dir}))
        total = fexec.get_result(fexec.call_async(total_counts, (urls,)))
        first, second = fexec.lineage.records if fexec.lineage else ()
    assert total == 115
    assert {cat.get(ref.dataset_id).url for ref in second.inputs} == set(urls)
    assert second.outputs == ()
    vcf_ds = cat.find_by_url(normalize_url(vcf))
    assert vcf_ds is not None  # registered on first use
    assert vcf_ds.facts["variants"] == 115
    graph = cat.lineage(vcf_ds.id, direction="down", depth=3)
    assert {j.job_id for j in graph.jobs} == {first.job_id, second.job_id}


class Recorder:
    """A minimal sink (the protocol compute defines), for what the executor reports by itself."""

    def __init__(self) -> None:
        self.jobs: list[JobLineage] = []

    def record_lineage(self, job: JobLineage) -> JobLineage:
        self.jobs.append(job)
        return job


def copy_part(obj: Any, out: str) -> int:
    data = obj.data_stream.read()
    storage.put(f"{out}/part-{obj.part}.txt", data)
    return len(data)


def test_object_parts_byte_ranges_and_writes_reach_a_plain_sink(tmp_path: Path) -> None:
    src = tmp_path / "lines.txt"
    src.write_bytes(b"".join(b"line %04d\n" % i for i in range(1000)))
    recorder = Recorder()
    assert isinstance(recorder, LineageSink)
    out = f"file://{tmp_path / 'parts'}"
    with FunctionExecutor(backend="local", workers=2, catalog=recorder, owner="carol") as fexec:
        sizes = fexec.get_result(fexec.map(copy_part, [str(src)], obj_chunk_number=4, extra_args={"out": out}))
    (job,) = recorder.jobs
    assert sum(sizes) == src.stat().st_size
    (read,) = job.reads
    assert read.url.endswith("lines.txt")
    assert sorted(read.slices) == [f"part {i}/4" for i in range(4)]
    assert read.byte_ranges[0][0] == 0
    assert read.byte_ranges[-1][1] == src.stat().st_size
    assert sorted(url.rsplit("/", 1)[-1] for url, _ in job.writes) == [f"part-{i}.txt" for i in range(4)]
    assert sum(size for _, size in job.writes) == src.stat().st_size
    assert job.owner == "carol"
    assert job.telemetry["bytes_written"] == src.stat().st_size


def fails_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two")
    return x


def test_a_failed_job_is_recorded_as_failed() -> None:
    recorder = Recorder()
    with FunctionExecutor(backend="local", workers=1, catalog=recorder, retries=0) as fexec:
        fexec.get_result(fexec.map(fails_on_two, [1, 2, 3]), throw_except=False)
    (job,) = recorder.jobs
    assert job.status == "failed"
    assert job.telemetry["failures"] == 1
    assert job.writes == ()


def fails_at_length(x: int) -> int:
    """Fails on every odd call, with a traceback longer than a record keeps."""
    if x % 2:
        raise ValueError(f"odd <{x}> " + "x" * 20_000)
    return x


def test_failed_calls_keep_their_remote_tracebacks_bounded() -> None:
    recorder = Recorder()
    with FunctionExecutor(backend="local", workers=2, catalog=recorder, retries=0) as fexec:
        fexec.get_result(fexec.map(fails_on_two, [1, 2, 3]), throw_except=False)
        fexec.get_result(fexec.map(fails_at_length, range(50)), throw_except=False)
    short, long = recorder.jobs
    (failure,) = short.telemetry["failed_calls"]
    assert (failure["call_id"], failure["error_type"], failure["message"]) == (1, "builtins.ValueError", "two")
    assert "in fails_on_two" in failure["remote_traceback"]
    assert failure["remote_traceback"].rstrip().endswith("ValueError: two")
    assert (failure["traceback_omitted"], failure["attempts"], short.telemetry["failed_calls_omitted"]) == (0, 1, 0)
    kept = long.telemetry["failed_calls"]
    assert [f["call_id"] for f in kept] == list(range(1, 41, 2))  # the first 20 of 25
    assert long.telemetry["failed_calls_omitted"] == 5
    for f in kept:
        assert f["message"].startswith(f"odd <{f['call_id']}> xxx")
        assert len(json.dumps(f["message"])) <= 1000
        assert len(json.dumps(f["remote_traceback"])) <= 8000
        assert f["traceback_omitted"] > 12_000
        assert f["remote_traceback"].endswith("xxx\n")


def test_the_setting_turns_lineage_on_for_the_configured_catalog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'configured.db'}"
    home = tmp_path / "home"
    settings = dataclasses.replace(default_settings(), home=home, catalog=CatalogSettings(url=url, lineage=True))
    out = tmp_path / "x.csv"
    with FunctionExecutor(backend="local", workers=1, settings=settings, owner="dave") as fexec:
        fexec.get_result(fexec.call_async(storage.put, (str(out), b"a,b\n1,2\n")))
    # the executor closed the catalog it opened, and with it the audit log (a final checkpoint)
    log = str(home / "audit" / "catalog.log")
    assert verify_log(log, public_key=load_public_key(home / "audit.key.pub")).uncovered == 0
    assert ("dave", "record-job") in [
        (r["subject"], r["action"]) for r in map(json.loads, (x for _, x in read_lines(log)))
    ]
    with open_catalog(url, settings=settings) as cat:
        found = cat.find_by_url(normalize_url(str(out)))
        assert found is not None
        assert (found.kind, found.owner, found.facts["rows"]) == ("derived", "dave", 1)
    with FunctionExecutor(backend="local", workers=1) as plain:
        assert plain.lineage is None  # off by default


def test_compute_never_imports_the_catalog() -> None:
    compute = Path(xtremehub.__file__).parent / "compute"
    offenders = []
    for path in compute.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("xtremehub.catalog")]
    assert offenders == []


@pytest.mark.dask
def test_lineage_on_dask_lists_the_writes_of_remote_workers(dask_client: Any, tmp_path: Path, cat: SqlCatalog) -> None:
    src = tmp_path / "lines.txt"
    src.write_bytes(b"".join(b"row %04d\n" % i for i in range(400)))
    out = f"file://{tmp_path / 'dask-parts'}"
    with FunctionExecutor(dask_client, catalog=cat, owner="erin") as fexec:
        sizes = fexec.get_result(fexec.map(copy_part, [str(src)], obj_chunk_number=2, extra_args={"out": out}))
        (job,) = fexec.lineage.records if fexec.lineage else ()
    assert sum(sizes) == src.stat().st_size
    assert len(job.outputs) == 2
    assert sorted(cat.get(d).url.rsplit("/", 1)[-1] for d in job.outputs) == ["part-0.txt", "part-1.txt"]
    (ref,) = job.inputs
    assert cat.get(ref.dataset_id).url == normalize_url(str(src))
    assert sorted(s for s in ref.slices if s.startswith("part")) == ["part 0/2", "part 1/2"]


def test_the_variants_pipeline_records_its_run(cat: SqlCatalog, testdata: Path, tmp_path: Path) -> None:
    from xtremehub.pipelines.variants import SimConfig, call_variants, simulate_run

    run = simulate_run(
        str(testdata / "fasta" / "ce.fa"), str(tmp_path / "sim"), SimConfig(coverage=20, paired=False, seed=3),
        contigs=("CHROMOSOME_II",),
    )  # fmt: skip
    out = str(tmp_path / "calls.vcf.gz")
    report = call_variants(run.reads_urls, run.reference_url, out, read_batches=2, catalog=cat, owner="frank")
    vcf_ds = cat.find_by_url(normalize_url(out))
    assert vcf_ds is not None
    assert (vcf_ds.kind, vcf_ds.owner, vcf_ds.format) == ("derived", "frank", "vcf")
    assert vcf_ds.facts["variants"] == report.calls > 0
    graph = cat.lineage(vcf_ds.id, direction="up", depth=1)
    (job,) = graph.jobs
    assert job.function == "xtremehub.pipelines.variants:call_variants"
    assert job.telemetry["reads"] == report.reads
    assert {cat.get(ref.dataset_id).format for ref in job.inputs} == {"fastq_gzip", "fasta"}
    assert {cat.get(d).url.rsplit("/", 1)[-1] for d in job.outputs} == {
        "calls.vcf.gz", "calls.vcf.gz.qc.png", "calls.vcf.gz.report.json",
    }  # fmt: skip
