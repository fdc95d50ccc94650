"""Ephemeral tiered store vs SeaweedFS: checkpoint-write stall, and same-node reads.

Part 1, AI-checkpoint-like writes: after each simulated training step (``--step-seconds``
of NumPy work) the "model" (one ``--size`` object) is written either straight to S3
(SeaweedFS, the baseline) or to the ephemeral store's Tier 0 with background
write-back to the same SeaweedFS (ours). The stall is the time the training loop is
blocked in the write. After the last step we wait until every checkpoint is in S3
and check sizes and sampled bytes there.

Part 2, reads of one ``--size`` object by a worker process on the same node: from
SeaweedFS, from Tier 0 over the node service's TCP connection (what another node
gets), from Tier 0 by file read (same node) and by memory map (zero-copy view).
Throughput, and CPU seconds per GiB counting the reader *and* the server process
(SeaweedFS or the node service). Part 3 compares the two same-node mechanisms
themselves: a POSIX shared-memory segment vs a memory-mapped tmpfs file.

    python bench/ephemeral_checkpoint.py            # 2 GB checkpoints, 3 runs
    python bench/ephemeral_checkpoint.py --quick    # 256 MB
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import statistics
import sys
import tempfile
import time
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings
from xtremehub.ephemeral import ServiceProcess, TierConfig, client_for
from xtremehub.ephemeral.client import EphemeralClient, reset_clients
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS

GiB = 1 << 30
BUCKET = "bench-eph"


def train(seconds: float) -> None:
    """Simulated training step: matrix products for about ``seconds``."""
    a = np.random.default_rng(0).random((512, 512))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = (a @ a) / 512.0


def checkpoint_run(size: int, steps: int, step_seconds: float, server: SeaweedFS, home: Path) -> dict[str, Any]:
    s3 = server.settings(timeout=600)
    settings = s3.replace(home=home)
    model = os.urandom(size)
    direct, ours = [], []
    for i in range(steps):  # baseline: the loop blocks until S3 has the checkpoint
        train(step_seconds)
        t = time.perf_counter()
        storage.put(f"s3://{BUCKET}/direct/step-{i}", model, settings=s3)
        direct.append(time.perf_counter() - t)
    # Tier 0 sized to hold the checkpoints of one run (as GEDS sizes its memory tier): a write never
    # waits for the upload of an earlier one, and older checkpoints leave memory once they are in S3.
    config = TierConfig(
        memory_limit=size * (steps + 1), persist_url=f"s3://{BUCKET}/eph/", write_back=True, admit_timeout=600
    )
    with ServiceProcess.start(config, settings, env=server.env()):
        client = client_for(settings)
        started = time.perf_counter()
        for i in range(steps):
            train(step_seconds)
            t = time.perf_counter()
            client.put("ckpt", f"step-{i}", model)
            ours.append(time.perf_counter() - t)
        loop_end = time.perf_counter()
        while client.stats()["objects_not_persisted"]:
            time.sleep(0.05)
        drained = time.perf_counter()
        stats = client.stats()
        reset_clients()
    for i in range(steps):  # the data is in S3 afterwards
        url = f"s3://{BUCKET}/eph/ckpt/step-{i}"
        assert storage.head(url, settings=s3).size == size, url
        for off in (0, size // 2, size - 4096):
            assert storage.get_range(url, off, off + 4096, settings=s3) == model[off : off + 4096], url
    return {
        "direct": statistics.median(direct),
        "ours": statistics.median(ours),
        "drain_after_loop": drained - loop_end,
        "loop_ours": loop_end - started,
        "uploaded": stats["uploaded_bytes"],
    }


def _read_in_worker(url: str, how: str, home: str, local: bool) -> tuple[float, float, str]:
    """Run in a worker process: read the whole object ``how``; wall seconds, CPU seconds, md5."""
    os.environ["XHUB_EPH_LOCAL"] = "1" if local else "0"
    reset_clients()
    settings = Settings(home=Path(home))
    wall, cpu = time.perf_counter(), time.process_time()
    if how == "view":
        data: Any = client_for(settings).view("read", url.rsplit("/", 1)[1])
    else:
        data = storage.get(url) if url.startswith("s3://") else storage.get(url, settings=settings)
    total = int(np.frombuffer(data, dtype=np.uint8)[: len(data) // 8 * 8].view(np.uint64).sum())  # use every byte
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    digest = hashlib.md5(data).hexdigest() if total >= 0 else ""  # verification, not timed
    out = (wall, cpu, digest)
    reset_clients()
    return out


def read_run(size: int, server: SeaweedFS, home: Path) -> dict[str, tuple[float, float]]:
    s3 = server.settings(timeout=600)
    settings = s3.replace(home=home)
    data = os.urandom(size)
    want = hashlib.md5(data).hexdigest()
    storage.put(f"s3://{BUCKET}/read/object", data, settings=s3)
    results: dict[str, tuple[float, float]] = {}
    with ServiceProcess.start(TierConfig(memory_limit=size * 2), settings, env=server.env()) as proc:
        client: EphemeralClient = client_for(settings)
        client.put("read", "object", data)
        del data
        servers = {"s3": psutil.Process(server.process.pid), "eph": psutil.Process(proc.process.pid)}
        cases = [
            ("SeaweedFS (S3 GET)", f"s3://{BUCKET}/read/object", "get", True, "s3"),
            ("Tier 0 over TCP", "xhub-eph://read/object", "get", False, "eph"),
            ("Tier 0 same node, file read", "xhub-eph://read/object", "get", True, "eph"),
            ("Tier 0 same node, mmap view", "xhub-eph://read/object", "view", True, "eph"),
        ]
        with FunctionExecutor("local", workers=1, settings=s3) as fexec:
            fexec.get_result(fexec.call_async(time.sleep, 0))  # the worker is up
            for name, url, how, local, srv in cases:
                fexec.get_result(fexec.call_async(_read_in_worker, (url, how, str(home), local)))  # warm-up
                before = _cpu_tree(servers[srv])
                wall, cpu, digest = fexec.get_result(fexec.call_async(_read_in_worker, (url, how, str(home), local)))
                server_cpu = _cpu_tree(servers[srv]) - before
                assert digest == want, name
                results[name] = (wall, cpu + server_cpu)
        reset_clients()
    return results


def _cpu_tree(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def shm_vs_mmap(size: int) -> dict[str, float]:
    """Seconds to copy ``size`` bytes out of a POSIX shared-memory segment vs a mapped tmpfs file."""
    data = os.urandom(size)
    seg = shared_memory.SharedMemory(create=True, size=size)
    path = Path("/dev/shm") / f"xhub-bench-{os.getpid()}"
    try:
        seg.buf[:size] = data
        path.write_bytes(data)
        out: dict[str, list[float]] = {"shared_memory": [], "mmap": [], "pread": []}
        for _ in range(3):
            other = shared_memory.SharedMemory(name=seg.name)
            t = time.perf_counter()
            copy = bytes(other.buf[:size])
            out["shared_memory"].append(time.perf_counter() - t)
            other.close()
            with open(path, "rb") as fh:
                t = time.perf_counter()
                m = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
                copy = bytes(memoryview(m))
                out["mmap"].append(time.perf_counter() - t)
                m.close()
                t = time.perf_counter()
                copy = os.pread(fh.fileno(), size, 0)
                out["pread"].append(time.perf_counter() - t)
            assert copy == data
        return {k: statistics.median(v) for k, v in out.items()}
    finally:
        seg.close()
        seg.unlink()
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MB objects instead of 2 GB")
    parser.add_argument("--size", type=int, help="object size in bytes (overrides --quick)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per run")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="simulated training time per step")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    size = args.size or (256 * 10**6 if args.quick else 2 * 10**9)
    print(f"object {size / 1e6:,.0f} MB, {args.steps} steps of {args.step_seconds:g} s, {args.runs} runs", flush=True)
    ckpt: list[dict[str, Any]] = []
    reads: list[dict[str, tuple[float, float]]] = []
    shm: list[dict[str, float]] = []
    with SeaweedFS.start() as server:
        S3Store(BUCKET, server.settings().s3).create_bucket()
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="xhub-bench-eph-") as home:
                ckpt.append(checkpoint_run(size, args.steps, args.step_seconds, server, Path(home)))
                reads.append(read_run(size, server, Path(home)))
            shm.append(shm_vs_mmap(min(size, 512 * 10**6)))
            c = ckpt[-1]
            print(
                f"run {run + 1}: stall direct {c['direct']:.2f} s, ours {c['ours']:.2f} s "
                f"(1/{c['direct'] / c['ours']:.1f}); drained {c['drain_after_loop']:.2f} s after the loop",
                flush=True,
            )

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"

    print("\n| checkpoint write | stall per step, s (median [min-max] of run medians) |\n|---|---:|")
    print(f"| straight to SeaweedFS | {med([c['direct'] for c in ckpt])} |")
    print(f"| ephemeral Tier 0 + write-back | {med([c['ours'] for c in ckpt])} |")
    ratios = [c["direct"] / c["ours"] for c in ckpt]
    drain = med([c["drain_after_loop"] for c in ckpt])
    print(f"\nstall ratio direct/ours: {med(ratios)} (target >= 5); write-back drained {drain} s after the last step")
    print("every checkpoint verified in S3 afterwards (size and sampled bytes)")
    print("\n| read of one object by a same-node worker | GB/s | CPU s per GiB (reader + server) |\n|---|---:|---:|")
    for name in reads[0]:
        gbps = [size / r[name][0] / 1e9 for r in reads]
        cpu = [r[name][1] / (size / GiB) for r in reads]
        print(f"| {name} | {med(gbps)} | {med(cpu)} |")
    print("\n| same-node mechanism (copy out all bytes) | GB/s |\n|---|---:|")
    n = min(size, 512 * 10**6)
    for name in shm[0]:
        print(f"| {name} | {med([n / s[name] / 1e9 for s in shm])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
