"""FASTQ.gz connector: scan throughput, preprocessing against Dataplug, per-slice time breakdown. One run.

1. Generates (once, cached in --workdir) a single-member FASTQ.gz of --mb MiB
   uncompressed: 150 bp reads, realistic quality alphabet, Python gzip level 6.
2. Scan baselines on local disk: ``gzip -dc file | wc -l`` and one process of ISA-L
   (``isal.igzip``, read 4 MiB at a time, count newlines with NumPy's
   ``count_nonzero``, ~1.4 ms per 16 MiB; the scan counts reads from its record blocks,
   or with ``--count newlines`` counts the newlines again).
3. Starts a real SeaweedFS on loopback and uploads the file.
4. Preprocessing: ``CloudObject.preprocess(executor)`` on a fresh local executor with
   --workers workers (its start-up included) against Dataplug (``cloud-dataplug``
   1.0.2 with Debian's ``gztool``; skipped, saying so, where ``gztool`` is missing) on
   the same object; with --static-baseline also the static partitioning users do by hand
   (decompress, split into --slices plain files, upload).
5. Scan: all --slices slices read on the local executor (--workers) from S3;
   aggregate decompressed throughput = uncompressed bytes / wall time; how the slices
   spread over the workers (start lag, gaps between tasks, tail, busy share) and the CPU
   seconds of the workers, of SeaweedFS and of this process during the scan.
   Ceilings without S3 (``--no-ceiling`` skips them): --workers processes inflating
   --workers parts of the local file with ISA-L and counting newlines (no records), our
   slice reader on the same slices from the local file, and rapidgzip alone (one thread,
   local file, no record scan), the floor of the one-pass preprocessing.
6. Per-slice breakdown (median of --breakdown slices, in this process): fetch (the
   slice's compressed range from S3), inflate (from memory) and record validation
   (the slice's records from memory, minus inflate), and inflate with each installed
   inflater (ISA-L, zlib-ng, zlib; ``XHUB_INFLATER``).
7. Bytes fetched by all slices / object size, and index size / object size.

``--weed-flags="..."`` adds flags to ``weed server``'s (deployment settings, e.g. ``-filer.maxMB=1``;
``bench/seaweed_serving.py`` compares them on the server's CPU alone).

With ``--rounds R`` steps 2, 4 and 5 run R times in turn (gzip, ISA-L, Dataplug, ours, scan; the
machine's speed drifts between minutes) and each ratio is reported per round and as the median.

Run:  .venv/bin/python bench/fastq_gzip.py [--mb 1024] [--slices 64] [--workers 2] [--rounds 3] [--quick]
      (or ``make bench-fastq``; --quick: 128 MiB, 16 slices)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import io
import itertools
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil

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
import numpy as np
from isal import igzip
n = 0
with igzip.open(sys.argv[1], "rb") as fh:
    while block := fh.read(4 << 20):
        n += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))
print(n)
"""


def newlines(chunk: bytes | memoryview) -> int:
    """Newlines in ``chunk``, counted as the ISA-L baseline counts them (NumPy: about 4x
    faster than ``bytes.count``, which scans byte by byte)."""
    return int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == 10))


@dataclasses.dataclass(frozen=True)
class Scanned:
    """What one slice's map call reports: counts, and when and where it ran."""

    reads: int
    nbytes: int  # decompressed bytes of its records
    fetched: int  # compressed bytes fetched
    pid: int
    start: float  # time.monotonic() (one clock for all processes on Linux)
    end: float
    cpu: float  # CPU seconds of the worker process during the call (its fetch threads too)


def scan_slice(data_slice: FASTQGZipSlice, recount: bool = False) -> Scanned:
    """Map function: read every record of one slice and count its reads.

    The reads are counted from the record blocks (``len(block)``, as a user of
    ``iter_blocks()`` would), or with ``recount`` by counting the text's newlines again
    (the map function of the runs before 2026-12-07 evening).
    """
    t0, c0 = time.monotonic(), time.process_time()
    src = RangeSource(data_slice.url, data_slice.object_size, data_slice.checkpoint.byte_offset, data_slice.planned_end)
    nbytes = reads = 0
    for block in data_slice._blocks(src):
        nbytes += len(block.data)
        reads += newlines(block.data) // 4 if recount else len(block)
    return Scanned(reads, nbytes, src.fetched, os.getpid(), t0, time.monotonic(), time.process_time() - c0)


def inflate_count(part: tuple[FASTQGZipSlice, int | None]) -> int:
    """Ceiling map function: inflate from a slice's checkpoint up to uncompressed offset ``stop``
    (``None``: the end) and count the newlines; no record work."""
    s, stop = part
    todo = None if stop is None else stop - s.checkpoint.uncompressed
    n = 0
    with decoded(s.url, s.object_size, s.checkpoint, s.planned_end, gz=True) as text:
        for chunk in text:
            if todo is not None and len(chunk) >= todo:
                return n + newlines(memoryview(chunk)[:todo])
            n += newlines(chunk)
            todo = None if todo is None else todo - len(chunk)
    return n


