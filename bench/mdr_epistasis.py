"""MDR epistasis throughput: pair combinations per second per core, ours vs the seed's Lithops logic.

One run, same machine, same generated cohort (random genotypes, half cases) for both:

* baseline: the seed's Lithops NumPy logic, one pair at a time (the reference port of the tests,
  ``tests/pipelines/lithops_reference.py``: ``transform_patients`` + ``get_risk_array``), timed on a
  few hundred pairs;
* ours: the vectorised learner (``apply_mdr``, compat and default modes) on a block of SNPs against
  itself (every unordered pair once), on 1 core and on 2 cores (the executor with 2 local workers,
  and MPI with 2 ranks through Open MPI's ``mpiexec``), each worker a share of the pairs;
* the per-pair cost breakdown of ours (cell counts by matrix product / risk tables / fold values) and
  the parse cost of the text genotype rows, per SNP and amortised per pair.

BLAS is limited to one thread per process, so "per core" means per process. Anchors: the seed's
C+MPI reaches 1,311 (MareNostrum 4) and 3,057 (MareNostrum 5) pair combinations per second per core.

Run:  .venv/bin/python bench/mdr_epistasis.py [--quick] [--patients 1128,22800] [--snps 400] [--missing 0.01]
"""

# ruff: noqa: E402  (BLAS reads its thread count when numpy loads: the environment is set first)
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from xtremehub import FunctionExecutor
from xtremehub.pipelines.epistasis import Cohort, MDRConfig, apply_mdr, read_sample
from xtremehub.pipelines.epistasis.learner import count_cells, get_error, get_risk_array

ANCHORS = {"MareNostrum 4": 1311, "MareNostrum 5": 3057}
ROOT = Path(__file__).resolve().parents[1]


def cohort(n_patients: int, n_snps: int, missing: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random labels and genotypes; ``missing``: the share of calls left missing (none: the learner
    needs 4 instead of 9 matrix products per pair)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_patients) < 0.5).astype(np.int8)
    labels[0] = 0
    genos = rng.binomial(2, 0.4, size=(n_snps, n_patients)).astype(np.int8)
    genos[rng.random(genos.shape) < missing] = -1
    return labels, genos


def ours_share(labels: np.ndarray, genos: np.ndarray, mode: str, share: int, shares: int) -> tuple[int, float]:
    """Pairs and seconds of one worker's share: rows ``share::shares`` of the SNP block against all
    later SNPs (every unordered pair of the block exactly once over the shares)."""
    c = Cohort.build(labels, MDRConfig(mode=mode))  # type: ignore[arg-type]
    n = genos.shape[0]
    half = n // 2
    # two tiles of equal pair count: (A, A) + (B, B) triangles and the (A, B) square, split by share
    t0 = time.perf_counter()
    pairs = 0
    if shares == 1 or share == 0:
        pairs += len(apply_mdr(genos[:half], genos[:half], c, triangle=True))
        pairs += len(apply_mdr(genos[half:], genos[half:], c, triangle=True))
    if shares == 1 or share == 1:
        pairs += len(apply_mdr(genos[:half], genos[half:], c))
    return pairs, time.perf_counter() - t0


def executor_run(labels: np.ndarray, genos: np.ndarray, mode: str, workers: int) -> tuple[int, float]:
    with FunctionExecutor("local", workers=workers) as fexec:
        fexec.get_result(fexec.map(ours_share, [(labels, genos[:4], mode, 0, 1)] * workers))  # warm workers
        t0 = time.perf_counter()
        results = fexec.get_result(fexec.map(ours_share, [(labels, genos, mode, s, workers) for s in range(workers)]))
        wall = time.perf_counter() - t0
    return sum(p for p, _ in results), wall


