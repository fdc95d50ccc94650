"""The demo's point-cloud job: a digital terrain model from a LAZ file, slice by slice, in place.

:func:`write_synthetic_laz` makes a LAS 1.4 / point format 6 LAZ of a rolling terrain with
ground (class 2) and vegetation (class 5) points, in flight-line order, so that LASzip
chunks are spatially coherent as in real surveys. :func:`run_las_demo` indexes it, computes
the terrain model over its slices on the executor and writes a PNG with a colour bar.

Example:
    >>> import tempfile
    >>> from xtremehub.config import Settings
    >>> from xtremehub.demo.las_job import run_las_demo
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     report = run_las_demo(Settings(home=tmp), points=60_000, resolution=50.0, workers=1, progress=False)
    ...     report.ok, report.points
    (True, 60000)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import laspy
import numpy as np

from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.pointcloud import (
    LAS,
    PointCloudSlice,
    TerrainModel,
    bin_extremes,
    merge_extremes,
    partition_points,
    terrain_model,
)

__all__ = ["LasReport", "ground_height", "run_las_demo", "write_synthetic_laz"]

EXTENT = 1000.0  # metres on each side
_BLOCK = 1_000_000


def ground_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The synthetic terrain surface (metres)."""
    return np.asarray(100.0 + 20.0 * np.sin(x / 150.0) * np.cos(y / 200.0) + 0.01 * x, dtype=np.float64)


def write_synthetic_laz(path: Path, points: int, *, seed: int = 7) -> Path:
    """Write ``points`` points over an ``EXTENT`` x ``EXTENT`` area as LAZ (laspy + lazrs, 50,000-point chunks)."""
    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([0.0, 0.0, 0.0])
    strips = max(1, -(-points // _BLOCK))
    width = EXTENT / strips
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with laspy.open(tmp, mode="w", header=header, do_compress=True, laz_backend=laspy.LazBackend.Lazrs) as writer:
        for strip in range(strips):
            n = min(_BLOCK, points - strip * _BLOCK)
            x = strip * width + rng.random(n) * width
            y = np.sort(rng.random(n)) * EXTENT  # one flight line along y
            ground = rng.random(n) < 0.7
            z = ground_height(x, y) + np.where(ground, rng.normal(0.0, 0.05, n), rng.uniform(0.5, 20.0, n))
            record = laspy.ScaleAwarePointRecord.zeros(n, header=header)
            record.x, record.y, record.z = x, y, z
            record.classification = np.where(ground, 2, 5).astype(np.uint8)
            record.intensity = rng.integers(0, 4000, n).astype(np.uint16)
            record.return_number = np.ones(n, dtype=np.uint8)
            record.number_of_returns = np.ones(n, dtype=np.uint8)
            writer.write_points(record)
    tmp.replace(path)
    return path


@dataclass
class LasReport:
    url: str
    points: int
    slices: int
    preprocess_seconds: float
    seconds: float
    index_bytes: int
    object_bytes: int
    png: Path
    model: TerrainModel
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def summary_lines(self) -> list[str]:
        g = self.model.grid
        filled = int(np.isfinite(self.model.values).sum())
        lines = [
            "XtremeHub demo: LAZ point cloud -> terrain model (index once, read chunks in place)",
            f"  object       {self.url} ({self.object_bytes / 1e6:.1f} MB LAZ, {self.points:,} points)",
            f"  preprocess   {self.preprocess_seconds:.2f}s, index {self.index_bytes / 1e3:.1f} kB "
            f"({self.index_bytes / self.object_bytes:.2%} of the object)",
            f"  terrain      {self.slices} slices of whole LASzip chunks, {self.seconds:.2f}s; "
            f"{g.cols} x {g.rows} cells, {filled:,} with points",
            f"  image        {self.png}",
        ]
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())


def run_las_demo(
    settings: Settings,
    *,
    points: int = 1_000_000,
    resolution: float = 10.0,
    slices: int = 8,
    workers: int | None = None,
    progress: bool | None = None,
) -> LasReport:
    """Generate (once) a LAZ under ``settings.home/sample/las``, index it, compute the DTM, write ``dtm.png``."""
    workdir = Path(settings.home).expanduser() / "sample" / "las"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"terrain-{points}.laz"
    if not path.exists():
        write_synthetic_laz(path, points)
    t0 = time.perf_counter()
    co = CloudObject.from_path(LAS, str(path), settings=settings).preprocess()
    pre = time.perf_counter() - t0
    parts = cast("list[PointCloudSlice]", co.partition(partition_points, num_batches=slices))
    with FunctionExecutor(workers=workers, settings=settings, progress=progress) as fexec:
        t0 = time.perf_counter()
        model = terrain_model(co, fexec, resolution=resolution, slices=parts)
        seconds = time.perf_counter() - t0
    png = model.to_png(workdir / "dtm.png", title=f"DTM (lowest Z per {resolution:g} m cell)")
    whole = laspy.read(str(path))  # the check: the same model from one whole-file read
    _, flat = bin_extremes(model.grid, np.asarray(whole.x), np.asarray(whole.y), np.asarray(whole.z), "min")
    expected = merge_extremes([("min", flat)]).reshape(model.grid.rows, model.grid.cols)[::-1]
    checks = {
        "every point in exactly one slice": sum(p.point_count for p in parts) == co["point_count"] == points,
        "DTM equals laspy's whole-file read": bool(np.array_equal(model.values, expected, equal_nan=True)),
    }
    return LasReport(
        co.url,
        int(co["point_count"]),
        len(parts),
        pre,
        seconds,
        len(co.index.to_bytes()),
        co.size,
        png,
        model,
        checks,
    )
