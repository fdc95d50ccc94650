"""Variant calling: identity with a sequential run, truth-set recall/precision, bad input."""

from __future__ import annotations

import gzip
import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pysam
import pytest
from click.testing import CliRunner

from xtremehub import FunctionExecutor
from xtremehub.cli import cli
from xtremehub.errors import DuplicateSequence, MismatchedPairs, TruncatedData
from xtremehub.pipelines.variants import (
    ReadQC,
    SimConfig,
    SimulatedRun,
    call_sequential,
    call_variants,
    compare_calls,
    random_reference,
    simulate_run,
    vcf_records,
)

CONTIGS = ("CHROMOSOME_I", "CHROMOSOME_II", "CHROMOSOME_III", "CHROMOSOME_MtDNA")
CROP = 24_000  # CHROMOSOME_I is cut to its first 24 kbp; the others are 5 kbp
# variants forced onto region boundaries (1-based): the last base of a 6000-base region, the
# first of the next, and a 10,000-base boundary
BOUNDARIES = [("CHROMOSOME_I", 6000), ("CHROMOSOME_I", 12001), ("CHROMOSOME_I", 10000), ("CHROMOSOME_II", 2500)]


@pytest.fixture(scope="module")
def sim(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> SimulatedRun:
    out = tmp_path_factory.mktemp("variants")
    config = SimConfig(coverage=30, snp_rate=1 / 400, indel_rate=1 / 2000, seed=7)
    return simulate_run(str(testdata / "fasta" / "ce.fa"), str(out), config, contigs=CONTIGS, crop=CROP, at=BOUNDARIES)


@pytest.fixture(scope="module")
def testdata() -> Path:
    return Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def sequential(sim: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[str]]:
    out = str(tmp_path_factory.mktemp("seq") / "seq.vcf.gz")
    report = call_sequential(sim.reads_urls, sim.reference_url, out)
    return report, vcf_records(out)


@pytest.fixture(scope="module")
def fexec() -> Iterator[FunctionExecutor]:
    with FunctionExecutor("local", workers=2, progress=False) as executor:
        yield executor


@pytest.mark.parametrize(("batches", "region_size"), [(1, 6000), (3, 10_000), (8, 2_500), (3, 100_000)])
def test_identical_to_the_sequential_run(
    sim: SimulatedRun,
    sequential: tuple[Any, list[str]],
    fexec: FunctionExecutor,
    tmp_path: Path,
    batches: int,
    region_size: int,
) -> None:
    out = str(tmp_path / "calls.vcf.gz")
    report = call_variants(
        sim.reads_urls, sim.reference_url, out, executor=fexec, read_batches=batches, region_size=region_size
    )
    records = vcf_records(out)
    assert len(records) > 50
    assert records == sequential[1]  # CHROM POS ID REF ALT QUAL FILTER INFO FORMAT sample: all of it
    assert report.batches == batches
    assert report.reads == sequential[0].reads == 2 * sim.num_fragments
    assert report.qc.equals(sequential[0].qc)
    assert report.shuffle_bytes > 0
    assert report.shuffle_objects >= report.regions > 0


def test_boundary_variants_are_called(sim: SimulatedRun, sequential: tuple[Any, list[str]]) -> None:
    called = {(r.split("\t")[0], int(r.split("\t")[1])) for r in sequential[1]}
    planted = {(v.chrom, v.pos) for v in sim.variants}
    for spot in BOUNDARIES:
        assert spot in planted
        assert spot in called


def test_cli_call_truth_set_recall_and_precision(sim: SimulatedRun, tmp_path: Path) -> None:
    out = str(tmp_path / "calls.vcf.gz")
    args = ["variants", "call", "--reads", sim.reads_urls[0], "--reads", sim.reads_urls[1]]
    args += [
        "--reference",
        sim.reference_url,
        "--out",
        out,
        "--workers",
        "2",
        "--batches",
        "3",
        "--region-size",
        "10000",
    ]
    result = CliRunner().invoke(cli, args, obj=None)
    assert result.exit_code == 0, result.output
    assert f"variants from {2 * sim.num_fragments:,} reads" in result.output
    for stage in ("index", "map", "call", "write"):
        assert f"  {stage} " in result.stderr
    score = compare_calls(out, sim.truth_url)
    print(score.line())
    assert score.snp_tp + score.snp_fn >= 80
    assert score.snp_recall >= 0.95
    assert score.snp_precision >= 0.95
    assert score.indel_recall >= 0.7
    assert score.genotype_agreement >= 0.9
    with pysam.VariantFile(out) as vcf:  # a sorted, tabix-indexed VCF.gz
        assert len(list(vcf.fetch("CHROMOSOME_I", 0, 6000))) > 5
        assert list(vcf.header.samples) == ["sample"]
    png = Path(out + ".qc.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    summary = json.loads(Path(out + ".report.json").read_text())
    assert summary["qc"]["reads"] == 2 * sim.num_fragments
    assert not Path(out + ".work").exists() or not any(Path(out + ".work").rglob("*.bam"))


def test_single_end(testdata: Path, tmp_path: Path) -> None:
    run = simulate_run(
        str(testdata / "fasta" / "ce.fa"),
        str(tmp_path),
        SimConfig(coverage=25, paired=False, seed=3, snp_rate=1 / 300),
        contigs=("CHROMOSOME_II", "CHROMOSOME_X"),
    )
    assert len(run.reads_urls) == 1
    out = str(tmp_path / "calls.vcf.gz")
    report = call_variants(run.reads_urls, run.reference_url, out, read_batches=3, region_size=3000)
    seq_out = str(tmp_path / "seq.vcf.gz")
    call_sequential(run.reads_urls, run.reference_url, seq_out)
    assert vcf_records(out) == vcf_records(seq_out)
    assert report.reads == run.num_fragments
    assert compare_calls(out, run.truth_url).snp_recall >= 0.9


def test_qc_merge_equals_one_pass(testdata: Path) -> None:
    with gzip.open(testdata / "fastq" / "Illimina1.8.fq.gz", "rb") as fh:
        lines = fh.read().splitlines()
    seqs, quals = lines[1::4], lines[3::4]
    assert len(seqs) == 10_000  # FACTS.md
    whole = ReadQC.of(seqs, quals)
    for cuts in ([3_333, 6_666], [1, 2, 9_999], [5_000]):
        bounds = [0, *cuts, len(seqs)]
        parts = [ReadQC.of(seqs[a:b], quals[a:b]) for a, b in itertools.pairwise(bounds)]
        assert ReadQC.merge_all(parts).equals(whole)
        assert parts[0].merge(parts[1]).merge(ReadQC.merge_all(parts[2:])).equals(whole)  # associative
    assert whole.reads == 10_000
    assert whole.bases == 1_500_000
    h = whole.headline()
    assert 0 < h["mean_quality"] < 42
    assert 0 < h["gc_percent"] < 100


def test_no_overlap_gives_an_empty_vcf_with_a_note(testdata: Path, tmp_path: Path) -> None:
    other = random_reference(str(tmp_path / "other.fa"), {"x": 8000}, seed=5)
    run = simulate_run(other, str(tmp_path / "sim"), SimConfig(coverage=3, seed=1))
    out = str(tmp_path / "calls.vcf.gz")
    reference = tmp_path / "ce.fa"  # a copy: the FASTA index goes beside it, not into tests/data
    reference.write_bytes((testdata / "fasta" / "ce.fa").read_bytes())
    report = call_variants(run.reads_urls, str(reference), out, read_batches=2)
    assert report.calls == 0
    assert report.mapped == 0
    assert any("no read mapped" in note for note in report.notes)
    with pysam.VariantFile(out) as vcf:
        assert "CHROMOSOME_I" in vcf.header.contigs
        assert list(vcf) == []


def test_truncated_fastq_names_the_object(sim: SimulatedRun, tmp_path: Path) -> None:
    data = Path(sim.reads_urls[0]).read_bytes()
    cut = tmp_path / "cut_1.fastq.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(TruncatedData) as err:
        call_variants([str(cut)], sim.reference_url, str(tmp_path / "c.vcf.gz"))
    assert str(cut) in str(err.value)
    assert "offset" in str(err.value)


def test_duplicate_reference_names_are_refused(sim: SimulatedRun, tmp_path: Path) -> None:
    ref = tmp_path / "dup.fa"
    ref.write_text(">a\nACGTACGTAC\n>b\nACGTTT\n>a\nGGGG\n")
    with pytest.raises(DuplicateSequence, match=r"dup\.fa: sequence names seen more than once: a"):
        call_variants(sim.reads_urls, str(ref), str(tmp_path / "c.vcf.gz"))


def test_mismatched_pairs(sim: SimulatedRun, tmp_path: Path) -> None:
    with gzip.open(sim.reads_urls[1], "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    fewer = tmp_path / "fewer_2.fastq.gz"
    fewer.write_bytes(gzip.compress(b"".join(lines[:-8])))
    with pytest.raises(MismatchedPairs, match="reads in"):
        call_variants([sim.reads_urls[0], str(fewer)], sim.reference_url, str(tmp_path / "c.vcf.gz"))
    lines[4 * 100] = b"@other/2\n"
    renamed = tmp_path / "renamed_2.fastq.gz"
    renamed.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(MismatchedPairs, match="'other'") as err:
        call_variants([sim.reads_urls[0], str(renamed)], sim.reference_url, str(tmp_path / "c.vcf.gz"))
    assert err.value.offset == 100
    assert err.value.offset_kind == "record"


def test_concordance_with_the_command_line_tools(
    sim: SimulatedRun, sequential: tuple[Any, list[str]], tmp_path: Path
) -> None:
    """Debian's ``minimap2 | samtools sort | bcftools mpileup | bcftools call`` on the same reads.

    Not identical (minimap2 2.24 vs mappy's bundled version, samtools/bcftools versions differ):
    the shared calls and both truth scores are reported and bounded.
    """
    missing = [tool for tool in ("minimap2", "samtools", "bcftools") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: `make system-deps` (as root) or apt-get install {' '.join(missing)}"
        )
    ref, bam, vcf = sim.reference_url, tmp_path / "cli.bam", tmp_path / "cli.vcf.gz"
    pipeline = (
        f"minimap2 -ax sr -R '@RG\\tID:sample\\tSM:sample' {ref} {' '.join(sim.reads_urls)} 2>/dev/null"
        f" | samtools sort -o {bam} - && samtools index {bam}"
        f" && bcftools mpileup -f {ref} -a FORMAT/AD,FORMAT/DP {bam} 2>/dev/null"
        f" | bcftools call -m -v -O z -o {vcf}"
    )
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True, timeout=600)
    ours = {tuple(r.split("\t")[:5]) for r in sequential[1]}
    theirs = {tuple(r.split("\t")[:5]) for r in vcf_records(str(vcf))}
    shared = len(ours & theirs) / len(ours | theirs)
    cli_score = compare_calls(str(vcf), sim.truth_url)
    print(f"concordance {shared:.3f} ({len(ours)} ours, {len(theirs)} CLI); CLI truth: {cli_score.line()}")
    assert shared >= 0.9
    assert cli_score.snp_recall >= 0.95


@pytest.mark.s3
def test_from_seaweedfs_s3(
    sim: SimulatedRun, sequential: tuple[Any, list[str]], s3_settings: Any, s3_root: str
) -> None:
    """Inputs, shuffle and outputs in a real S3 store (SeaweedFS)."""
    from xtremehub import storage

    urls = {}
    for path in (*sim.reads_urls, sim.reference_url):
        urls[path] = s3_root + Path(path).name
        with Path(path).open("rb") as fh:
            storage.put(urls[path], fh, settings=s3_settings)
    out = s3_root + "calls.vcf.gz"
    with FunctionExecutor("local", workers=2, settings=s3_settings, progress=False) as executor:
        report = call_variants(
            [urls[u] for u in sim.reads_urls],
            urls[sim.reference_url],
            out,
            executor=executor,
            read_batches=3,
            region_size=10_000,
            settings=s3_settings,
        )
    assert vcf_records(out, settings=s3_settings) == sequential[1]
    assert storage.exists(out + ".tbi", settings=s3_settings)
    assert report.shuffle_objects > 0
    assert not [o for o in storage.list(out + ".work/", settings=s3_settings) if o.key.endswith(".bam")]


@pytest.mark.dask
@pytest.mark.slow
def test_dask_gives_identical_calls(
    sim: SimulatedRun, sequential: tuple[Any, list[str]], dask_client: Any, tmp_path: Path
) -> None:
    out = str(tmp_path / "calls.vcf.gz")
    with FunctionExecutor("dask", client=dask_client, progress=False) as executor:
        call_variants(sim.reads_urls, sim.reference_url, out, executor=executor, read_batches=8, region_size=6000)
    assert vcf_records(out) == sequential[1]


@pytest.mark.ray
@pytest.mark.slow
def test_ray_gives_identical_calls(
    sim: SimulatedRun, sequential: tuple[Any, list[str]], ray_engine: Any, tmp_path: Path
) -> None:
    out = str(tmp_path / "calls.vcf.gz")
    with FunctionExecutor("ray", progress=False) as executor:
        call_variants(sim.reads_urls, sim.reference_url, out, executor=executor, read_batches=3, region_size=10_000)
    assert vcf_records(out) == sequential[1]


@pytest.mark.lithops
@pytest.mark.slow
def test_lithops_localhost_gives_identical_calls(
    sim: SimulatedRun, sequential: tuple[Any, list[str]], tmp_path: Path, lithops_config: dict[str, Any]
) -> None:
    out = str(tmp_path / "calls.vcf.gz")
    with FunctionExecutor("lithops", config=lithops_config, progress=False) as executor:
        call_variants(sim.reads_urls, sim.reference_url, out, executor=executor, read_batches=3, region_size=10_000)
    assert vcf_records(out) == sequential[1]


def test_qc_over_connector_slices_matches_the_fastq_facts(testdata: Path, tmp_path: Path) -> None:
    from xtremehub.connectors import CloudObject
    from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches

    url = str(testdata / "fastq" / "sample.fastq.bgz")
    co = CloudObject.from_path(FASTQGZip, url, metadata_url=str(tmp_path / "index")).preprocess()
    parts = []
    for data_slice in co.partition(partition_reads_batches, num_batches=3):
        records = list(data_slice.iter_records())
        parts.append(ReadQC.of([r[1] for r in records], [r[2] for r in records]))
    with gzip.open(url, "rb") as fh:
        lines = fh.read().splitlines()
    whole = ReadQC.of(lines[1::4], lines[3::4])
    merged = ReadQC.merge_all(parts)
    assert merged.equals(whole)
    assert (merged.reads, merged.bases) == (2000, 202_000)  # FACTS.md


def test_qc_sample_is_the_first_reads_whatever_the_batches(testdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xtremehub.pipelines.variants import qc as qc_module

    monkeypatch.setattr(qc_module, "OVERREPRESENTED_SAMPLE", 1000)
    with gzip.open(testdata / "fastq" / "Illimina1.8.fq.gz", "rb") as fh:
        lines = fh.read().splitlines()
    seqs, quals = lines[1::4], lines[3::4]
    whole = ReadQC.of(seqs, quals)
    assert len(whole.sample) == 1000
    bounds = [0, 400, 900, 2500, 10_000]
    parts = [ReadQC.of(seqs[a:b], quals[a:b], reads_before=a) for a, b in itertools.pairwise(bounds)]
    assert [len(p.sample) for p in parts] == [400, 500, 100, 0]  # later batches ship no sample
    assert ReadQC.merge_all(parts).equals(whole)


def test_sequence_names_with_colons(tmp_path: Path) -> None:
    ref = random_reference(str(tmp_path / "g.fa"), {"HLA-A*01:01": 6000, "chr2": 4000}, seed=2)
    run = simulate_run(ref, str(tmp_path), SimConfig(coverage=15, snp_rate=1 / 200, seed=3))
    out, seq_out = str(tmp_path / "c.vcf.gz"), str(tmp_path / "s.vcf.gz")
    call_variants(run.reads_urls, run.reference_url, out, read_batches=2, region_size=3000)
    call_sequential(run.reads_urls, run.reference_url, seq_out)
    records = vcf_records(out)
    assert records == vcf_records(seq_out)
    assert any(r.startswith("HLA-A*01:01\t") for r in records)
