"""Variant calling: the distributed pipeline on 2 workers vs the same tools sequentially, from SeaweedFS.

1. Generates (once, cached in --workdir) a random genome of --genome-mb Mbp (five sequences)
   with planted SNPs and indels, and --pairs simulated read pairs (2 x 100 bp, fragments
   300 +- 30 bp, Phred-true substitution errors, a few indel errors) as two FASTQ.gz files.
2. Starts a real SeaweedFS on loopback and puts the reference and both FASTQ.gz files in it.
3. Per run (--runs): baseline ``call_sequential`` (one process: one mapping pass with mappy,
   one sorted BAM, one ``bcftools mpileup | call``) and ours ``call_variants`` with the local
   executor (--workers, --batches-per-worker read batches per worker (8), the genome cut
   into --regions regions (16)), both reading from S3 and writing their VCF.gz to S3; the
   records must be identical.
4. Prints per-stage times, the speed-up (median and spread over the runs), CPU seconds, the
   shuffle's bytes through the store per input byte and the truth-set recall/precision, and
   extrapolates tasks and shuffle bytes to a 100 GB run.

Run:  .venv/bin/python bench/variants.py [--pairs 2000000] [--genome-mb 5] [--workers 2] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from xtremehub import FunctionExecutor, storage
from xtremehub.config import use_process_settings
from xtremehub.pipelines.variants import (
    SimConfig,
    VariantsReport,
    call_sequential,
    call_variants,
    compare_calls,
    random_reference,
    simulate_run,
    vcf_records,
)
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS

MB = 1e6


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def stages(report: VariantsReport) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in report.stages.items())


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2_000_000, help="read pairs to simulate")
    parser.add_argument("--genome-mb", type=float, default=5.0, help="genome size (Mbp)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches-per-worker", type=int, default=8, help="read batches (map tasks) per worker")
    parser.add_argument("--regions", type=int, default=16, help="genome regions (call tasks)")
    parser.add_argument("--quick", action="store_true", help="200,000 pairs on 1 Mbp (shared, loaded machines)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "variants-bench")
    args = parser.parse_args()
    pairs, genome_mb = (200_000, 1.0) if args.quick else (args.pairs, args.genome_mb)
    genome = int(genome_mb * 1e6)
    coverage = pairs * 200 / genome
    folder = args.workdir / f"g{genome}-p{pairs}"
    if not (folder / "reads_2.fastq.gz").exists():
        t0 = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        lengths = {f"chr{i + 1}": genome // 5 + (genome % 5 if i == 0 else 0) for i in range(5)}
        ref = random_reference(str(folder / "genome.fa"), lengths, seed=3)
        run = simulate_run(ref, str(folder), SimConfig(coverage=coverage, seed=4, reads_per_member=100_000))
        print(
            f"generated {run.num_fragments:,} pairs, {len(run.variants):,} variants in {time.perf_counter() - t0:.0f}s"
        )
    names = ["reference.fa", "reads_1.fastq.gz", "reads_2.fastq.gz", "truth.vcf"]
    input_bytes = sum((folder / n).stat().st_size for n in names[1:3])
    batches, region_size = args.batches_per_worker * args.workers, max(genome // args.regions, 1)

    base_times: list[float] = []
    ours_times: list[float] = []
    with SeaweedFS.start() as server:
        settings = server.settings(timeout=300)
        use_process_settings(settings)
        S3Store("bench", settings.s3).create_bucket()
        for name in names:
            with (folder / name).open("rb") as fh:
                storage.put(f"s3://bench/{name}", fh, settings=settings)
        reads = ["s3://bench/reads_1.fastq.gz", "s3://bench/reads_2.fastq.gz"]
        load_before = os.getloadavg()[0]
        for i in range(args.runs):
            c0, t0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
            base = call_sequential(reads, "s3://bench/reference.fa", f"s3://bench/seq{i}.vcf.gz", settings=settings)
            base_s, base_cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_SELF) - c0
            c0, k0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
                ours = call_variants(
                    reads,
                    "s3://bench/reference.fa",
                    f"s3://bench/ours{i}.vcf.gz",
                    executor=fexec,
                    read_batches=batches,
                    region_size=region_size,
                    settings=settings,
                )
            ours_s = time.perf_counter() - t0
            ours_cpu = cpu_seconds(resource.RUSAGE_SELF) - c0 + cpu_seconds(resource.RUSAGE_CHILDREN) - k0
            same = vcf_records(f"s3://bench/seq{i}.vcf.gz", settings=settings) == vcf_records(
                f"s3://bench/ours{i}.vcf.gz", settings=settings
            )
            assert same, "the distributed calls differ from the sequential ones"
            base_times.append(base_s)
            ours_times.append(ours_s)
            print(
                f"run {i + 1}: baseline {base_s:7.1f}s [{stages(base)}] CPU {base_cpu:.0f}s | "
                f"ours {ours_s:7.1f}s [{stages(ours)}] CPU (driver + workers) {ours_cpu:.0f}s | "
                f"{base_s / ours_s:.2f}x, records identical ({ours.calls:,})"
            )
        score = compare_calls(f"s3://bench/ours{args.runs - 1}.vcf.gz", "s3://bench/truth.vcf", settings=settings)
        use_process_settings(None)
    load_after = os.getloadavg()[0]
    ratios = [b / o for b, o in zip(base_times, ours_times, strict=True)]
    per_input = ours.shuffle_bytes / input_bytes
    print(
        f"data: {pairs:,} pairs (2 x 100 bp) on {genome / 1e6:g} Mbp ({coverage:.0f}x), "
        f"FASTQ.gz {input_bytes / MB:,.0f} MB" + (" (--quick)" if args.quick else "")
    )
    print(f"machine: {os.cpu_count()} cores, load average {load_before:.1f} at start, {load_after:.1f} at end")
    print(
        f"ours: {args.workers} workers, {ours.batches} read batches x {ours.regions} regions of {region_size:,} bases"
    )
    print(f"baseline  {spread(base_times)} s")
    print(f"ours      {spread(ours_times)} s")
    print(f"speed-up  {spread(ratios)}x (target >= 1.7x)")
    print(
        f"shuffle   {ours.shuffle_bytes / MB:,.1f} MB in {ours.shuffle_objects} BAM parts = "
        f"{per_input:.2f} bytes per input byte"
    )
    print(f"truth     {score.line()}")
    gb100 = 100e9
    batches_100 = int(gb100 / 100e6)  # 100 MB of FASTQ.gz per map task
    regions_100 = int(3.1e9 / 10e6)  # human genome, 10 Mbp per call task
    print(
        f"100 GB    {batches_100:,} map tasks (100 MB each) x {regions_100} call tasks (10 Mbp): "
        f"~{per_input * gb100 / 1e9:,.0f} GB through the store in <= {batches_100 * regions_100:,} parts"
    )


if __name__ == "__main__":
    main()
