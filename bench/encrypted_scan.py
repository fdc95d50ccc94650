"""Encryption at rest: encrypted vs plain FASTQ.gz slice scan from SeaweedFS, same run. Plus chunk sizes.

1. Generates (once, cached in --workdir) a single-member FASTQ.gz of --mb MiB uncompressed
   (the generator of ``bench/fastq_gzip.py``).
2. Starts a real SeaweedFS on loopback; uploads the file plain (``s3://bench/plain/...``) and
   encrypted (``enc+s3://bench/enc/...``, 64 KiB chunks, file keyring) and preprocesses both.
3. Scan: every slice (--slices) read on a local executor with --workers workers, plain and
   encrypted alternately, --rounds times each; the workers open the keyring themselves (only
   its path travels). Reported: median wall time and spread of each, the median of the
   per-round ratios encrypted/plain (wall time, and the workers' CPU seconds, which a loaded
   machine disturbs less), and ciphertext bytes fetched / object size.
4. Ranged reads by chunk size: the object stored encrypted with each of --chunk-sizes;
   --ranges random 4 KiB reads and --ranges random 1 MiB reads in one process; time per read
   and bytes fetched per byte asked for.

Run:  PYTHONPATH=src .venv/bin/python bench/encrypted_scan.py [--mb 1024] [--slices 64] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from seaweed_object import object_on_seaweedfs
from xtremehub import FunctionExecutor, storage
from xtremehub.config import EncryptionSettings, Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.connectors.genomics import FASTQGZip, FASTQGZipSlice, partition_reads_batches
from xtremehub.demo.sample_data import write_fastq_gz
from xtremehub.storage import iostats

MiB = 1024 * 1024


def scan_slice(data_slice: FASTQGZipSlice) -> tuple[int, int, int, float]:
    """Map function: read every record of one slice; (reads, decompressed bytes, bytes fetched
    from S3, CPU seconds of the worker process meanwhile)."""
    cpu = time.process_time()
    before = iostats.snapshot().bytes_read
    settings = data_slice.access.settings_for(data_slice.url)
    src = RangeSource(
        data_slice.url,
        data_slice.object_size,
        data_slice.checkpoint.byte_offset,
        data_slice.planned_end,
        settings=settings,
    )
    nbytes = reads = 0
    for chunk in data_slice._blocks(src):
        nbytes += len(chunk)
        reads += chunk.count(b"\n") // 4
    return reads, nbytes, iostats.snapshot().bytes_read - before, time.process_time() - cpu


def upload(local: Path, url: str, settings: Settings) -> CloudObject:
    with local.open("rb") as fh:
        storage.put(url, fh, settings=settings)
    with FunctionExecutor(workers=2, settings=settings, progress=False) as fexec:
        return CloudObject.from_path(FASTQGZip, url, settings=settings).preprocess(fexec, force=True)


def ranged_reads(url: str, size: int, settings: Settings, count: int, length: int) -> tuple[float, float]:
    """(milliseconds per read, bytes fetched / bytes asked) of ``count`` random reads of ``length`` bytes."""
    store, key = storage.open_store(url, settings)
    store.get_range(key, 0, 1)  # open: header and size cached, as a slice's reader does
    rng = random.Random(7)
    starts = [rng.randrange(0, size - length) for _ in range(count)]
    before = iostats.snapshot().bytes_read
    t0 = time.perf_counter()
    for start in starts:
        store.get_range(key, start, start + length)
    elapsed = time.perf_counter() - t0
    return elapsed / count * 1000, (iostats.snapshot().bytes_read - before) / (count * length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024, help="uncompressed size to generate")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ranges", type=int, default=200)
    parser.add_argument("--chunk-sizes", default="65536,1048576")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xhub-bench")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    local = args.workdir / f"reads-{args.mb}MiB.fastq.gz"
    if not local.exists():
        write_fastq_gz(local, args.mb)
    size = local.stat().st_size

    with tempfile.TemporaryDirectory() as keydir, object_on_seaweedfs(local, "plain/reads.fastq.gz") as (url, base):
        encryption = EncryptionSettings(keys=f"file://{keydir}/keyring.json", dataset="bench")
        settings = base.replace(encryption=encryption)
        plain = CloudObject.from_path(FASTQGZip, url, settings=settings).preprocess(force=True)
        enc = upload(local, "enc+s3://bench/enc/reads.fastq.gz", settings)
        assert enc.size == plain.size == size
        reads = int(plain["num_reads"])
        times: dict[str, list[float]] = {"plain": [], "encrypted": []}
        cpus: dict[str, list[float]] = {"plain": [], "encrypted": []}
        fetched: dict[str, int] = {}
        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
            cases = {
                "plain": plain.partition(partition_reads_batches, num_batches=args.slices),
                "encrypted": enc.partition(partition_reads_batches, num_batches=args.slices),
            }
            for slices in cases.values():
                fexec.get_result(fexec.map(scan_slice, slices[:2]))  # start workers, open the keyring
            for _ in range(args.rounds):
                for name, slices in cases.items():
                    t0 = time.perf_counter()
                    results = fexec.get_result(fexec.map(scan_slice, slices))
                    times[name].append(time.perf_counter() - t0)
                    assert sum(r[0] for r in results) == reads, name
                    fetched[name] = sum(r[2] for r in results)
                    cpus[name].append(sum(r[3] for r in results))
        ratios = [e / p for e, p in zip(times["encrypted"], times["plain"], strict=True)]
        cpu_ratios = [e / p for e, p in zip(cpus["encrypted"], cpus["plain"], strict=True)]
        uncompressed = int(plain["uncompressed_size"])
        print(
            f"object: {size / MiB:.0f} MiB gzip, {uncompressed / MiB:.0f} MiB FASTQ, {reads:,} reads; "
            f"{args.slices} slices, {args.workers} workers, SeaweedFS on loopback, {args.rounds} rounds"
        )
        for name, ts in times.items():
            print(
                f"scan {name:9s}: median {statistics.median(ts):6.2f}s (min {min(ts):.2f}, max {max(ts):.2f}) "
                f"{uncompressed / statistics.median(ts) / MiB:6.0f} MiB/s  fetched/object {fetched[name] / size:.3f}  "
                f"worker CPU median {statistics.median(cpus[name]):.2f}s"
            )
        print(
            f"encrypted/plain wall time: median {statistics.median(ratios):.3f} "
            f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
        )
        print(
            f"encrypted/plain worker CPU: median {statistics.median(cpu_ratios):.3f} "
            f"(rounds: {', '.join(f'{r:.3f}' for r in cpu_ratios)})"
        )

        for chunk in (int(c) for c in args.chunk_sizes.split(",")):
            chunked = settings.replace(encryption=EncryptionSettings(keys=encryption.keys, chunk_size=chunk))
            curl = f"enc+s3://bench/chunk-{chunk}/reads.fastq.gz"
            with local.open("rb") as fh:
                storage.put(curl, fh, settings=chunked)
            for length in (4096, MiB):
                ms, amp = ranged_reads(curl, size, chunked, args.ranges, length)
                print(
                    f"chunk {chunk // 1024:5d} KiB, {length // 1024:5d} KiB random reads: {ms:6.2f} ms/read, "
                    f"fetched/asked {amp:6.2f}"
                )
        for length in (4096, MiB):
            ms, amp = ranged_reads(url, size, settings, args.ranges, length)
            print(
                f"plain           , {length // 1024:5d} KiB random reads: {ms:6.2f} ms/read, fetched/asked {amp:6.2f}"
            )


if __name__ == "__main__":
    main()