def timeline(results: list[Scanned], t0: float, t1: float) -> dict[str, float]:
    """How the slices spread over the workers: start lag, per-task gaps, tail, busy share, CPU."""
    by_pid: dict[int, list[Scanned]] = {}
    for r in results:
        by_pid.setdefault(r.pid, []).append(r)
    gaps = [b.start - a.end for rs in by_pid.values() for a, b in itertools.pairwise(sorted(rs, key=lambda r: r.start))]
    busy = sum(r.end - r.start for r in results)
    return {
        "workers": len(by_pid),
        "tasks per worker": max(len(rs) for rs in by_pid.values()),
        "start lag": min(r.start for r in results) - t0,
        "gap median": statistics.median(gaps) if gaps else 0.0,
        "gaps total": sum(gaps),
        "tail": t1 - max(r.end for r in results),
        "busy share": busy / (len(by_pid) * (t1 - t0)),
        "task median": statistics.median(r.end - r.start for r in results),
        "worker cpu": sum(r.cpu for r in results),
    }


def local_ceiling(slices: list[FASTQGZipSlice], local: Path, workers: int) -> dict[str, float]:
    """No S3: ``workers`` processes on the local file, (a) ISA-L inflate + newline count of
    ``workers`` equal parts cut at checkpoints (the ceiling of the cores), (b) our slice reader
    on the same slices as the scan. Returns seconds and the lines (a) counted."""
    ctx = multiprocessing.get_context("spawn")
    here = [dataclasses.replace(s, url=str(local)) for s in slices]
    firsts = here[:: -(-len(here) // workers)]
    parts = [(s, nxt.checkpoint.uncompressed) for s, nxt in itertools.pairwise(firsts)] + [(firsts[-1], None)]
    out: dict[str, float] = {}
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(inflate_count, [(s, s.checkpoint.uncompressed + 1) for s in here[:workers]]))  # start, import
        t0 = time.perf_counter()
        out["lines"] = sum(pool.map(inflate_count, parts))
        out["isal halves"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(scan_slice, here))
        out["ours local"] = time.perf_counter() - t0
    return out


def rapidgzip_local(local: Path) -> float | str:
    """Seconds for rapidgzip (one thread, 4 MiB pieces read into one reused buffer, as ``preprocess()``
    runs it for FASTQ.gz) to inflate the local file and export its index: the floor of the one-pass
    preprocessing without S3 and record scan."""
    try:
        import rapidgzip
    except ImportError:
        return "skipped: rapidgzip is not installed"
    t0 = time.perf_counter()
    buffer = memoryview(bytearray(4 << 20))
    with rapidgzip.RapidgzipFile(str(local), parallelization=1, chunk_size=4 << 20) as gz:
        while gz.readinto(buffer):
            pass
        gz.export_index(io.BytesIO())
    return time.perf_counter() - t0


def weed_cpu() -> float:
    """CPU seconds used so far by the SeaweedFS server this process started."""
    return sum(sum(p.cpu_times()[:2]) for p in psutil.Process().children(recursive=True) if p.name().startswith("weed"))


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
        text = sum(len(b.data) for b in mem._blocks(_mem_source(mem)))
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
    parser.add_argument(
        "--no-ceiling", dest="ceiling", action="store_false", help="skip the local-file runs without S3 (the ceiling)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="baselines, preprocess and scan this many times, interleaved (medians)"
    )
    parser.add_argument(
        "--count",
        choices=("blocks", "newlines"),
        default="blocks",
        help="how the scan's map function counts reads: len() of the record blocks, or the text's newlines again",
    )
    parser.add_argument("--quick", action="store_true", help="128 MiB and 16 slices")
    parser.add_argument("--weed-flags", default="", help="extra 'weed server' flags, space-separated")
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

    rounds: list[dict[str, float]] = []
    with object_on_seaweedfs(local, "reads.fastq.gz", weed_flags=args.weed_flags.split()) as (url, settings):
        for number in range(1, args.rounds + 1):
            # baselines and ours one after the other in every round: the machine's speed drifts
            # by up to 30 % between runs, so each round's ratios compare neighbours
            t0 = time.perf_counter()
            lines = subprocess.run(f"gzip -dc {local} | wc -l", shell=True, check=True, capture_output=True, text=True)
            base_scan = time.perf_counter() - t0
            t0 = time.perf_counter()
            isal_lines = subprocess.run([sys.executable, "-c", ISAL_COUNT, str(local)], check=True, capture_output=True)
            isal_scan = time.perf_counter() - t0
            assert int(isal_lines.stdout) == int(lines.stdout), (isal_lines.stdout, lines.stdout)

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
                scan = functools.partial(scan_slice, recount=args.count == "newlines")
                fexec.get_result(fexec.map(scan, slices[:2]))  # start workers, warm the page cache
                weed0, driver0 = weed_cpu(), time.process_time()
                t0 = time.monotonic()
                results: list[Scanned] = fexec.get_result(fexec.map(scan, slices))
                t1 = time.monotonic()
                ours_scan = t1 - t0
                weed, driver = weed_cpu() - weed0, time.process_time() - driver0
            assert sum(r.reads for r in results) == reads
            assert sum(r.nbytes for r in results) == uncompressed
            spread = timeline(results, t0, t1)
            measured = {
                "gzip": base_scan / ours_scan,
                "isal": isal_scan / ours_scan,
                "cpu": spread["worker cpu"],
                "weed": weed,
            }
            if not isinstance(dataplug, str):
                measured["dataplug"] = ours_pre / dataplug[0]
            rounds.append(measured)
            if args.rounds > 1:
                vs_dataplug = "" if isinstance(dataplug, str) else f" / Dataplug {dataplug[0]:.2f}s"
                print(
                    f"round {number}: scan {ours_scan:.2f}s, gzip -dc | wc -l {base_scan:.2f}s, ISA-L {isal_scan:.2f}s"
                    f" -> {measured['gzip']:.2f}x gzip, {measured['isal']:.2f}x ISA-L | preprocess {ours_pre:.2f}s"
                    f"{vs_dataplug} | CPU s workers {spread['worker cpu']:.2f}, SeaweedFS {weed:.2f}; "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        fetched = sum(r.fetched for r in results)
        ceiling = local_ceiling(slices, local, args.workers) if args.ceiling else {}
        floor = rapidgzip_local(local) if args.ceiling else "skipped"
        assert ceiling.get("lines", 4 * reads) == 4 * reads, (ceiling, reads)
        parts = breakdown(slices, local, settings, args.breakdown) if args.breakdown else {}
        base_pre = 0.0
        if args.static_baseline:
            base_pre = static_partition_baseline(local, args.slices, reads, "s3://bench/", settings)

    if args.rounds > 1:

        def summary(key: str) -> str:
            values = [r[key] for r in rounds]
            return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"

        print(
            f"median of {args.rounds} rounds (min-max): scan/gzip {summary('gzip')}, scan/ISA-L {summary('isal')}"
            + (f", preprocess/Dataplug {summary('dataplug')}" if all("dataplug" in r for r in rounds) else "")
            + "; the lines below are the last round's"
        )
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
    print(
        f"scan spread: {spread['workers']:.0f} workers x {spread['tasks per worker']:.0f} tasks of "
        f"{spread['task median'] * 1e3:.0f} ms (median); start lag {spread['start lag'] * 1e3:.0f} ms, "
        f"gaps between tasks {spread['gap median'] * 1e3:.1f} ms median ({spread['gaps total'] * 1e3:.0f} ms in all), "
        f"tail {spread['tail'] * 1e3:.0f} ms, workers busy {spread['busy share']:.0%} | CPU s: workers "
        f"{spread['worker cpu']:.2f}, SeaweedFS {weed:.2f}, driver {driver:.2f}"
    )
    if ceiling:
        halves, local_scan = (uncompressed / ceiling[k] / MiB for k in ("isal halves", "ours local"))
        print(
            f"no S3, {args.workers} processes on the local file: ISA-L inflate + count of {args.workers} equal parts "
            f"{halves:5.0f} MiB/s ({halves / isal_tp:.2f}x one ISA-L process) | ours, same {args.slices} slices "
            f"{local_scan:5.0f} MiB/s ({local_scan / isal_tp:.2f}x)"
        )
    if isinstance(dataplug, str):
        print(f"preprocess ours: {ours_pre:6.2f}s | Dataplug {dataplug}")
    else:
        dp_time, dp_lines = dataplug
        exact = "" if dp_lines == 4 * reads else f" (Dataplug counted {dp_lines:,} lines, not {4 * reads:,})"
        ratio = ours_pre / dp_time
        print(f"preprocess ours: {ours_pre:6.2f}s | Dataplug: {dp_time:6.2f}s | ours/Dataplug {ratio:.2f}x{exact}")
    if not isinstance(floor, str):
        print(
            f"preprocess floor without S3 and record scan: rapidgzip one thread on the local file {floor:6.2f}s"
            + ("" if isinstance(dataplug, str) else f" ({floor / dataplug[0]:.2f}x Dataplug)")
        )
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
