"""COG connector: windows and overviews from S3 vs tifffile reading the whole local file. One run.

1. Generates (once, cached in --workdir) a tiled GeoTIFF of --size x --size pixels, 2 bands
   (red, near-infrared) uint16, 512 x 512 tiles, DEFLATE + horizontal predictor, internal
   overviews down to one tile, EPSG:32630 georeferencing (written with tifffile).
2. Starts a real SeaweedFS on loopback and uploads it.
3. Baseline (what a user without a cloud-aware reader does): tifffile reads the whole local
   file, then per-band sums and NDVI over the full array.
   Ours: ``preprocess()`` on the S3 object, then a --grid x --grid window grid read on
   --workers local processes (per-band sums; then NDVI with ``ndvi()``).
4. Bytes fetched: one window vs the byte counts of its tiles; the full grid vs the object
   size (target <= 1.05); a quick-look of the whole scene at overview level 2 vs the object
   size; the index size vs the object size.

Run:  .venv/bin/python bench/cog_windows.py [--size 8192] [--grid 8] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from seaweed_object import object_on_seaweedfs
from xtremehub import FunctionExecutor, storage
from xtremehub.connectors import CloudObject
from xtremehub.connectors.formats.geo.cog_write import geotiff_tags
from xtremehub.connectors.raster import COG, COGSlice, GeoReference, ndvi, partition_grid

MiB = 1024 * 1024
TILE = 512


def generate(path: Path, size: int) -> None:
    """Smooth fields plus noise (compresses like real imagery, not like zeros)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    field = np.sin(6 * xx) * np.cos(4 * yy)
    red = (1500 + 800 * field + rng.normal(0, 60, (size, size))).clip(1, 65535).astype(np.uint16)
    nir = (3000 + 1500 * np.cos(5 * xx + 3 * yy) + rng.normal(0, 90, (size, size))).clip(1, 65535).astype(np.uint16)
    del yy, xx, field
    bands = np.stack([red, nir])
    del red, nir
    georef = GeoReference((10.0, 0.0, 500000.0, 0.0, -10.0, 4600000.0), epsg=32630, width=size, height=size)
    options = {
        "tile": (TILE, TILE),
        "compression": "zlib",
        "predictor": 2,
        "planarconfig": "separate",
        "metadata": None,
    }
    with tifffile.TiffWriter(path, bigtiff=bands.nbytes > 2**31) as tif:
        level, k = bands, 0
        while True:
            tif.write(level, subfiletype=1 if k else 0, extratags=geotiff_tags(georef) if k == 0 else [], **options)
            if max(level.shape[1:]) <= TILE:
                break
            level, k = level[:, ::2, ::2], k + 1


def window_sums(piece: COGSlice) -> tuple[list[int], int]:
    """Map function: per-band sums of one window and the bytes it fetched."""
    window = piece.get()
    return window.data.reshape(window.data.shape[0], -1).sum(axis=1, dtype=np.int64).tolist(), window.bytes_fetched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192, help="image width and height in pixels")
    parser.add_argument("--grid", type=int, default=8, help="windows per side")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median)")
    parser.add_argument("--quick", action="store_true", help="4096 x 4096 pixels, 1 round")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cog-bench")
    args = parser.parse_args()
    if args.quick:
        args.size, args.rounds = 4096, 1

    args.workdir.mkdir(parents=True, exist_ok=True)
    local = args.workdir / f"scene-{args.size}.tif"
    if not local.exists():
        t0 = time.perf_counter()
        generate(local, args.size)
        print(f"generated {local} in {time.perf_counter() - t0:.0f}s")
    size = local.stat().st_size

    def baseline() -> tuple[float, list[int], float]:
        t0 = time.perf_counter()
        bands = tifffile.imread(local)
        sums = bands.reshape(bands.shape[0], -1).sum(axis=1, dtype=np.int64).tolist()
        t_read = time.perf_counter() - t0
        red, nir = bands[0].astype(np.float32), bands[1].astype(np.float32)
        (nir - red) / (nir + red)
        return t_read, sums, time.perf_counter() - t0

    base = [baseline() for _ in range(args.rounds)]
    base_read = float(np.median([b[0] for b in base]))
    base_ndvi = float(np.median([b[2] for b in base]))
    truth = base[0][1]

    with object_on_seaweedfs(local, "scene.tif") as (url, settings):
        t0 = time.perf_counter()
        co = CloudObject.from_path(COG, url, settings=settings).preprocess(force=True)
        ours_pre = time.perf_counter() - t0
        index_size = storage.head(co.metadata_url, settings=settings).size
        slices = co.partition(partition_grid, n_rows=args.grid, n_cols=args.grid)

        one = slices[len(slices) // 2 + args.grid // 2]
        one_window = one.get()
        overview = co.partition(partition_grid, level=min(2, co["num_levels"] - 1), n_rows=2, n_cols=2)
        overview_bytes = sum(s.get().bytes_fetched for s in overview)

        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
            fexec.get_result(fexec.map(window_sums, slices[:2]))  # start the workers
            reads, ndvis = [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                results = fexec.get_result(fexec.map(window_sums, slices))
                reads.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                ndvi(co, red=0, nir=1, executor=fexec, n_rows=args.grid, n_cols=args.grid)
                ndvis.append(time.perf_counter() - t0)
    ours_read, ours_ndvi = float(np.median(reads)), float(np.median(ndvis))
    sums = np.sum([r[0] for r in results], axis=0).tolist()
    assert sums == truth, (sums, truth)
    grid_fetched = sum(r[1] for r in results)

    raw = args.size * args.size * 2 * 2
    print(
        f"object: {args.size}x{args.size} x 2 bands uint16 ({raw / MiB:.0f} MiB raw), {size / MiB:.1f} MiB on disk, "
        f"{co['num_levels']} levels, {co['num_blocks']} tiles; {args.grid}x{args.grid} windows, "
        f"{args.workers} workers, SeaweedFS on loopback, median of {args.rounds}"
    )
    print(
        f"read all    tifffile whole local file: {base_read:6.2f}s | ours grid from S3: {ours_read:6.2f}s | "
        f"ours/baseline time {ours_read / base_read:.2f}x"
    )
    print(
        f"NDVI        tifffile + numpy (local):  {base_ndvi:6.2f}s | ours ndvi() from S3: {ours_ndvi:6.2f}s | "
        f"ours/baseline time {ours_ndvi / base_ndvi:.2f}x"
    )
    print(f"preprocess  {ours_pre:.2f}s, header bytes fetched {co['header_bytes_fetched']:,}")
    print(
        f"bytes       one window / its tiles: {one_window.bytes_fetched / one.byte_count:.3f} "
        f"({one_window.bytes_fetched / size:.2%} of the object) | full grid / object: {grid_fetched / size:.3f} | "
        f"overview level 2 quick-look / object: {overview_bytes / size:.3f} | index / object: {index_size / size:.4%}"
    )


if __name__ == "__main__":
    main()
