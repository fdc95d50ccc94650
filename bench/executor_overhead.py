"""Executor overhead: ours (local backend) vs multiprocessing.Pool vs Lithops localhost, one run.

Also measured in the same run: ``xtremehub.multiprocessing.Pool.map`` (the
standard-library API on our executor, column ``xmp.Pool``) against the standard
library's ``Pool.map``.

Scenarios: 1,000 no-op tasks, and 100 tasks that sleep 10 ms. Each measurement
includes starting and stopping the executor/pool (that is what a user pays for
one job), with 2 worker processes for all three. Ours and the pool run
``--rounds`` times, interleaved, and the median is reported; Lithops localhost
(about 0.3 s per task) runs once. These 2-core machines are noisy, so both the
median and the best round are printed; the ratio uses medians.

Run:  .venv/bin/python bench/executor_overhead.py [--rounds 7] [--lithops-noop-tasks 1000] [--quick] [--cpu]
      (--quick: 5 rounds, no Lithops; --cpu: also the CPU time of a job, parent and workers, which a
      loaded machine inflates far less than wall time)
Targets (issue 2): ours <= 2x multiprocessing.Pool on 1,000 no-ops; >= 50x faster than Lithops.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from xtremehub import FunctionExecutor
from xtremehub import multiprocessing as xmp

WORKERS = 2


def noop(x: int) -> int:
    return x


def sleep10(x: int) -> int:
    time.sleep(0.01)
    return x


def run_pool(func: Callable[[int], int], n: int) -> float:
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        result = pool.map(func, range(n))
    elapsed = time.perf_counter() - t0
    assert result == list(range(n))
    return elapsed


def run_ours(func: Callable[[int], int], n: int) -> float:
    t0 = time.perf_counter()
    with FunctionExecutor(workers=WORKERS, progress=False) as fexec:
        result = fexec.get_result(fexec.map(func, range(n)))
    elapsed = time.perf_counter() - t0
    assert result == list(range(n))
    return elapsed


def run_xmp_pool(func: Callable[[int], int], n: int) -> float:
    t0 = time.perf_counter()
    with xmp.Pool(WORKERS) as pool:
        result = pool.map(func, range(n))
    elapsed = time.perf_counter() - t0
    assert result == list(range(n))
    return elapsed


def run_lithops(func: Callable[[int], int], n: int) -> float:
    import lithops

    config: dict[str, Any] = {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": None},
        "localhost": {"worker_processes": WORKERS, "runtime": sys.executable},
    }
    t0 = time.perf_counter()
    fexec = lithops.FunctionExecutor(config=config)
    result = fexec.get_result(fexec.map(func, range(n)), show_progressbar=False)
    elapsed = time.perf_counter() - t0
    fexec.clean()
    assert result == list(range(n))
    return elapsed


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for (workers, once stopped)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def report_cpu(rounds: int) -> None:
    """Median CPU per job of 1,000 no-op tasks and of none (start and stop only), Pool vs ours."""
    print(f"CPU per job (parent + {WORKERS} workers, start and stop included), median of {rounds}")
    for n in (1000, 0):
        used: dict[str, list[float]] = {"Pool": [], "ours": []}
        for _ in range(rounds):
            for name, run in (("Pool", run_pool), ("ours", run_ours)):
                before = cpu_seconds()
                run(noop, n)
                used[name].append(cpu_seconds() - before)
        pool, ours = statistics.median(used["Pool"]), statistics.median(used["ours"])
        print(f"{n:5d} no-op tasks: Pool {pool * 1e3:6.1f} ms, ours {ours * 1e3:6.1f} ms, ours/Pool {ours / pool:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lithops-noop-tasks", type=int, default=1000, help="fewer is faster; rates are per task")
    parser.add_argument("--no-lithops", action="store_true")
    parser.add_argument("--quick", action="store_true", help="5 rounds, no Lithops")
    parser.add_argument("--cpu", action="store_true", help="also CPU time per job (parent and workers)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.no_lithops = 5, True
    logging.getLogger("lithops").setLevel(logging.WARNING)

    scenarios = [("1000 no-op tasks", noop, 1000, args.lithops_noop_tasks), ("100 tasks of 10 ms", sleep10, 100, 100)]
    print(f"workers {WORKERS}; rounds {args.rounds} (median); each time includes executor start and stop")
    print(
        f"{'scenario':<20} {'Pool':>9} {'ours':>9} {'ours/Pool':>10} {'best Pool':>10} {'best ours':>10} "
        f"{'Lithops':>10} {'Lithops/ours':>13} {'xmp.Pool':>9} {'xmp/Pool':>9}"
    )
    for name, func, n, n_lithops in scenarios:
        run_pool(func, min(n, 50))  # warm imports and the page cache
        run_ours(func, min(n, 50))
        run_xmp_pool(func, min(n, 50))
        pool_t, ours_t, xmp_t = [], [], []
        for _ in range(args.rounds):
            pool_t.append(run_pool(func, n))
            ours_t.append(run_ours(func, n))
            xmp_t.append(run_xmp_pool(func, n))
        pool, ours, xmp_pool = statistics.median(pool_t), statistics.median(ours_t), statistics.median(xmp_t)
        if args.no_lithops:
            lithops_s, ratio = "-", "-"
        else:
            lt = run_lithops(func, n_lithops) * n / n_lithops  # scaled to n tasks if fewer were run
            lithops_s, ratio = f"{lt:9.2f}s", f"{lt / ours:12.0f}x"
        print(
            f"{name:<20} {pool * 1e3:7.1f}ms {ours * 1e3:7.1f}ms {ours / pool:9.2f}x "
            f"{min(pool_t) * 1e3:8.1f}ms {min(ours_t) * 1e3:8.1f}ms {lithops_s:>10} {ratio:>13} "
            f"{xmp_pool * 1e3:7.1f}ms {xmp_pool / pool:8.2f}x"
        )
    if args.cpu:
        report_cpu(args.rounds)


if __name__ == "__main__":
    main()
