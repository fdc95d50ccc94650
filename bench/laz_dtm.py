"""LAZ connector: a digital terrain model (lowest Z per cell) from S3 slices vs laspy reading the file whole.

1. Generates (once, cached in --workdir) a LAS 1.4 / point format 6 LAZ of --points points
   (synthetic terrain in flight-line order, 50,000-point LASzip chunks; see
   ``xtremehub.demo.las_job.write_synthetic_laz``).
2. Baselines on local disk, in this process: ``laspy.read(path)`` (all fields; laspy's default
   lazrs-parallel backend uses every core), then the same NumPy binning; and, for fairness,
   the same with laspy's ``decompression_selection`` limited to X, Y, Z.
3. Starts a real SeaweedFS on loopback, uploads the file, ``preprocess()`` (header + chunk table),
   then ``terrain_model`` over --slices slices of whole chunks on --workers local workers
   (map: fetch + decompress X/Y/Z + bin; reduce: cell-wise min).
4. Checks that both models are identical, and prints time ratios, bytes fetched / object size
   and index size / object size. --rounds repeats baseline and ours interleaved (median).

Run:  .venv/bin/python bench/laz_dtm.py [--points 20000000] [--workers 2] [--slices 16] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import laspy
import numpy as np

from xtremehub import FunctionExecutor, storage
from xtremehub.config import use_process_settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.formats.geo.pointcloud_raster import bin_extremes, cell_extremes, merge_extremes
from xtremehub.connectors.pointcloud import LAS, Grid, PointCloudSlice, partition_points, terrain_model
from xtremehub.demo.las_job import write_synthetic_laz
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS

MiB = 1024 * 1024
XYZ = laspy.DecompressionSelection.XY_RETURNS_CHANNEL | laspy.DecompressionSelection.Z


def baseline(path: Path, resolution: float, selection: Any = None) -> tuple[float, float, np.ndarray]:
    """laspy reads the whole file locally, then the same binning as ours, in one process.

    Returns (wall seconds, CPU seconds of this process and its decompression threads, model)."""
    t0, c0 = time.perf_counter(), time.process_time()
    kwargs = {} if selection is None else {"decompression_selection": selection}
    las = laspy.read(str(path), **kwargs)
    h = las.header
    grid = Grid.with_resolution(h.mins[0], h.mins[1], h.maxs[0], h.maxs[1], resolution)
    _, flat = bin_extremes(grid, np.asarray(las.x), np.asarray(las.y), np.asarray(las.z), "min")
    values = merge_extremes([("min", flat)]).reshape(grid.rows, grid.cols)[::-1]
    return time.perf_counter() - t0, time.process_time() - c0, values


def ours_map_reduce(fexec: FunctionExecutor, slices: list[PointCloudSlice], grid: Grid) -> tuple[float, float, Any]:
    """What terrain_model does (map cell_extremes, reduce merge_extremes), keeping the workers' CPU times."""
    t0 = time.perf_counter()
    futures = fexec.map(cell_extremes, slices, extra_args={"grid": grid, "stat": "min"})
    flat = merge_extremes(fexec.get_result(futures))
    seconds = time.perf_counter() - t0
    cpu = sum(f.stats.get("cpu_user", 0.0) + f.stats.get("cpu_system", 0.0) for f in futures)
    return seconds, cpu, flat.reshape(grid.rows, grid.cols)[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--resolution", type=float, default=2.0, help="cell size in metres (1 km x 1 km area)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5 M points, 1 round (loaded machines)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "las-bench")
    args = parser.parse_args()
    if args.quick:
        args.points, args.rounds = 5_000_000, 1

    local = args.workdir / f"terrain-{args.points}.laz"
    if not local.exists():
        t0 = time.perf_counter()
        write_synthetic_laz(local, args.points)
        print(f"generated {local} in {time.perf_counter() - t0:.0f}s")
    size = local.stat().st_size

    base_all: list[tuple[float, float]] = []
    base_xyz: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    with SeaweedFS.start() as server:
        settings = server.settings(timeout=120)
        use_process_settings(settings)
        S3Store("bench", settings.s3).create_bucket()
        url = "s3://bench/terrain.laz"
        with local.open("rb") as fh:
            storage.put(url, fh, settings=settings)

        t0 = time.perf_counter()
        co = CloudObject.from_path(LAS, url, settings=settings).preprocess(force=True)
        ours_pre = time.perf_counter() - t0
        index_size = storage.head(co.metadata_url, settings=settings).size
        slices = cast("list[PointCloudSlice]", co.partition(partition_points, num_batches=args.slices))
        assert sum(s.point_count for s in slices) == args.points
        grid = Grid.with_resolution(co["mins"][0], co["mins"][1], co["maxs"][0], co["maxs"][1], args.resolution)

        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
            fexec.get_result(fexec.map(abs, [1, 2]))  # start the workers
            for _ in range(args.rounds):
                *timing, expected = baseline(local, args.resolution)
                base_all.append((timing[0], timing[1]))
                *timing, expected_xyz = baseline(local, args.resolution, XYZ)
                base_xyz.append((timing[0], timing[1]))
                *timing, values = ours_map_reduce(fexec, slices, grid)
                ours.append((timing[0], timing[1]))
                assert np.array_equal(values, expected, equal_nan=True)
                assert np.array_equal(expected_xyz, expected, equal_nan=True)
            model = terrain_model(co, fexec, resolution=args.resolution, slices=slices)  # the public API agrees
            assert np.array_equal(model.values, expected, equal_nan=True)
        use_process_settings(None)

    fetched = sum(s.nbytes for s in slices)
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in (("all", base_all), ("xyz", base_xyz), ("ours", ours))
    }
    print(
        f"object: {size / MiB:.0f} MiB LAZ, {args.points:,} points (format 6), {co['chunks']} chunks; "
        f"DTM {grid.cols} x {grid.rows} cells of {args.resolution:g} m; {len(slices)} slices, {args.workers} workers, "
        f"SeaweedFS on loopback; median of {args.rounds} round(s); wall s / CPU s"
    )
    for key, label in (
        ("all", "baseline laspy.read (all fields) + bin, local"),
        ("xyz", "baseline laspy.read (X,Y,Z only) + bin, local"),
        ("ours", "ours: slices from S3 on the executor        "),
    ):
        print(f"{label}: {med[key][0]:6.2f}s wall {med[key][1]:6.2f}s CPU")
    o = med["ours"]
    print(
        f"wall speed-up vs laspy all fields: {med['all'][0] / o[0]:.2f}x, vs X,Y,Z only: {med['xyz'][0] / o[0]:.2f}x "
        f"(target >= 1.5x);  CPU ratio baseline/ours: {med['all'][1] / o[1]:.2f}x / {med['xyz'][1] / o[1]:.2f}x"
    )
    print(f"preprocess(): {ours_pre:.2f}s")
    print(f"bytes fetched / object size: {fetched / size:.4f}   index size / object size: {index_size / size:.4%}")


if __name__ == "__main__":
    main()
