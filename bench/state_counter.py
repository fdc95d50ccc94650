"""Shared counter: atomic increments per second from 2 worker processes, ours vs Redis ``INCR``.

Same run, same machine, both servers separate processes on 127.0.0.1:
  * ours: ``xtremehub.state.Counter.add()`` on the node service (``xhub eph serve``), one
    round trip per increment; pipelined: ``Counter.add_each([1] * 100)`` (100 requests sent back
    to back on one connection, then the 100 answers read; each increment atomic on its own);
  * Redis (Debian's ``redis-server``, no persistence: ``--save "" --appendonly no``): ``INCR``,
    one round trip each; pipelined: a non-transactional pipeline of 100 ``INCR``.

Each cell: 2 processes increment for SECONDS, the total is checked against the counter, and the
rate is increments per second of wall time. 3 runs; median and spread (min..max) printed, with
the ratio ours/Redis of the medians and the load average.
Usage:
    .venv/bin/python bench/state_counter.py            # 3 s per cell
    .venv/bin/python bench/state_counter.py --quick    # 1 s per cell
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from streams_server import ensure_binary, free_port, wait_port
from xtremehub import state
from xtremehub.config import Settings
from xtremehub.ephemeral import TierConfig
from xtremehub.ephemeral.service import ServiceProcess

WORKERS = 2
BATCH = 100


def _ours(address: str, name: str, batch: int, ready: Any, seconds: float, out: Any) -> None:
    counter = state.Counter(name, address=address)
    ready.wait()  # every process connected: the clocks start together
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        if batch == 1:
            counter.add()
        else:
            counter.add_each([1] * batch)
        count += batch
    out.put(count)


def _redis(port: int, key: str, batch: int, ready: Any, seconds: float, out: Any) -> None:
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    r.ping()
    ready.wait()
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        if batch == 1:
            r.incr(key)
        else:
            pipe = r.pipeline(transaction=False)
            for _ in range(batch):
                pipe.incr(key)
            pipe.execute()
        count += batch
    r.close()
    out.put(count)


def cell(target: Any, args: tuple[Any, ...], seconds: float) -> tuple[float, int]:
    """Increments per second from WORKERS processes started together; and their total."""
    ctx = mp.get_context("spawn")
    ready, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, ready, seconds, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    counts = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return sum(counts) / seconds, sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per cell instead of 3")
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    seconds = 1.0 if opts.quick else 3.0
    binary, why = ensure_binary("redis-server", "redis-server")
    if binary is None:
        sys.exit(f"redis-server is needed: {why}")
    results: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="xhub-bench-state-") as tmp:
        port = free_port()
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "", "--appendonly", "no"]
        cmd += ["--daemonize", "no", "--protected-mode", "no"]
        redis_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not wait_port(port, redis_proc):
                sys.exit("redis-server did not start")
            settings = Settings(home=Path(tmp) / "home")
            with ServiceProcess.start(TierConfig(memory_limit="64MiB"), settings) as service:
                import redis

                r = redis.Redis(host="127.0.0.1", port=port)
                for run in range(opts.runs):
                    for batch in (1, BATCH):
                        name = f"bench/count-{run}-{batch}"
                        rate, total = cell(_ours, (service.address, name, batch), seconds)
                        assert state.Counter(name, address=service.address).get() == total, "lost increments"
                        results.setdefault(f"ours x{batch}", []).append(rate)
                        key = f"count-{run}-{batch}"
                        rate, total = cell(_redis, (port, key, batch), seconds)
                        assert int(r.get(key) or 0) == total, "lost increments"
                        results.setdefault(f"redis x{batch}", []).append(rate)
                r.close()
        finally:
            redis_proc.terminate()
            redis_proc.wait(30)
    report(results, seconds, load_before)


def report(results: dict[str, list[float]], seconds: float, load_before: tuple[float, float, float]) -> None:
    print(f"\n{WORKERS} processes, {seconds:g} s per cell, {len(next(iter(results.values())))} runs")
    print(f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, ", end="")
    print(f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| variant | ours (increments/s) | Redis INCR (increments/s) | ours / Redis |")
    print("|---|---|---|---|")
    for batch, label in ((1, "one round trip each"), (BATCH, f"pipelined, {BATCH} per round trip")):
        ours, theirs = results[f"ours x{batch}"], results[f"redis x{batch}"]
        mo, mr = statistics.median(ours), statistics.median(theirs)
        print(
            f"| {label} | {mo:,.0f} ({min(ours):,.0f}..{max(ours):,.0f}) "
            f"| {mr:,.0f} ({min(theirs):,.0f}..{max(theirs):,.0f}) | {mo / mr:.2f} |"
        )


if __name__ == "__main__":
    main()
