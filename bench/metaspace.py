"""METASPACE-style annotation: ours on 2 workers from S3 vs the same algorithm sequentially from local disk.

1. Generates (once, cached in --workdir) an imzML dataset (--mode processed: float64
   m/z and float32 intensities per spectrum; continuous: float32 intensities on one
   shared float64 m/z axis) with planted molecules (``write_planted_dataset``) whose
   .ibd has about --gb GB, and a random database of --formulas molecular formulas
   (C, H, N, O, S, P) that includes the --planted ones.
2. Baseline: ``annotate()`` sequentially in this process (no executor, one partition)
   on the local files.
3. Ours: a real SeaweedFS on loopback holds both files; ``annotate()`` with the local
   executor (--workers) and 2 partitions per worker; partial .ibd reads.
4. Also ours with whole-spectrum reads (``partial_reads=False``), for bytes read.
5. Checks the tables are identical and the planted formulas are found at FDR <= 10 %;
   prints times per stage, the speed-up and bytes read / .ibd size.

Run:  .venv/bin/python bench/metaspace.py [--gb 1.0] [--formulas 2000] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from seaweed_object import files_on_seaweedfs
from xtremehub import FunctionExecutor
from xtremehub.pipelines.metabolomics import AnnotationConfig, annotate
from xtremehub.pipelines.metabolomics.annotate import Annotation
from xtremehub.pipelines.metabolomics.synthetic import random_formulas, write_planted_dataset

MB = 1e6
SIDE = 80  # pixels across and down
BYTES_PER_PEAK = 12  # processed: float64 m/z + float32 intensity (continuous: 4, the intensity)


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def stages(result: Annotation) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help=".ibd size to generate (GB)")
    parser.add_argument("--formulas", type=int, default=2000)
    parser.add_argument("--planted", type=int, default=20)
    parser.add_argument("--adducts", default="+H,+Na,+K")
    parser.add_argument("--ppm", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=["processed", "continuous"], default="processed")
    parser.add_argument("--quick", action="store_true", help="0.2 GB .ibd, +H only (shared, loaded machines)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "metaspace-bench")
    args = parser.parse_args()
    gb = 0.2 if args.quick else args.gb
    adducts = ("+H",) if args.quick else tuple(a for a in args.adducts.split(",") if a)

    formulas = random_formulas(args.formulas)
    planted = formulas[:: max(1, len(formulas) // args.planted)][: args.planted]
    peaks = int(gb * 1e9 / (SIDE * SIDE * (4 if args.mode == "continuous" else BYTES_PER_PEAK)))
    args.workdir.mkdir(parents=True, exist_ok=True)
    stem = args.workdir / f"planted-{args.mode}-{SIDE}x{SIDE}x{peaks}-{args.formulas}"
    imzml, ibd = stem.with_suffix(".imzML"), stem.with_suffix(".ibd")
    if not (imzml.exists() and ibd.exists()):
        t0 = time.perf_counter()
        write_planted_dataset(
            str(stem),
            planted,
            formulas,
            width=SIDE,
            height=SIDE,
            noise_peaks=peaks // 20 if args.mode == "continuous" else peaks - 4 * len(planted),
            profile_points=peaks,
            mode=args.mode,
            seed=5,
        )
        print(f"generated {ibd} ({ibd.stat().st_size / MB:,.0f} MB) in {time.perf_counter() - t0:.1f}s")
    size = ibd.stat().st_size
    config = AnnotationConfig(adducts=adducts, ppm=args.ppm)

    load_before = os.getloadavg()[0]
    c0, t0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    base = annotate(str(imzml), formulas, config=config, partitions=1, progress=False)
    base_s, base_cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_SELF) - c0

    with files_on_seaweedfs(imzml, ibd) as ((url, _), settings):
        # CPU of ours: this process plus the workers (counted once they have exited), warm-up included
        c0, k0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
            annotate(url, formulas[:5], config=config, executor=fexec, settings=settings, progress=False)  # warm-up
            t0 = time.perf_counter()
            ours = annotate(url, formulas, config=config, executor=fexec, settings=settings, progress=False)
            ours_s = time.perf_counter() - t0
        ours_cpu = cpu_seconds(resource.RUSAGE_SELF) - c0 + cpu_seconds(resource.RUSAGE_CHILDREN) - k0
        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
            t0 = time.perf_counter()
            whole = annotate(
                url, formulas, config=config, executor=fexec, settings=settings, progress=False, partial_reads=False
            )
            whole_s = time.perf_counter() - t0

    load_after = os.getloadavg()[0]
    pd.testing.assert_frame_equal(ours.table, base.table)
    pd.testing.assert_frame_equal(whole.table, base.table)
    table = ours.table
    found = set(table[(table.fdr <= 0.1) & (table.adduct == adducts[0])].formula)
    n_ions = len(set(base.table.formula)) if len(base.table) else 0
    print(
        f"dataset: {size / MB:,.0f} MB .ibd, {SIDE}x{SIDE} pixels, {args.mode}, ~{peaks:,} peaks per spectrum; "
        f"{len(formulas):,} formulas x {len(adducts)} adducts, {config.decoy_sample_size} decoys each, "
        f"± {args.ppm:g} ppm" + (" (--quick)" if args.quick else "")
    )
    print(f"machine: {os.cpu_count()} cores, load average {load_before:.1f} at start, {load_after:.1f} at end")
    print(
        f"planted found at FDR <= 10%: {len(found & set(planted))}/{len(planted)}; "
        f"other formulas: {len(found - set(planted))}"
    )
    print(f"annotations with MSM > 0: {len(table)} ({n_ions} formulas); tables identical in all runs")
    print(f"baseline  sequential, local disk: {base_s:7.1f}s  [{stages(base)}]")
    print(f"ours      {args.workers} workers, S3:          {ours_s:7.1f}s  [{stages(ours)}]")
    print(f"speed-up  {base_s / ours_s:.2f}x (target >= 1.7x)")
    print(
        f"CPU       baseline {base_cpu:.1f}s (wall/CPU {base_s / base_cpu:.2f}) | ours, driver + workers "
        f"{ours_cpu:.1f}s "
        f"({ours_cpu / base_cpu:.2f}x the baseline's CPU; wall/CPU per core {ours_s * args.workers / ours_cpu:.2f})"
    )
    print(f"ours      whole-spectrum reads:    {whole_s:7.1f}s  [{stages(whole)}]")
    print(
        f".ibd read: partial {ours.ibd_bytes_read / MB:,.0f} MB ({ours.ibd_bytes_read / size:.1%} of the .ibd) | "
        f"whole spectra {whole.ibd_bytes_read / MB:,.0f} MB ({whole.ibd_bytes_read / size:.1%})"
    )


if __name__ == "__main__":
    main()
