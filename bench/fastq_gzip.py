"""FASTQ.gz connector: scan throughput, preprocessing cost, bytes fetched, index size. One run.

1. Generates (once, cached in --workdir) a single-member FASTQ.gz of --mb MiB
   uncompressed: 150 bp reads, realistic quality alphabet, Python gzip level 6.
2. Starts a real SeaweedFS on loopback and uploads it.
3. Scan baseline: ``gzip -dc file | wc -l`` on local disk.
   Ours: all slices (--slices) read on the local executor (--workers) from S3;
   aggregate decompressed throughput = uncompressed bytes / wall time.
4. Preprocessing baseline (static partitioning as users do it today): decompress,
   split into --slices plain FASTQ files on record boundaries, upload them.
   Ours: ``CloudObject.preprocess(executor)`` against the S3 object, on a fresh local
   executor with --workers workers (its start-up included).
5. Bytes fetched by all slices / object size, and index size / object size.

Run:  .venv/bin/python bench/fastq_gzip.py [--mb 1024] [--slices 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import tempfile
import time
from pathlib import Path

from seaweed_object import object_on_seaweedfs
from xtremehub import FunctionExecutor, storage
from xtremehub.connectors import CloudObject
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.connectors.genomics import FASTQGZip, FASTQGZipSlice, partition_reads_batches
from xtremehub.demo.sample_data import write_fastq_gz

MiB = 1024 * 1024


def scan_slice(data_slice: FASTQGZipSlice) -> tuple[int, int, int]:
    """Map function: read every record of one slice; (reads, decompressed bytes, compressed bytes fetched)."""
    src = RangeSource(data_slice.url, data_slice.object_size, data_slice.checkpoint.byte_offset, data_slice.planned_end)
    nbytes = reads = 0
    for chunk in data_slice._blocks(src):
        nbytes += len(chunk)
        reads += chunk.count(b"\n") // 4
    return reads, nbytes, src.fetched


def static_partition_baseline(local: Path, slices: int, reads: int, bucket_url: str, settings) -> float:
    """Decompress, split into `slices` plain files on record boundaries, upload them."""
    t0 = time.perf_counter()
    per = -(-reads // slices)
    with tempfile.TemporaryDirectory() as tmp, gzip.open(local, "rb") as fh:
        part, lines_in_part, out = 0, 0, open(Path(tmp) / "part-0000.fq", "wb")  # noqa: SIM115
        paths = [Path(tmp) / "part-0000.fq"]
        for line in fh:
            out.write(line)
            lines_in_part += 1
            if lines_in_part == 4 * per:
                out.close()
                part += 1
                lines_in_part = 0
                paths.append(Path(tmp) / f"part-{part:04d}.fq")
                out = open(paths[-1], "wb")  # noqa: SIM115
        out.close()
        for p in paths:
            with p.open("rb") as src:
                storage.put(f"{bucket_url}static/{p.name}", src, settings=settings)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024, help="uncompressed size to generate")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xhub-bench")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    local = args.workdir / f"reads-{args.mb}MiB.fastq.gz"
    if not local.exists():
        t0 = time.perf_counter()
        write_fastq_gz(local, args.mb)
        print(f"generated {local} in {time.perf_counter() - t0:.0f}s")
    size = local.stat().st_size

    t0 = time.perf_counter()
    lines = subprocess.run(f"gzip -dc {local} | wc -l", shell=True, check=True, capture_output=True, text=True)
    base_scan = time.perf_counter() - t0
    uncompressed = None

    with object_on_seaweedfs(local, "reads.fastq.gz") as (url, settings):
        t0 = time.perf_counter()  # a fresh executor: its start-up counts, as a user's would
        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as pre_exec:
            co = CloudObject.from_path(FASTQGZip, url, settings=settings).preprocess(pre_exec, force=True)
        ours_pre = time.perf_counter() - t0
        reads = int(co["num_reads"])
        uncompressed = int(co["uncompressed_size"])
        assert 4 * reads == int(lines.stdout.strip()), (reads, lines.stdout)
        index_size = storage.head(co.metadata_url, settings=settings).size

        slices = co.partition(partition_reads_batches, num_batches=args.slices)
        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
            fexec.get_result(fexec.map(scan_slice, slices[:2]))  # start workers, warm the page cache
            t0 = time.perf_counter()
            results = fexec.get_result(fexec.map(scan_slice, slices))
            ours_scan = time.perf_counter() - t0
        assert sum(r[0] for r in results) == reads
        assert sum(r[1] for r in results) == uncompressed
        fetched = sum(r[2] for r in results)

        base_pre = static_partition_baseline(local, args.slices, reads, "s3://bench/", settings)

    base_tp = uncompressed / base_scan / MiB
    ours_tp = uncompressed / ours_scan / MiB
    print(
        f"object: {size / MiB:.0f} MiB gzip, {uncompressed / MiB:.0f} MiB FASTQ, {reads:,} reads; "
        f"{args.slices} slices, {args.workers} workers, SeaweedFS on loopback"
    )
    print(
        f"scan      gzip -dc | wc -l (local): {base_scan:6.2f}s {base_tp:6.0f} MiB/s | "
        f"ours from S3: {ours_scan:6.2f}s {ours_tp:6.0f} MiB/s | ratio {ours_tp / base_tp:.2f}x"
    )
    print(
        f"preprocess static split+upload: {base_pre:6.2f}s | ours preprocess(): {ours_pre:6.2f}s | "
        f"ours/baseline {ours_pre / base_pre:.0%}"
    )
    print(f"bytes fetched / object size: {fetched / size:.3f}   index size / object size: {index_size / size:.3%}")


if __name__ == "__main__":
    main()
