"""xtremehub.multiprocessing.Pool.map vs the standard library's multiprocessing.Pool.map, one run.

Both on this machine with 2 worker processes (ours: the local backend), each
measurement including pool start and stop (what a user pays for one pool).
Rounds are interleaved and the median is reported, with the best round beside
it, because these shared 2-core machines are noisy; the ratio uses medians.

Scenarios: 1,000 no-op tasks; 100 tasks that sleep 10 ms; 200 tasks of ~2 ms CPU.

Run:  .venv/bin/python bench/multiprocessing_pool.py [--rounds 15] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable

from xtremehub import multiprocessing as xmp

WORKERS = 2


def noop(x: int) -> int:
    return x


def sleep10(x: int) -> int:
    time.sleep(0.01)
    return x


def cpu2ms(x: int) -> int:
    deadline = time.process_time() + 0.002
    while time.process_time() < deadline:
        pass
    return x


def run_std(func: Callable[[int], int], n: int) -> float:
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        result = pool.map(func, range(n))
    elapsed = time.perf_counter() - t0
    assert result == list(range(n))
    return elapsed


def run_ours(func: Callable[[int], int], n: int) -> float:
    t0 = time.perf_counter()
    with xmp.Pool(WORKERS) as pool:
        result = pool.map(func, range(n))
    elapsed = time.perf_counter() - t0
    assert result == list(range(n))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else args.rounds
    scenarios = [
        ("1000 no-op tasks", noop, 1000),
        ("100 tasks of 10 ms", sleep10, 100),
        ("200 tasks of 2 ms CPU", cpu2ms, 200),
    ]
    print(f"workers {WORKERS}; rounds {rounds} (median); each time includes pool start and stop")
    print(f"{'scenario':<22} {'stdlib':>9} {'ours':>9} {'ours/stdlib':>12} {'best stdlib':>12} {'best ours':>10}")
    for name, func, n in scenarios:
        run_std(func, min(n, 50))  # warm imports and the page cache
        run_ours(func, min(n, 50))
        std_t, ours_t = [], []
        for _ in range(rounds):
            std_t.append(run_std(func, n))
            ours_t.append(run_ours(func, n))
        std, ours = statistics.median(std_t), statistics.median(ours_t)
        print(
            f"{name:<22} {std * 1e3:7.1f}ms {ours * 1e3:7.1f}ms {ours / std:11.2f}x "
            f"{min(std_t) * 1e3:10.1f}ms {min(ours_t) * 1e3:8.1f}ms"
        )


if __name__ == "__main__":
    main()
