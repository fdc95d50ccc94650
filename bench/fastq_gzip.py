"""FASTQ.gz connector: scan throughput, preprocessing against Dataplug, per-slice time breakdown. One run.

1. Generates (once, cached in --workdir) a single-member FASTQ.gz of --mb MiB
   uncompressed: 150 bp reads, realistic quality alphabet, Python gzip level 6.
2. Scan baselines on local disk: ``gzip -dc file | wc -l`` and one process of ISA-L
   (``isal.igzip``, read 4 MiB at a time, count newlines).
3. Starts a real SeaweedFS on loopback and uploads the file.
4. Preprocessing: ``CloudObject.preprocess(executor)`` on a fresh local executor with
   --workers workers (its start-up included) against Dataplug (``cloud-dataplug``
   1.0.2 with Debian's ``gztool``; skipped, saying so, where ``gztool`` is missing) on
   the same object; with --static-baseline also the static partitioning users do by hand
   (decompress, split into --slices plain files, upload).
5. Scan: all --slices slices read on the local executor (--workers) from S3;
   aggregate decompressed throughput = uncompressed bytes / wall time.
6. Per-slice breakdown (median of --breakdown slices, in this process): fetch (the
   slice's compressed range from S3), inflate (from memory) and record validation
   (the slice's records from memory, minus inflate), and inflate with each installed
   inflater (ISA-L, zlib-ng, zlib; ``XHUB_INFLATER``).
7. Bytes fetched by all slices / object size, and index size / object size.

Run:  .venv/bin/python bench/fastq_gzip.py [--mb 1024] [--slices 64] [--workers 2] [--quick]
      (or ``make bench-fastq``; --quick: 128 MiB, 16 slices)
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seaweed_object import object_on_seaweedfs
from xtremehub import FunctionExecutor, storage
from xtremehub.connectors import CloudObject
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.connectors.codecs.spans import decoded
from xtremehub.connectors.genomics import FASTQGZip, FASTQGZipSlice, partition_reads_batches
from xtremehub.demo.sample_data import write_fastq_gz

MiB = 1024 * 1024

ISAL_COUNT = """
import sys
from isal import igzip
n = 0
with igzip.open(sys.argv[1], "rb") as fh:
    while block := fh.read(4 << 20):
        n += block.count(b"\\n")
print(n)
"""


def scan_slice(data_slice: FASTQGZipSlice) -> tuple[int, int, int]:
    """Map function: read every record of one slice; (reads, decompressed bytes, compressed bytes fetched)."""
    src = RangeSource(data_slice.url, data_slice.object_size, data_slice.checkpoint.byte_offset, data_slice.planned_end)
    nbytes = reads = 0
    for chunk in data_slice._blocks(src):
        nbytes += len(chunk)
        reads += chunk.count(b"\n") // 4
    return reads, nbytes, src.fetched


def static_partition_baseline(local: Path, slices: int, reads: int, bucket_url: str, settings: Any) -> float:
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


def dataplug_preprocess(url: str, settings: Any) -> tuple[float, int] | str:
    """Dataplug's preprocessing of the same object: (seconds, lines it counted), or why it was skipped."""
    if shutil.which("gztool") is None:
        return "skipped: Debian's gztool is not installed (apt-get install gztool)"
    try:
        from dataplug import CloudObject as DataplugObject
        from dataplug.formats.genomics.fastq import FASTQGZip as DataplugFASTQGZip
    except ImportError:
        return "skipped: cloud-dataplug is not installed (the bench extra)"
    s3 = settings.s3
    config = {
        "endpoint_url": s3.endpoint_url,
        "region_name": s3.region or "us-east-1",
        "credentials": {"AccessKeyId": s3.access_key_id or "any", "SecretAccessKey": s3.secret_access_key or "any"},
    }
    t0 = time.perf_counter()
    co = DataplugObject.from_s3(DataplugFASTQGZip, url, s3_config=config)
    co.preprocess(force=True)
    return time.perf_counter() - t0, int(co.get_attribute("total_lines"))


