"""SeaweedFS's CPU per GiB served for ranged GETs, one server per set of ``weed server`` flags.

What a co-located SeaweedFS costs to serve the FASTQ.gz scan's access pattern (issue 18 target 3:
--slices ranged GETs that cover the object, --concurrency at a time), and whether a deployment
setting cuts it. Every flag set gets its own server, all running at once, the same object
uploaded to each; then --rounds rounds, each reading the object once from every server in turn
(the order reversed every other round), so each round compares neighbours in time (the
machine's speed drifts by 30 % between minutes). Per flag set: the server's CPU seconds per GiB
served (psutil, the ``weed`` process), the median of the per-round ratios to the first flag
set, the bytes the server read and wrote (``/proc/<pid>/io``: disk and sockets) per byte
served, and the object's chunks.

``--floor`` adds the kernel's copy costs on this machine (this process, CPU s per GiB):
``pread`` from the page cache and loopback TCP send + receive, what the server's two copies of
each byte (volume server -> S3 gateway -> client) cost at least. ``--pprof DIR`` saves a CPU
profile of each server (``weed server -debug``) taken while it serves --pprof-seconds of GETs;
read it with ``go tool pprof -top <weed binary> DIR/<tag>.pprof``.

Run:  .venv/bin/python bench/seaweed_serving.py [--rounds 9] [--floor] [--quick] ['tag=flags' ...]
      (default flag sets: base, -filer.maxMB=1, -filer.maxMB=2, -volume.hasSlowRead=false;
      the object is bench/fastq_gzip.py's FASTQ.gz, generated if missing; --quick: 128 MiB)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from xtremehub import storage
from xtremehub.demo.sample_data import write_fastq_gz
from xtremehub.storage import Store, open_store
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS, free_port

DEFAULT_SETS = [
    "base=",
    "chunks1MiB=-filer.maxMB=1",
    "chunks2MiB=-filer.maxMB=2",
    "noSlowRead=-volume.hasSlowRead=false",
]
KEY = "reads.fastq.gz"


@dataclass
class Served:
    """One flag set's server, its object and what each round measured."""

    tag: str
    flags: list[str]
    server: SeaweedFS
    store: Store
    key: str
    debug_port: int | None = None
    cpu_per_gib: list[float] = field(default_factory=list)
    read_per_byte: list[float] = field(default_factory=list)
    write_per_byte: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


