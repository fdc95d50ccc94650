"""Overhead of our executor on Ray, Dask and Lithops vs the same engine used directly, one run.

For each engine, one instance is started once (Ray: local, 2 CPUs; Dask: LocalCluster of 2
single-threaded worker processes; Lithops: localhost backend, 2 worker processes), then
two scenarios run ``--rounds`` times, interleaved, direct then ours:

* no-op tasks (1,000 on Ray and Dask; Lithops: 20, it costs ~0.3 s per task),
* tasks that sleep 10 ms (100 on Ray and Dask; Lithops: 10).

By default our Lithops backend runs several calls per activation (about two activations
per worker) while a plain Lithops map makes one activation per item; ``lithops-1`` runs
ours with one call per activation, which isolates the cost of our layer.

Direct means plain Ray tasks (``ray.get([f.remote(i) ...])``), plain Dask futures
(``client.gather(client.map(f, ...))``) and a plain ``lithops.FunctionExecutor.map``;
ours means ``FunctionExecutor(<engine>)`` created on the running engine, ``map`` and
``get_result``. The median time of the rounds is reported with the best, and
ours/direct ratios of the medians. Target (issue 5): ours adds at most 20 %.

Run:  .venv/bin/python bench/backends_overhead.py [--quick] [--rounds 5] [--engines ray,dask,lithops,lithops-1]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from xtremehub import FunctionExecutor


def noop(x: int) -> int:
    return x


def sleep10(x: int) -> int:
    time.sleep(0.01)
    return x


LITHOPS_CONFIG = {
    "lithops": {"backend": "localhost", "storage": "localhost", "log_level": None},
    "localhost": {"worker_processes": 2, "runtime": sys.executable},
}

Runner = Callable[[Callable[[int], int], int], float]


def timed(run: Callable[[], list[int]], n: int) -> float:
    t0 = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - t0
    assert result == list(range(n)), "wrong results"
    return elapsed


def ours(backend: Any, **options: Any) -> Runner:
    def run(func: Callable[[int], int], n: int) -> float:
        def job() -> list[int]:
            with FunctionExecutor(backend, progress=False, **options) as fexec:
                return list(fexec.get_result(fexec.map(func, range(n))))

        return timed(job, n)

    return run


@contextlib.contextmanager
def ray_engine() -> Iterator[tuple[Runner, Runner]]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    remotes = {f: ray.remote(max_retries=0)(f) for f in (noop, sleep10)}

    def direct(func: Callable[[int], int], n: int) -> float:
        return timed(lambda: ray.get([remotes[func].remote(i) for i in range(n)]), n)

    try:
        yield direct, ours("ray")
    finally:
        ray.shutdown()


@contextlib.contextmanager
def dask_engine() -> Iterator[tuple[Runner, Runner]]:
    from distributed import Client, LocalCluster

    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster, set_as_default=False) as client,
    ):

        def direct(func: Callable[[int], int], n: int) -> float:
            return timed(lambda: client.gather(client.map(func, range(n), pure=False)), n)

        yield direct, ours(client)


@contextlib.contextmanager
def lithops_engine() -> Iterator[tuple[Runner, Runner]]:
    import lithops

    lexec = lithops.FunctionExecutor(config=LITHOPS_CONFIG)

    def direct(func: Callable[[int], int], n: int) -> float:
        return timed(lambda: lexec.get_result(lexec.map(func, range(n)), show_progressbar=False), n)

    try:
        yield direct, ours(lexec)
    finally:
        lexec.clean()


@contextlib.contextmanager
def lithops_unbatched() -> Iterator[tuple[Runner, Runner]]:
    """Lithops again, ours with one call per activation (as plain Lithops): the cost of our layer alone."""
    with lithops_engine() as (direct, _):
        import lithops

        yield direct, ours(lithops.FunctionExecutor(config=LITHOPS_CONFIG), calls_per_activation=1)


ENGINES = {"ray": ray_engine, "dask": dask_engine, "lithops": lithops_engine, "lithops-1": lithops_unbatched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer tasks and rounds (a few minutes in all)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--engines", default="ray,dask,lithops,lithops-1")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    counts = {
        "ray": (300, 50) if args.quick else (1000, 100),
        "dask": (300, 50) if args.quick else (1000, 100),
        "lithops": (10, 6) if args.quick else (20, 10),
        "lithops-1": (10, 6) if args.quick else (20, 10),
    }
    print(f"rounds: {rounds} (median and best); ratio = ours / direct on medians; target <= 1.20")
    print(f"{'engine':8} {'scenario':18} {'direct med':>10} {'best':>8} {'ours med':>10} {'best':>8} {'ratio':>7}")
    for name in args.engines.split(","):
        n_noop, n_sleep = counts[name]
        with ENGINES[name]() as (direct, our):
            direct(noop, 10)  # warm up: workers started, functions registered
            our(noop, 10)
            for label, func, n in ((f"{n_noop} no-op", noop, n_noop), (f"{n_sleep} x 10 ms", sleep10, n_sleep)):
                base: list[float] = []
                mine: list[float] = []
                for _ in range(rounds):
                    base.append(direct(func, n))
                    mine.append(our(func, n))
                b, m = statistics.median(base), statistics.median(mine)
                print(
                    f"{name:8} {label:18} {b:10.3f} {min(base):8.3f} {m:10.3f} {min(mine):8.3f} {m / b:7.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