def breakdown(slices: list[FASTQGZipSlice], local: Path, settings: Any, sample: int) -> dict[str, float]:
    """Median seconds per slice: fetch from S3, inflate, record validation (see the module docstring)."""
    mem_url = "mem://bench/reads.fastq.gz"
    storage.put(mem_url, local.read_bytes())
    picked = slices[:: max(1, len(slices) // sample)][:sample]
    times: dict[str, list[float]] = {"fetch": [], "inflate": [], "validate": [], "MiB": []}
    inflaters = [n for n, mod in (("isal", "isal"), ("zlib-ng", "zlib_ng"), ("zlib", "zlib")) if _importable(mod)]
    for name in inflaters:
        times[f"inflate {name}"] = []
    for s in picked:
        src = RangeSource(s.url, s.object_size, s.checkpoint.byte_offset, s.planned_end, settings=settings)
        t0 = time.perf_counter()
        while src.pos < s.planned_end and src.read():
            pass
        times["fetch"].append(time.perf_counter() - t0)
        if hasattr(src, "close"):
            src.close()
        mem = dataclasses.replace(s, url=mem_url)
        t0 = time.perf_counter()
        text = sum(len(c) for c in mem._blocks(_mem_source(mem)))
        whole = time.perf_counter() - t0
        need = text + (s.record_start - s.checkpoint.uncompressed) + 1
        infl = _inflate(mem, need)
        times["inflate"].append(infl)
        times["validate"].append(max(0.0, whole - infl))
        times["MiB"].append(text / MiB)
        for name in inflaters:
            os.environ["XHUB_INFLATER"] = name
            times[f"inflate {name}"].append(_inflate(mem, need))
        os.environ.pop("XHUB_INFLATER", None)
    storage.delete(mem_url)
    return {k: statistics.median(v) for k, v in times.items()}


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _mem_source(s: FASTQGZipSlice) -> RangeSource:
    return RangeSource(s.url, s.object_size, s.checkpoint.byte_offset, s.planned_end)


def _inflate(s: FASTQGZipSlice, need: int) -> float:
    """Seconds to inflate ``need`` bytes from the slice's checkpoint (no record work)."""
    t0 = time.perf_counter()
    got = 0
    with decoded(s.url, s.object_size, s.checkpoint, s.planned_end, gz=True, source=_mem_source(s)) as chunks:
        for chunk in chunks:
            got += len(chunk)
            if got >= need:
                break
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024, help="uncompressed size to generate")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--breakdown", type=int, default=8, help="slices timed phase by phase (0: none)")
    parser.add_argument("--static-baseline", action="store_true", help="also time the split+upload baseline")
    parser.add_argument("--quick", action="store_true", help="128 MiB and 16 slices")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xhub-bench")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.slices = 128, 16

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
    t0 = time.perf_counter()
    isal_lines = subprocess.run([sys.executable, "-c", ISAL_COUNT, str(local)], check=True, capture_output=True)
    isal_scan = time.perf_counter() - t0
    assert int(isal_lines.stdout) == int(lines.stdout), (isal_lines.stdout, lines.stdout)

    with object_on_seaweedfs(local, "reads.fastq.gz") as (url, settings):
        dataplug = dataplug_preprocess(url, settings)
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
        parts = breakdown(slices, local, settings, args.breakdown) if args.breakdown else {}
        base_pre = 0.0
        if args.static_baseline:
            base_pre = static_partition_baseline(local, args.slices, reads, "s3://bench/", settings)

    base_tp = uncompressed / base_scan / MiB
    isal_tp = uncompressed / isal_scan / MiB
    ours_tp = uncompressed / ours_scan / MiB
    print(
        f"object: {size / MiB:.0f} MiB gzip, {uncompressed / MiB:.0f} MiB FASTQ, {reads:,} reads; "
        f"{args.slices} slices, {args.workers} workers, SeaweedFS on loopback; load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"scan      gzip -dc | wc -l: {base_scan:6.2f}s {base_tp:5.0f} MiB/s | ISA-L 1 process: {isal_scan:6.2f}s "
        f"{isal_tp:5.0f} MiB/s | ours from S3: {ours_scan:6.2f}s {ours_tp:5.0f} MiB/s | "
        f"ratio {ours_tp / base_tp:.2f}x gzip, {ours_tp / isal_tp:.2f}x ISA-L"
    )
    if isinstance(dataplug, str):
        print(f"preprocess ours: {ours_pre:6.2f}s | Dataplug {dataplug}")
    else:
        dp_time, dp_lines = dataplug
        exact = "" if dp_lines == 4 * reads else f" (Dataplug counted {dp_lines:,} lines, not {4 * reads:,})"
        ratio = ours_pre / dp_time
        print(f"preprocess ours: {ours_pre:6.2f}s | Dataplug: {dp_time:6.2f}s | ours/Dataplug {ratio:.2f}x{exact}")
    if args.static_baseline:
        print(f"preprocess static split+upload: {base_pre:6.2f}s | ours/static {ours_pre / base_pre:.0%}")
    if parts:
        print(
            f"per slice (median of {args.breakdown}, {parts['MiB']:.1f} MiB of text): "
            f"fetch {parts['fetch'] * 1e3:.0f} ms, "
            f"inflate {parts['inflate'] * 1e3:.0f} ms, validate {parts['validate'] * 1e3:.0f} ms | inflate with "
            + ", ".join(f"{k[8:]} {v * 1e3:.0f} ms" for k, v in parts.items() if k.startswith("inflate "))
        )
    print(f"bytes fetched / object size: {fetched / size:.3f}   index size / object size: {index_size / size:.3%}")


if __name__ == "__main__":
    main()