def usage(pid: int) -> tuple[float, int, int]:
    """CPU seconds, bytes read and bytes written (files and sockets) of ``pid`` and its children."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    counters = [p.io_counters() for p in procs]
    cpu = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    return cpu, sum(c.read_chars for c in counters), sum(c.write_chars for c in counters)


def read_all(served: Served, ranges: list[tuple[int, int]], concurrency: int) -> int:
    """Read every range once, ``concurrency`` at a time; the bytes read."""

    def get(span: tuple[int, int]) -> int:
        return sum(len(chunk) for chunk in served.store.iter_range(served.key, span[0], span[1]))

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(get, ranges))


def chunks(served: Served, bucket: str) -> str:
    """The object's chunk count and sizes, from the filer's metadata."""
    url = f"http://127.0.0.1:{served.server.filer_port}/buckets/{bucket}/{served.key}?metadata=true"
    with urllib.request.urlopen(url, timeout=10) as answer:
        listed = json.load(answer).get("chunks") or []
    sizes = sorted(int(c.get("size", 0)) for c in listed)
    return (
        f"{len(listed)} chunks of {sizes[-1] / 2**20:.1f} MiB (smallest {sizes[0] / 2**20:.1f})" if sizes else "inline"
    )


def profile(served: Served, ranges: list[tuple[int, int]], concurrency: int, seconds: int, out: Path) -> None:
    """Save a CPU profile of the server taken while it serves GETs for ``seconds``."""
    url = f"http://127.0.0.1:{served.debug_port}/debug/pprof/profile?seconds={seconds}"
    grabbed: list[bytes] = []
    grab = threading.Thread(target=lambda: grabbed.append(urllib.request.urlopen(url, timeout=seconds + 30).read()))
    grab.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        read_all(served, ranges, concurrency)
    grab.join()
    out.write_bytes(grabbed[0])


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def floor(local: Path) -> dict[str, float]:
    """This process's CPU s per GiB to ``pread`` ``local`` from the page cache (1 MiB pieces, best
    of 3) and to send + receive bytes over loopback TCP (1 MiB sends, 256 KiB receives)."""
    size = local.stat().st_size
    buffer = bytearray(1 << 20)
    best = float("inf")
    fd = os.open(local, os.O_RDONLY)
    try:
        for _ in range(3):
            cpu, offset = _cpu(), 0
            while offset < size:
                offset += os.preadv(fd, [buffer], offset)
            best = min(best, _cpu() - cpu)
    finally:
        os.close(fd)
    total = 4 * size
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
        with client, peer:

            def send() -> None:
                piece, left = memoryview(bytes(1 << 20)), total
                while left > 0:
                    left -= peer.send(piece[: min(len(piece), left)])

            sender = threading.Thread(target=send)
            cpu, got, into = _cpu(), 0, bytearray(1 << 18)
            sender.start()
            while got < total:
                got += client.recv_into(into)
            sender.join()
            tcp = _cpu() - cpu
    return {"pread": best / (size / 2**30), "loopback TCP send + receive": tcp / (total / 2**30)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "sets", nargs="*", help="'tag=flags' (space-separated weed server flags); the first is the base"
    )
    parser.add_argument("--mb", type=int, default=1024, help="uncompressed MiB of bench/fastq_gzip.py's FASTQ.gz")
    parser.add_argument("--slices", type=int, default=64, help="ranged GETs per read of the object")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--floor", action="store_true", help="also the kernel's copy costs on this machine")
    parser.add_argument("--pprof", type=Path, help="save a CPU profile of each server in this directory")
    parser.add_argument("--pprof-seconds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="128 MiB, 16 slices, 3 rounds")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xhub-bench")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.slices, args.rounds = 128, 16, 3
    args.workdir.mkdir(parents=True, exist_ok=True)
    local = args.workdir / f"reads-{args.mb}MiB.fastq.gz"
    if not local.exists():
        write_fastq_gz(local, args.mb)
    size = local.stat().st_size
    step = size // args.slices
    ranges = [(i * step, size if i == args.slices - 1 else (i + 1) * step) for i in range(args.slices)]
    print(
        f"object {size / 2**20:.0f} MiB, {args.slices} ranged GETs of {step / 2**20:.1f} MiB, {args.concurrency} at a"
        f" time; {args.rounds} rounds; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    served: list[Served] = []
    try:
        for spec in args.sets or DEFAULT_SETS:
            tag, _, text = spec.partition("=")
            flags = text.split()
            debug_port = free_port() if args.pprof else None
            debug = ["-debug", f"-debug.port={debug_port}"] if debug_port else []
            server = SeaweedFS.start(extra_args=[*flags, *debug])
            served.append(Served(tag, flags, server, *_upload(server, local), debug_port=debug_port))
        for one in served:
            read_all(one, ranges[:1], 1)  # a first GET: connections and lookups warm
        for number in range(args.rounds):
            for one in served if number % 2 == 0 else served[::-1]:
                cpu0, read0, write0 = usage(one.server.process.pid)
                t0 = time.perf_counter()
                got = read_all(one, ranges, args.concurrency)
                one.wall.append(time.perf_counter() - t0)
                cpu1, read1, write1 = usage(one.server.process.pid)
                assert got == size, (got, size)
                one.cpu_per_gib.append((cpu1 - cpu0) / (size / 2**30))
                one.read_per_byte.append((read1 - read0) / size)
                one.write_per_byte.append((write1 - write0) / size)
        base = served[0]
        for one in served:
            ratios = [mine / theirs for mine, theirs in zip(one.cpu_per_gib, base.cpu_per_gib, strict=True)]
            print(
                f"{one.tag:>12} [{' '.join(one.flags)}]: {statistics.median(one.cpu_per_gib):.2f} CPU s/GiB"
                f" ({min(one.cpu_per_gib):.2f}-{max(one.cpu_per_gib):.2f}), {statistics.median(ratios):.2f}x {base.tag}"
                f" ({min(ratios):.2f}-{max(ratios):.2f}); server read {statistics.median(one.read_per_byte):.2f}x,"
                f" wrote {statistics.median(one.write_per_byte):.2f}x the bytes served; wall"
                f" {statistics.median(one.wall):.2f} s; {chunks(one, 'bench')}",
                flush=True,
            )
        if args.pprof:
            args.pprof.mkdir(parents=True, exist_ok=True)
            for one in served:
                profile(one, ranges, args.concurrency, args.pprof_seconds, args.pprof / f"{one.tag}.pprof")
            print(f"profiles in {args.pprof}: go tool pprof -top $(which weed) {args.pprof}/<tag>.pprof")
    finally:
        for one in served:
            one.server.stop()
    if args.floor:
        for name, cost in floor(local).items():
            print(f"floor: {name} {cost:.2f} CPU s/GiB")
    print(f"load {os.getloadavg()[0]:.2f}")


def _upload(server: SeaweedFS, local: Path) -> tuple[Store, str]:
    settings = server.settings(timeout=120)
    S3Store("bench", settings.s3).create_bucket()
    url = f"s3://bench/{KEY}"
    with local.open("rb") as fh:
        storage.put(url, fh, settings=settings)
    return open_store(url, settings=settings)


if __name__ == "__main__":
    main()