def mpi_run(n_patients: int, n_snps: int, mode: str, ranks: int, missing: float) -> tuple[int, float] | None:
    mpiexec = shutil.which("mpiexec")
    if not mpiexec:
        return None
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["PYTHONPATH"] = str(ROOT / "src")
    cmd = [mpiexec, "-n", str(ranks), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    args = ["--mpi-worker", "--patients", str(n_patients), "--snps", str(n_snps), "--mode", mode]
    args += ["--missing", str(missing)]
    out = subprocess.run([*cmd, sys.executable, __file__, *args], capture_output=True, text=True, check=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return int(result["pairs"]), float(result["wall"])


def mpi_worker(n_patients: int, n_snps: int, mode: str, missing: float) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    labels, genos = cohort(n_patients, n_snps, missing)
    ours_share(labels, genos[:4], mode, 0, 1)  # warm-up
    comm.Barrier()
    t0 = MPI.Wtime()
    pairs, _ = ours_share(labels, genos, mode, comm.Get_rank(), comm.Get_size())
    total = comm.reduce(pairs, root=0)
    comm.Barrier()
    if comm.Get_rank() == 0:
        print(json.dumps({"pairs": total, "wall": MPI.Wtime() - t0}))


def baseline(labels: np.ndarray, genos: np.ndarray, n_pairs: int) -> float:
    """The seed's logic, pairs per second (one process)."""
    sys.path.insert(0, str(ROOT / "tests" / "pipelines"))
    from lithops_reference import Reference, get_keyval_rows  # type: ignore[import-not-found]

    text = "ID bin1\n0 B\n" + "".join(f"$ {v}\n" for v in labels.tolist())
    ref = Reference(text)
    rows = get_keyval_rows(genos[:40])
    t0 = time.perf_counter()
    done = 0
    for i in range(40):
        for j in range(i + 1, 40):
            ref.apply_mdr_dict((i, j), rows, rows)
            done += 1
            if done >= n_pairs:
                return done / (time.perf_counter() - t0)
    return done / (time.perf_counter() - t0)


def breakdown(labels: np.ndarray, genos: np.ndarray, mode: str) -> dict[str, float]:
    """Microseconds per pair of each learner stage on one full block (m x m pairs)."""
    c = Cohort.build(labels, MDRConfig(mode=mode))  # type: ignore[arg-type]
    m = MDRConfig().block_for(labels.size)
    g = genos[:m]
    t0 = time.perf_counter()
    counts = count_cells(g, g, c)
    t1 = time.perf_counter()
    high = get_risk_array(counts, c)
    t2 = time.perf_counter()
    get_error(high, counts, c)
    t3 = time.perf_counter()
    pairs = m * m
    return {"counts": (t1 - t0) / pairs * 1e6, "risk": (t2 - t1) / pairs * 1e6, "folds": (t3 - t2) / pairs * 1e6}


def parse_cost(labels: np.ndarray, genos: np.ndarray, n_rows: int) -> float:
    """Milliseconds to parse one genotype text row (soft probabilities, 2 decimals) of the cohort."""
    tokens = ["0.96 0.02 0.02", "0.02 0.96 0.02", "0.02 0.02 0.96"]
    lines = [f"chr1 $ rs{s} $ $ " + " ".join(tokens[v] for v in genos[s].tolist()) for s in range(n_rows)]
    data = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)
    read_sample(data, "warm-up.gz", n_patients=labels.size)  # imports (pyarrow) outside the timing
    t0 = time.perf_counter()
    block = read_sample(data, "bench.gz", n_patients=labels.size)
    dt = time.perf_counter() - t0
    assert np.array_equal(block.genotypes, genos[:n_rows])
    return dt / n_rows * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer SNPs and baseline pairs")
    ap.add_argument("--patients", default="1128,22800")
    ap.add_argument("--snps", type=int, default=0, help="SNPs per run (default: 600 at 1,128, 360 at 22,800)")
    ap.add_argument("--mode", default="compat")
    ap.add_argument("--missing", type=float, default=0.0, help="share of missing calls (e.g. 0.01)")
    ap.add_argument("--mpi-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mpi_worker:
        mpi_worker(int(args.patients), args.snps, args.mode, args.missing)
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared)")
    for n_patients in (int(p) for p in args.patients.split(",")):
        n_snps = args.snps or ((600 if n_patients < 5000 else 360) // (2 if args.quick else 1))
        labels, genos = cohort(n_patients, n_snps, args.missing)
        print(f"\n== {n_patients:,} patients, {n_snps} SNPs ({n_snps * (n_snps - 1) // 2:,} pairs) ==")
        if args.missing:
            print(f"   {args.missing:.1%} of the calls missing")
        base = baseline(labels, genos, 60 if args.quick else 200)
        print(f"baseline (seed's Lithops NumPy logic, 1 core): {base:,.0f} pairs/s")
        for mode in ("compat", "default"):
            pairs, secs = ours_share(labels, genos, mode, 0, 1)
            one = pairs / secs
            print(f"ours {mode:7s} 1 core:               {one:,.0f} pairs/s/core  ({one / base:,.0f}x baseline)")
            ex_pairs, ex_wall = executor_run(labels, genos, mode, 2)
            ex = ex_pairs / ex_wall / 2
            print(f"ours {mode:7s} executor 2 cores:     {ex:,.0f} pairs/s/core  (scaling {2 * ex / one:.2f}x)")
            mpi = mpi_run(n_patients, n_snps, mode, 2, args.missing)
            if mpi is not None:
                mp = mpi[0] / mpi[1] / 2
                print(f"ours {mode:7s} MPI 2 ranks:          {mp:,.0f} pairs/s/core  (scaling {2 * mp / one:.2f}x)")
            mpi1 = mpi_run(n_patients, n_snps, mode, 1, args.missing)
            if mpi1 is not None:
                print(f"ours {mode:7s} MPI 1 rank:           {mpi1[0] / mpi1[1]:,.0f} pairs/s/core")
            for name, anchor in ANCHORS.items():
                print(f"    vs {name} anchor {anchor:,}/s/core: {one / anchor:.1f}x (1 core)")
            parts = breakdown(labels, genos, mode)
            print("    per pair: " + ", ".join(f"{k} {v:.2f} us" for k, v in parts.items()))
        ms = parse_cost(labels, np.maximum(genos, 0), 20)
        amortised = ms * 1e3 / max(n_snps - 1, 1)
        print(f"parse: {ms:.2f} ms per SNP row = {amortised:.2f} us per pair amortised over this run")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
