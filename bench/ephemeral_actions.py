"""Two-stage job with a reducer action in the ephemeral store vs the same job through S3.

Stage 1: one task per slice of the demo's sample FASTQ.gz (connector slices, local
executor) counts its k-mers and writes them as one JSON partial. Stage 2 needs the
counts of the whole file.

* actions: partials go to ``xhub-eph://`` where a ``sum_counts`` reducer merges each one as
  it arrives (in the node service's action workers); stage 2 reads one merged object;
* S3: partials go to SeaweedFS; stage 2 lists and reads all of them and adds them up.

Bytes moved between the stages (written by stage 1 + read by stage 2) and wall time of
both stages, for the two ways in the same run, 3 runs; counts checked equal.

    python bench/ephemeral_actions.py            # 64 MiB FASTQ, 32 slices, k = 8
    python bench/ephemeral_actions.py --quick    # 16 MiB, 16 slices
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from xtremehub import FunctionExecutor
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
from xtremehub.demo.ephemeral_job import TwoStageResult, run_two_stage
from xtremehub.demo.sample_data import ensure_sample_fastq
from xtremehub.ephemeral import NodeService, TierConfig
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS

BUCKET = "bench-eph-actions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("-k", type=int, default=8)
    args = parser.parse_args()
    size_mb, slices = (16, 16) if args.quick else (64, 32)
    home = Path(tempfile.mkdtemp(prefix="xhub-bench-eph-actions-"))
    with SeaweedFS.start() as server:
        settings = server.settings().replace(home=home)
        S3Store(BUCKET, settings.s3).create_bucket()
        dataset = ensure_sample_fastq(home, size_mb=size_mb)
        with NodeService(TierConfig(memory_limit="512MiB"), settings).start():
            co = CloudObject.from_path(FASTQGZip, dataset.url, settings=settings).preprocess()
            parts = co.partition(partition_reads_batches, num_batches=slices)
            results: dict[str, list[TwoStageResult]] = {"actions": [], "store": []}
            with FunctionExecutor(workers=args.workers, settings=settings) as fexec:
                run_two_stage(fexec, parts[:2], via="actions", root="xhub-eph://warm/", k=args.k, settings=settings)
                run_two_stage(fexec, parts[:2], via="store", root=f"s3://{BUCKET}/warm/", k=args.k, settings=settings)
                for run in range(args.runs):
                    ours = run_two_stage(
                        fexec, parts, via="actions", root="xhub-eph://bench/", k=args.k, settings=settings
                    )
                    s3 = run_two_stage(
                        fexec, parts, via="store", root=f"s3://{BUCKET}/r{run}/", k=args.k, settings=settings
                    )
                    assert ours.counts == s3.counts, "the two ways disagree"
                    results["actions"].append(ours)
                    results["store"].append(s3)
                    print(
                        f"run {run + 1}: actions {ours.bytes_moved / 1e6:.2f} MB {ours.seconds:.2f}s "
                        f"(stage 2 {ours.stage2_seconds * 1e3:.0f} ms) | S3 {s3.bytes_moved / 1e6:.2f} MB "
                        f"{s3.seconds:.2f}s (stage 2 {s3.stage2_seconds * 1e3:.0f} ms)",
                        flush=True,
                    )
    m = dataset.manifest
    print(
        f"\n{size_mb} MiB FASTQ.gz ({m['compressed_bytes'] / 1e6:.1f} MB gzip, {m['reads']:,} reads), "
        f"{slices} slices, k = {args.k}, {args.workers} workers, {args.runs} runs; "
        f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs\n"
    )

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"

    rows = [
        ("stage 1 writes (MB)", lambda r: r.bytes_written / 1e6),
        ("stage 2 reads (MB)", lambda r: r.bytes_read / 1e6),
        ("bytes moved between stages (MB)", lambda r: r.bytes_moved / 1e6),
        ("stage 1 time (s)", lambda r: r.stage1_seconds),
        ("stage 2 time (s)", lambda r: r.stage2_seconds),
        ("total time (s)", lambda r: r.seconds),
    ]
    print("| median (min-max) of 3 runs | S3 (SeaweedFS), no actions | xhub-eph:// + reducer action | S3 / actions |")
    print("|---|---|---|---|")
    for label, get in rows:
        s3v = [get(r) for r in results["store"]]
        ours = [get(r) for r in results["actions"]]
        print(f"| {label} | {med(s3v)} | {med(ours)} | {statistics.median(s3v) / statistics.median(ours):.2f}x |")


if __name__ == "__main__":
    main()
