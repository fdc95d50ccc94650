"""Terrain models over LAS/LAZ/COPC slices against NumPy over laspy's whole read."""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest
import tifffile

from xtremehub.compute import FunctionExecutor
from xtremehub.connectors import CloudObject
from xtremehub.connectors.pointcloud import LAS, Grid, partition_grid, partition_points, terrain_model
from xtremehub.errors import ConfigError


def _reference(path: Path, resolution: float, stat: str) -> np.ndarray:
    """Per-cell min/max Z computed independently with a sort over laspy's whole read."""
    las = laspy.read(str(path))
    x, y, z = np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)
    h = las.header
    grid = Grid.with_resolution(h.mins[0], h.mins[1], h.maxs[0], h.maxs[1], resolution)
    col = np.clip(np.floor((x - grid.xmin) / (grid.xmax - grid.xmin) * grid.cols), 0, grid.cols - 1).astype(int)
    row = np.clip(np.floor((y - grid.ymin) / (grid.ymax - grid.ymin) * grid.rows), 0, grid.rows - 1).astype(int)
    cell = row * grid.cols + col
    out = np.full(grid.rows * grid.cols, np.nan)
    order = np.lexsort((z if stat == "min" else -z, cell))
    first = np.unique(cell[order], return_index=True)[1]
    out[cell[order][first]] = z[order][first]
    return out.reshape(grid.rows, grid.cols)[::-1]


@pytest.mark.parametrize(
    ("name", "resolution"), [("autzen_trim.laz", 25.0), ("lone-star.copc.laz", 2.0), ("test1_4.las", 50.0)]
)
@pytest.mark.parametrize("stat", ["min", "max"])
def test_model_matches_whole_read(testdata: Path, tmp_path: Path, name: str, resolution: float, stat: str) -> None:
    path = testdata / "las" / name
    co = CloudObject.from_path(LAS, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    expected = _reference(path, resolution, stat)
    assert np.isfinite(expected).sum() > 4
    for slices in (
        co.partition(partition_points, num_batches=3),
        co.partition(partition_grid, cols=2, rows=2),
    ):
        model = terrain_model(co, resolution=resolution, stat=stat, slices=slices)
        assert model.values.shape == expected.shape
        np.testing.assert_array_equal(model.values, expected)


def test_model_on_executor_and_files(testdata: Path, tmp_path: Path) -> None:
    path = testdata / "las" / "autzen_trim.laz"
    co = CloudObject.from_path(LAS, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    with FunctionExecutor(workers=2, progress=False) as fexec:
        model = terrain_model(co, fexec, resolution=10.0)
    np.testing.assert_array_equal(model.values, _reference(path, 10.0, "min"))
    tif = model.to_geotiff(tmp_path / "dtm.tif")
    with tifffile.TiffFile(tif) as tf:
        page = tf.pages[0]
        np.testing.assert_array_equal(page.asarray(), model.values.astype(np.float32))
        assert page.tags["ModelPixelScaleTag"].value == (10.0, 10.0, 0.0)
        tie = page.tags["ModelTiepointTag"].value
        assert tie[3] == pytest.approx(co["mins"][0])
        assert tie[4] == pytest.approx(model.grid.ymax)
        geo = tf.geotiff_metadata
        with path.open("rb") as fh:
            header = laspy.LasHeader.read_from(fh)
        keys = header.vlrs.get("GeoKeyDirectoryVlr")[0]
        assert geo["KeyDirectoryVersion"] == 1
        raw_keys = tuple(np.frombuffer(keys.record_data_bytes(), "<u2").tolist())
        assert tuple(page.tags["GeoKeyDirectoryTag"].value) == raw_keys  # the LAS GeoKeys, verbatim
        assert len(raw_keys) == 4 * (len(keys.geo_keys) + 1)
        assert "GTModelTypeGeoKey" in geo
    png = model.to_png(tmp_path / "dtm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert model.transform == (co["mins"][0], 10.0, 0.0, model.grid.ymax, 0.0, -10.0)


def test_bad_stat(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(LAS, str(testdata / "las" / "simple.las"), metadata_url=str(tmp_path / "i")).preprocess()
    with pytest.raises(ConfigError, match="stat must be one of"):
        terrain_model(co, resolution=10.0, stat="mean")
    with pytest.raises(ConfigError, match="resolution must be > 0"):
        terrain_model(co, resolution=0)


@pytest.mark.timeout(120)
def test_workers_forked_after_parent_decompressed(testdata: Path, tmp_path: Path) -> None:
    """Reading slices in the parent first must not wedge forked workers (no thread pool crosses a fork)."""
    path = testdata / "las" / "lone-star.copc.laz"
    co = CloudObject.from_path(LAS, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    slices = co.partition(partition_points, num_batches=5)
    assert sum(len(s.get()) for s in slices) == co["point_count"]
    with FunctionExecutor(workers=2, progress=False) as fexec:
        model = terrain_model(co, fexec, resolution=2.0, slices=slices)
    np.testing.assert_array_equal(model.values, _reference(path, 2.0, "min"))
