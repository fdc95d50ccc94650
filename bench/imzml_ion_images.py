"""imzML connector: ion images for 100 target m/z values, ours from S3 vs pyimzML on local disk. One run.

1. Generates (once, cached in --workdir) a processed-mode imzML dataset whose .ibd has
   --gb GB: 100 x 100 pixels, float32 m/z and intensities, NumPy-written .ibd.
2. Baseline: pyimzML's ImzMLParser on the local files (its XML parse included), every
   spectrum read once in file order (``getspectrum``), window sums with the same vectorised
   kernel as ours on batches of 256 spectra (one pass for all targets; pyimzML's own
   ``getionimage`` would re-read the whole dataset once per target).
3. Ours: a real SeaweedFS on loopback holds both files; ``CloudObject.preprocess()``
   indexes them; slices of whole spectra (``partition_bytes``) are mapped on the local
   executor (--workers) and the pixel values assembled into images (reduce).
4. Checks that both give the same images; prints the speed ratio, bytes fetched by all
   slices / .ibd size and index size / data size.

Run:  .venv/bin/python bench/imzml_ion_images.py [--gb 1.0] [--workers 2] [--slices 32] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pyimzml.ImzMLParser import ImzMLParser

from seaweed_object import files_on_seaweedfs
from xtremehub import FunctionExecutor, storage
from xtremehub.connectors import CloudObject
from xtremehub.connectors.formats.imaging.ion_images import assemble_ion_images, batch_ion_values, windows
from xtremehub.connectors.imaging import ImzML, ImzMLSlice, Spectra, partition_bytes, write_synthetic_imzml

MB = 1e6
SIDE = 100  # pixels across and down


def ion_values(data_slice: ImzMLSlice, mz_values: list[float], ppm: float) -> tuple[Any, Any, int]:
    """Map: the slice's pixel coordinates, values per target, and bytes it fetched."""
    batch = data_slice.get()
    return batch.coords, batch_ion_values(batch, *windows(mz_values, ppm)), batch.fetched_bytes


def pyimzml_images(imzml: Path, mz_values: list[float], ppm: float, batch: int = 256) -> np.ndarray:
    """Baseline: pyimzML reads every spectrum once, sequentially, from local disk; the window
    sums run on batches of ``batch`` spectra with the same vectorised kernel as ours."""
    lows, highs = windows(mz_values, ppm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with ImzMLParser(str(imzml)) as p:
            width, height = p.imzmldict["max count of pixels x"], p.imzmldict["max count of pixels y"]
            images = np.zeros((len(mz_values), height, width))
            coords = np.asarray(p.coordinates, dtype=np.int64)
            for first in range(0, len(coords), batch):
                picked = range(first, min(first + batch, len(coords)))
                spectra = [p.getspectrum(i) for i in picked]
                offsets = np.concatenate([[0], np.cumsum([len(s[1]) for s in spectra])])
                spectra_batch = Spectra(
                    np.arange(first, first + len(spectra)),
                    coords[first : first + len(spectra)],
                    np.concatenate([s[0] for s in spectra]),
                    np.concatenate([s[1] for s in spectra]),
                    offsets,
                    continuous=False,
                )
                values = batch_ion_values(spectra_batch, lows, highs)
                xy = coords[first : first + len(spectra)]
                images[:, xy[:, 1] - 1, xy[:, 0] - 1] = values
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help=".ibd size to generate (GB)")
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--ppm", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="a 0.25 GB dataset (shared, loaded machines)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "imzml-bench")
    args = parser.parse_args()
    gb = 0.25 if args.quick else args.gb

    args.workdir.mkdir(parents=True, exist_ok=True)
    n_mz = int(gb * 1e9 / (SIDE * SIDE * 8))
    stem = args.workdir / f"synthetic-{SIDE}x{SIDE}x{n_mz}"
    imzml, ibd = stem.with_suffix(".imzML"), stem.with_suffix(".ibd")
    if not (ibd.exists() and ibd.stat().st_size == 16 + SIDE * SIDE * 8 * n_mz and imzml.exists()):
        t0 = time.perf_counter()
        write_synthetic_imzml(str(stem), width=SIDE, height=SIDE, n_mz=n_mz, mode="processed")
        print(f"generated {ibd} ({ibd.stat().st_size / MB:.0f} MB) in {time.perf_counter() - t0:.1f}s")
    size, xml_size = ibd.stat().st_size, imzml.stat().st_size
    rng = np.random.default_rng(7)
    mz_values = np.sort(rng.uniform(150.0, 950.0, args.targets)).tolist()

    t0 = time.perf_counter()
    expected = pyimzml_images(imzml, mz_values, args.ppm)
    base = time.perf_counter() - t0

    with files_on_seaweedfs(imzml, ibd) as ((url, _), settings):
        t0 = time.perf_counter()
        co = CloudObject.from_path(ImzML, url, settings=settings).preprocess(force=True)
        pre = time.perf_counter() - t0
        index_size = storage.head(co.metadata_url, settings=settings).size
        slices = co.partition(partition_bytes, bytes_per_slice=-(-co["array_bytes"] // args.slices))
        with FunctionExecutor(workers=args.workers, settings=settings, progress=False) as fexec:
            fexec.get_result(fexec.map(ion_values, [(slices[0], mz_values[:1], args.ppm)] * args.workers))  # warm up
            t0 = time.perf_counter()
            results = fexec.get_result(fexec.map(ion_values, [(s, mz_values, args.ppm) for s in slices]))
            got = assemble_ion_images([(c, v) for c, v, _ in results], co["grid"], mz_values, args.ppm)
            ours = time.perf_counter() - t0
    fetched = sum(r[2] for r in results)
    np.testing.assert_allclose(got.images, expected, rtol=1e-9)
    assert (expected > 0).any()

    print(
        f"dataset: {size / MB:,.0f} MB .ibd + {xml_size / MB:.1f} MB XML, {SIDE}x{SIDE} pixels, processed, "
        f"{n_mz:,} m/z values per spectrum; {args.targets} targets ± {args.ppm:g} ppm"
        + (" (--quick)" if args.quick else "")
    )
    print(
        f"ion images  pyimzML local, sequential: {base:6.2f}s | ours from S3, {len(slices)} slices on "
        f"{args.workers} workers: {ours:6.2f}s | speed-up {base / ours:.2f}x (target >= 1.6x)"
    )
    print(
        f"            ours incl. one-time preprocess() ({pre:.2f}s): {pre + ours:6.2f}s | "
        f"speed-up {base / (pre + ours):.2f}x"
    )
    print(
        f"bytes fetched / .ibd size: {fetched / size:.4f} (target <= 1.05)   "
        f"index size / data size: {index_size / (size + xml_size):.4%} ({index_size / 1e3:.0f} kB)"
    )


if __name__ == "__main__":
    main()
