"""The demo's imaging job: ion images of a synthetic imzML dataset, built in parallel over tiles.

Example:
    >>> import tempfile
    >>> from xtremehub.config import Settings
    >>> report = run_imzml_demo(Settings(home=tempfile.mkdtemp()), width=8, height=6, workers=1)
    >>> report.ok, report.summary().splitlines()[0]
    (True, 'XtremeHub demo: imzML connector (ion images over pixel tiles, in place)')
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xtremehub import storage
from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.imaging import ImzML, IonImages, SyntheticImzML, ion_images, write_synthetic_imzml

__all__ = ["ImzmlReport", "run_imzml_demo"]


@dataclass
class ImzmlReport:
    dataset: SyntheticImzML
    images: IonImages
    png: Path
    slices: int
    preprocess_seconds: float
    seconds: float
    index_bytes: int
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def summary(self) -> str:
        ds = self.dataset
        lines = [
            "XtremeHub demo: imzML connector (ion images over pixel tiles, in place)",
            f"  object       {ds.imzml_url} + .ibd ({ds.ibd_size / 1e6:.0f} MB, {ds.mode}, "
            f"{ds.width}x{ds.height} pixels, {ds.n_mz:,} m/z values per spectrum)",
            f"  preprocess   {self.preprocess_seconds:.2f}s, index {self.index_bytes / 1e3:.0f} kB "
            f"({self.index_bytes / ds.ibd_size:.2%} of the .ibd)",
            f"  ion images   {len(self.images.mz_values)} targets ± {self.images.ppm:g} ppm over {self.slices} tiles "
            f"in {self.seconds:.2f}s",
            f"  PNG          {self.png}",
        ]
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return "\n".join(lines)


def _write_dataset(home: Path, width: int, height: int, n_mz: int) -> SyntheticImzML:
    folder = home / "sample" / "imzml"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"synthetic-{width}x{height}x{n_mz}"
    return write_synthetic_imzml(str(stem), width=width, height=height, n_mz=n_mz)


def run_imzml_demo(
    settings: Settings,
    *,
    width: int = 48,
    height: int = 32,
    n_mz: int = 2000,
    ppm: float = 2000.0,
    tile: int = 16,
    workers: int | None = None,
    progress: bool | None = None,
) -> ImzmlReport:
    """Generate a small dataset under ``settings.home``, index it, build and save ion images, check them."""
    dataset = _write_dataset(Path(settings.home).expanduser(), width, height, n_mz)
    t0 = time.perf_counter()
    co = CloudObject.from_path(ImzML, dataset.imzml_url, settings=settings).preprocess(force=True)
    pre = time.perf_counter() - t0
    targets = list(dataset.peaks[:4])
    with FunctionExecutor(workers=workers, settings=settings, progress=progress) as fexec:
        t0 = time.perf_counter()
        result = ion_images(co, targets, ppm, executor=fexec, strategy="tiles", tile_width=tile)
        seconds = time.perf_counter() - t0
    slices = len(co.partition("tiles", tile_width=tile))
    png = result.save_png(Path(dataset.imzml_url).with_name("ion-images.png"), columns=2)
    single = ion_images(co, targets, ppm, strategy="spectra", num_batches=1)
    checks = {
        "every pixel indexed": co["num_spectra"] == width * height,
        "tiles agree with one sequential pass": bool(np.allclose(result.images, single.images, rtol=1e-12)),
        "peaks stand out in every pixel": bool((result.images > 10).all()),
        "PNG written": storage.head(str(png)).size > 0,
    }
    index_bytes = storage.head(co.metadata_url, settings=settings).size
    return ImzmlReport(dataset, result, png, slices, pre, seconds, index_bytes, checks)
