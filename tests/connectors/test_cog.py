"""COG connector: index vs FACTS, windows vs tifffile (every pixel once), georeferencing, bytes, errors."""

from __future__ import annotations

import io
import pickle
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from xtremehub import FunctionExecutor, storage
from xtremehub.connectors import CloudObject
from xtremehub.connectors.raster import (
    COG,
    COGSlice,
    GeoReference,
    NormalizedDifference,
    band_math,
    ndvi,
    partition_grid,
    partition_strips,
    write_cog,
)
from xtremehub.errors import ConfigError, CorruptData, StaleIndex, TruncatedData
from xtremehub.storage import Store

FILES = ["cog.tif", "cogeo.tif", "nocog.tif"]
# JPEG pixels depend on the decoder (FACTS sums come from GDAL's libjpeg): compare with a tolerance
SUM_RTOL = {"cog.tif": 0.0, "cogeo.tif": 1e-4, "nocog.tif": 0.0}


@pytest.fixture
def counted() -> Iterator[list[tuple[int, int]]]:
    """Every ranged GET any store makes in this process, as (start, bytes returned)."""
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()
    original = Store.get_range

    def get_range(self: Store, key: str, start: int, end: int) -> bytes:
        data = original(self, key, start, end)
        with lock:
            calls.append((start, len(data)))
        return data

    Store.get_range = get_range  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        Store.get_range = original  # type: ignore[method-assign]


def _image_levels(fact: dict[str, Any]) -> list[list[Any]]:
    """FACTS' IFD list without the mask IFDs (subfiletype 4 and 5)."""
    return [ifd for ifd in fact["tiff_ifds"] if ifd[5] in (0, 1)]


def _local(testdata: Path, tmp_path: Path, name: str) -> str:
    target = tmp_path / name
    shutil.copy(testdata / "cog" / name, target)
    target.chmod(0o644)
    return str(target)


@pytest.mark.parametrize("name", FILES)
def test_index_matches_facts(testdata: Path, tmp_path: Path, facts: dict[str, Any], name: str) -> None:
    co = CloudObject.from_path(COG, _local(testdata, tmp_path, name)).preprocess()
    fact = facts[f"cog/{name}"]
    assert (co["width"], co["height"], co["bands"], co["dtype"]) == (
        fact["width"],
        fact["height"],
        fact["bands"],
        fact["dtype"],
    )
    assert co["crs"] == fact["crs"]
    assert co["transform"] == pytest.approx(fact["transform"], rel=1e-12)
    assert co["overviews"] == fact["overviews"]
    assert co["nodata"] == fact["nodata"]
    levels = co["levels"]
    image_ifds = _image_levels(fact)
    assert len(levels) == len(image_ifds)
    for lv, (shape, dtype, compression, tile_w, tile_h, _, n_blocks) in zip(levels, image_ifds, strict=True):
        assert (lv["height"], lv["width"]) == tuple(shape[:2])
        assert np.dtype(lv["dtype"]).name == dtype
        assert lv["compression"] == compression
        assert lv["tiled"] == (tile_w > 0)
        if lv["tiled"]:
            assert (lv["block_width"], lv["block_height"]) == (tile_w, tile_h)
        assert lv["blocks"][0] * lv["blocks"][1] == n_blocks
    assert co["cloud_optimized"] == (name != "nocog.tif")
    assert co["internal_mask"] == (name == "cogeo.tif")
    if name == "nocog.tif":  # the negative control: indexed by strip, reported as not a COG
        assert co["cog_problems"][:2] == ["not tiled", "no overviews"]
        assert co["block_size"] == [fact["blocksize"][0], fact["blocksize"][1]]
        assert co["num_blocks"] == 2667


def test_preprocessing_fetches_only_header_bytes(
    testdata: Path, tmp_path: Path, counted: list[tuple[int, int]]
) -> None:
    url = _local(testdata, tmp_path, "cog.tif")
    co = CloudObject.from_path(COG, url).preprocess()
    fetched = sum(n for _, n in counted)
    assert fetched == co["header_bytes_fetched"] == 16384  # one 16 KiB read: every IFD of a COG is there
    assert fetched < 0.03 * co.size
    # the index keeps the bytes tifffile read: a few KiB, far less than the data
    assert co["header_bytes"] < 4096
    assert len(storage.get(co.metadata_url)) < 0.02 * co.size


def _assemble(slices: list[COGSlice], shape: tuple[int, int, int], dtype: Any) -> np.ndarray:
    """Mosaic the windows, checking that every pixel is covered exactly once."""
    mosaic = np.zeros(shape, dtype=dtype)
    cover = np.zeros(shape[1:], dtype=np.int32)
    for s in slices:
        w = s.get()
        rows, cols = w.data.shape[1:]
        assert (w.row, w.col, rows, cols) == (s.row, s.col, s.height, s.width)
        mosaic[:, w.row : w.row + rows, w.col : w.col + cols] = w.data
        cover[w.row : w.row + rows, w.col : w.col + cols] += 1
        assert w.bytes_fetched == s.byte_count
    assert (cover == 1).all()
    return mosaic


GRIDS: list[dict[str, Any]] = [
    {"n_rows": 1, "n_cols": 1},
    {"n_rows": 3, "n_cols": 2},
    {"n_rows": 4, "n_cols": 5},
    {"window_tiles": 1},
    {"window_tiles": (2, 3)},
]


@pytest.mark.parametrize("name", FILES)
def test_windows_rebuild_every_level_exactly(where: Any, testdata: Path, facts: dict[str, Any], name: str) -> None:
    url = where(testdata / "cog" / name)
    co = CloudObject.from_path(COG, url).preprocess()
    fact = facts[f"cog/{name}"]
    with tifffile.TiffFile(testdata / "cog" / name) as tif:
        truth = [np.asarray(level.asarray()) for level in tif.series[0].levels]
    for k, lv in enumerate(co["levels"]):
        reference = truth[k].reshape(lv["height"], lv["width"], lv["bands"]).transpose(2, 0, 1)
        grids = GRIDS if k in (0, len(truth) - 1) else GRIDS[1:2]
        if not lv["tiled"]:  # 2,667 one-row strips: windows of one strip would be 2,667 requests
            grids = [*GRIDS[:3], {"window_tiles": (250, 1)}]
        for grid in grids:
            slices = co.partition("grid", level=k, **grid)
            segments = [seg for s in slices for seg, _, _ in s.blocks]
            assert sorted(segments) == list(range(len(segments)))  # every block in exactly one window
            mosaic = _assemble(slices, reference.shape, reference.dtype)
            assert np.array_equal(mosaic, reference), (name, k, grid)
            if k == 0:
                sums = mosaic.reshape(lv["bands"], -1).sum(axis=1, dtype=np.int64)
                assert sums.tolist() == pytest.approx(fact["band_sums"], rel=SUM_RTOL[name])
    if name == "cog.tif":  # FACTS: pixel sum of the smallest overview
        smallest = co.partition("grid", level=co["num_levels"] - 1, n_rows=2, n_cols=2)
        assert sum(int(s.get().data.sum(dtype=np.int64)) for s in smallest) == 58815656


def test_internal_mask_windows_match_tifffile(where: Any, testdata: Path) -> None:
    co = CloudObject.from_path(COG, where(testdata / "cog" / "cogeo.tif")).preprocess()
    with tifffile.TiffFile(testdata / "cog" / "cogeo.tif") as tif:
        truth = [np.asarray(level.asarray()) != 0 for level in tif.series[1].levels]
    for k, lv in enumerate(co["levels"]):
        valid = np.zeros((lv["height"], lv["width"]), dtype=np.int32)
        for s in co.partition("grid", level=k, n_rows=2, n_cols=2):
            w = s.get()
            assert w.mask is not None
            assert w.mask.shape == w.data.shape[1:]
            assert w.bytes_fetched == s.byte_count > sum(n for _, _, n in s.blocks)  # the mask tiles too
            valid[w.row : w.row + w.mask.shape[0], w.col : w.col + w.mask.shape[1]] += w.mask
        assert np.array_equal(valid, truth[k])
    assert int(valid.sum()) == truth[-1].size  # FACTS: every pixel valid (smallest level here)
    (whole,) = co.partition("grid", n_rows=1, n_cols=1)
    assert int(whole.get().mask.sum()) == 1_048_576  # FACTS: the mask marks all 1,048,576 pixels valid


def test_nocog_is_read_by_strips(where: Any, testdata: Path, facts: dict[str, Any]) -> None:
    url = where(testdata / "cog" / "nocog.tif")
    co = CloudObject.from_path(COG, url).preprocess()
    reference = tifffile.imread(testdata / "cog" / "nocog.tif")[np.newaxis]
    for params in [{"strips_per_slice": 500}, {"num_slices": 7}]:
        slices = co.partition(partition_strips, **params)
        assert all(s.width == co["width"] and not s.level.tiled for s in slices)
        assert np.array_equal(_assemble(slices, reference.shape, reference.dtype), reference)
    # a grid on a stripped file is clamped to one column of full-width strips
    slices = co.partition(partition_grid, n_rows=3, n_cols=4)
    assert len(slices) == 3
    assert int(sum(s.get().data.sum(dtype=np.int64) for s in slices)) == facts["cog/nocog.tif"]["band_sums"][0]


@pytest.mark.parametrize("name", ["cog.tif", "cogeo.tif"])
def test_window_georeferencing(testdata: Path, tmp_path: Path, facts: dict[str, Any], name: str) -> None:
    co = CloudObject.from_path(COG, _local(testdata, tmp_path, name)).preprocess()
    a, b, c, d, e, f = facts[f"cog/{name}"]["transform"]
    width, height = co["width"], co["height"]
    for k, lv in enumerate(co["levels"]):
        sx, sy = width / lv["width"], height / lv["height"]  # an overview pixel covers sx x sy full pixels
        for s in co.partition("grid", level=k, n_rows=2, n_cols=3):
            w = s.get()
            assert w.epsg == int(facts[f"cog/{name}"]["crs"].split(":")[1])
            assert w.crs == facts[f"cog/{name}"]["crs"]
            expected = (a * sx, b, c + a * sx * w.col, d, e * sy, f + e * sy * w.row)
            assert w.transform == pytest.approx(expected, rel=1e-12)
            assert (w.georef.width, w.georef.height) == (w.data.shape[2], w.data.shape[1])
    # the last window's far corner is the image's far corner
    last = co.partition("grid", n_rows=2, n_cols=2)[-1].get()
    right, bottom = last.georef.xy(last.georef.height, last.georef.width)
    assert (right, bottom) == pytest.approx((c + a * width, f + e * height), rel=1e-12)


def test_window_fetches_only_its_tiles(testdata: Path, tmp_path: Path, counted: list[tuple[int, int]]) -> None:
    co = CloudObject.from_path(COG, _local(testdata, tmp_path, "cog.tif")).preprocess()
    slices = co.partition("grid", n_rows=3, n_cols=3)
    counted.clear()
    window = slices[4].get()
    tiles = sum(n for _, _, n in slices[4].blocks)
    fetched = sum(n for _, n in counted)
    assert fetched == window.bytes_fetched == tiles
    assert fetched <= 1.05 * tiles
    # adjacent tiles travel in one request: fewer requests than tiles
    assert len(counted) == len(slices[4].ranges()) < len(slices[4].blocks)
    counted.clear()
    for s in slices:
        s.get()
    assert sum(n for _, n in counted) <= 1.05 * co.size
    assert sum(n for _, n in counted) == sum(s.byte_count for s in slices)


@pytest.mark.parametrize("name", ["cog.tif", "cogeo.tif"])
def test_slices_pickle_and_run_on_workers(testdata: Path, tmp_path: Path, name: str) -> None:
    co = CloudObject.from_path(COG, _local(testdata, tmp_path, name)).preprocess()
    slices = co.partition("grid", n_rows=2, n_cols=2)
    assert np.array_equal(pickle.loads(pickle.dumps(slices[0])).get().data, slices[0].get().data)
    with FunctionExecutor(workers=2) as fexec:
        sums = fexec.get_result(fexec.map(_window_sum, [(s,) for s in slices]))
    assert sums == [int(s.get().data.sum(dtype=np.int64)) for s in slices]


def _window_sum(piece: COGSlice) -> int:
    return int(piece.get().data.sum(dtype=np.int64))


def test_band_math_in_parallel_written_as_geotiff_and_png(where: Any, testdata: Path, tmp_path: Path) -> None:
    url = where(testdata / "cog" / "cogeo.tif")
    co = CloudObject.from_path(COG, url).preprocess()
    rgb = tifffile.imread(testdata / "cog" / "cogeo.tif").astype(np.float32)
    green, red = rgb[..., 1], rgb[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (green - red) / (green + red)
    expected[(green + red) == 0] = np.nan
    with FunctionExecutor(workers=2) as fexec:
        result = ndvi(co, red=0, nir=1, executor=fexec, n_rows=2, n_cols=2)
    assert result.windows == 4
    np.testing.assert_allclose(result.data, expected, rtol=1e-6, equal_nan=True)
    # a user function, at an overview level
    brightness = band_math(co, lambda b: b.mean(axis=0), level=2)
    overview = tifffile.imread(testdata / "cog" / "cogeo.tif", level=2).astype(np.float32)
    np.testing.assert_allclose(brightness.data, overview.mean(axis=2), rtol=1e-6)
    assert brightness.georef.transform == pytest.approx(co.partition("grid", level=2)[0].get().transform)

    out = result.to_cog(url.rsplit("/", 1)[0] + "/ndvi.tif", tile=256)  # beside the source, local or S3
    back = CloudObject.from_path(COG, out).preprocess()
    assert (back["epsg"], back["width"], back["height"], back["dtype"]) == (3857, 1024, 1024, "float32")
    assert back["transform"] == pytest.approx(co["transform"], rel=1e-12)
    assert back["overviews"] == [2, 4]
    assert back["tiled"]
    with tifffile.TiffFile(io.BytesIO(storage.get(out))) as tif:
        np.testing.assert_array_equal(tif.pages[0].asarray(), result.data)
        assert tif.geotiff_metadata["ProjectedCSTypeGeoKey"] == 3857
    png = result.to_png(str(tmp_path / "ndvi.png"), title="NDVI-like (G-R)/(G+R)")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as img:
        assert img.width > img.height  # the colour bar sits beside the square image


def test_window_to_file_is_a_georeferenced_tiff(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(COG, _local(testdata, tmp_path, "cog.tif")).preprocess()
    piece = co.partition("grid", n_rows=2, n_cols=2)[3]
    window = piece.get()
    out = piece.to_file(tmp_path / "w.tif")
    assert np.array_equal(tifffile.imread(out), window.data[0])
    back = CloudObject.from_path(COG, str(out)).preprocess()
    assert back["transform"] == pytest.approx(list(window.transform or ()), rel=1e-12)
    assert back["epsg"] == 32621
    assert b"".join(piece.iter_chunks()) == window.data.tobytes()


@pytest.mark.parametrize(
    "georef",
    [
        GeoReference((0.001, 0.0002, -3.5, 0.0001, -0.001, 40.2), epsg=4326),  # rotated, geographic
        GeoReference((5.0, 0.0, 1000.0, 0.0, -5.0, 2000.0)),  # no CRS
    ],
)
def test_written_georeferencing_reads_back(tmp_path: Path, georef: GeoReference) -> None:
    pixels = np.arange(70 * 90, dtype="float32").reshape(70, 90)
    sized = replace(georef, width=90, height=70)
    url = write_cog(str(tmp_path / "g.tif"), pixels, sized, nodata=-1.5, tile=32)
    co = CloudObject.from_path(COG, url).preprocess()
    assert co["transform"] == pytest.approx(list(georef.transform or ()), rel=1e-12)
    assert (co["epsg"], co["nodata"]) == (georef.epsg, -1.5)
    (window,) = [s.get() for s in co.partition("grid", n_rows=2, n_cols=2)][3:]
    assert window.transform == pytest.approx(sized.window(window.row, window.col).transform, rel=1e-12)
    assert np.array_equal(window.data[0], pixels[window.row :, window.col :])


def test_normalized_difference_checks_bands() -> None:
    with pytest.raises(ConfigError, match="band 3"):
        NormalizedDifference(3, 0)(np.zeros((2, 4, 4), dtype=np.float32))


# --- bad input ------------------------------------------------------------------------


def test_bad_byte_order_mark(testdata: Path, tmp_path: Path) -> None:
    url = _local(testdata, tmp_path, "cog.tif")
    raw = bytearray(Path(url).read_bytes())
    raw[:2] = b"XX"
    Path(url).write_bytes(raw)
    with pytest.raises(CorruptData, match="bad byte-order mark") as err:
        CloudObject.from_path(COG, url).preprocess()
    assert err.value.url == url
    assert err.value.offset == 0


@pytest.mark.parametrize("name", ["cog.tif", "nocog.tif"])
def test_truncated_file_names_the_block_past_eof(testdata: Path, tmp_path: Path, name: str) -> None:
    url = _local(testdata, tmp_path, name)
    Path(url).write_bytes(Path(url).read_bytes()[:400_000])
    with pytest.raises(TruncatedData, match=r"level \d+ (tile|strip) \d+ \(row \d+, col \d+\).*past the end") as err:
        CloudObject.from_path(COG, url).preprocess()
    assert err.value.offset > 0


def test_truncated_header(testdata: Path, tmp_path: Path) -> None:
    url = _local(testdata, tmp_path, "cog.tif")
    Path(url).write_bytes(Path(url).read_bytes()[:300])  # inside the first IFD
    with pytest.raises(CorruptData, match=url):
        CloudObject.from_path(COG, url).preprocess()


@pytest.mark.parametrize(("name", "tile"), [("cog.tif", 5), ("cogeo.tif", 2)])
def test_corrupt_tile_is_named_with_its_offset(testdata: Path, tmp_path: Path, name: str, tile: int) -> None:
    url = _local(testdata, tmp_path, name)
    with tifffile.TiffFile(url) as tif:
        offset, count = tif.pages[0].dataoffsets[tile], tif.pages[0].databytecounts[tile]
    raw = bytearray(Path(url).read_bytes())
    raw[offset : offset + count] = bytes(range(256)) * (count // 256) + bytes(count % 256)
    Path(url).write_bytes(raw)
    co = CloudObject.from_path(COG, url).preprocess()  # only the header is read: the damage shows at get()
    victim = next(s for s in co.partition("grid", window_tiles=1) if s.blocks[0][0] == tile)
    with pytest.raises(CorruptData, match=rf"level 0 tile {tile} \(row \d, col \d\) cannot be decoded") as err:
        victim.get()
    assert err.value.offset == offset


def test_changed_object_and_bad_parameters(testdata: Path, tmp_path: Path) -> None:
    url = _local(testdata, tmp_path, "cog.tif")
    co = CloudObject.from_path(COG, url).preprocess()
    with pytest.raises(ConfigError, match="level 9"):
        co.partition("grid", level=9)
    with pytest.raises(ConfigError, match="not both"):
        co.partition("grid", n_rows=2, window_tiles=2)
    with pytest.raises(ConfigError, match="strips_per_slice or num_slices"):
        co.partition("strips")
    with Path(url).open("ab") as fh:
        fh.write(b"\0" * 10)
    with pytest.raises(StaleIndex):
        co.partition("grid")


# --- TIFF variants written with tifffile ------------------------------------------------

VARIANTS: list[dict[str, Any]] = [
    {"tile": (32, 48), "planarconfig": "separate", "photometric": "minisblack", "compression": "zlib", "predictor": 2},
    {"tile": (16, 16), "bigtiff": True, "byteorder": ">", "compression": "lzw", "photometric": "rgb"},
    {"rowsperstrip": 7, "compression": "zlib", "photometric": "rgb"},
    {"tile": (64, 64), "compression": "zstd", "photometric": "rgb", "dtype": "float32"},
]


@pytest.mark.parametrize("options", VARIANTS, ids=["separate-predictor", "bigtiff-bigendian-lzw", "strips", "float"])
def test_tiff_variants_rebuild_exactly(tmp_path: Path, options: dict[str, Any]) -> None:
    options = dict(options)
    dtype = options.pop("dtype", "uint16")
    bigtiff, byteorder = options.pop("bigtiff", False), options.pop("byteorder", "<")
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 60000, size=(3, 100, 130)).astype(dtype)
    separate = options.get("planarconfig") == "separate"
    path = tmp_path / "v.tif"
    with tifffile.TiffWriter(path, bigtiff=bigtiff, byteorder=byteorder) as tif:
        tif.write(pixels if separate else np.moveaxis(pixels, 0, -1), metadata=None, **options)
    co = CloudObject.from_path(COG, str(path)).preprocess()
    assert co["bands"] == 3
    assert co["tiled"] == ("tile" in options)
    for grid in [{"n_rows": 2, "n_cols": 3}, {"window_tiles": 1}]:
        slices = co.partition("grid", **grid)
        assert np.array_equal(_assemble(slices, pixels.shape, pixels.dtype), pixels)


def test_empty_tiles_are_filled_with_nodata(tmp_path: Path) -> None:
    path = tmp_path / "n.tif"
    pixels = np.arange(64 * 64, dtype="int16").reshape(64, 64) + 1
    tifffile.imwrite(path, pixels, tile=(32, 32), extratags=[(42113, "s", 0, "-9999", False)])
    co = CloudObject.from_path(COG, str(path)).preprocess()
    assert co["nodata"] == -9999
    (whole,) = co.partition("grid")
    # a sparse COG stores absent tiles with byte count 0: make tile 1 absent
    sparse = replace(whole, blocks=tuple((s, o, 0 if s == 1 else n) for s, o, n in whole.blocks))
    window = sparse.get()
    assert (window.data[0, :32, 32:] == -9999).all()
    expected = pixels.copy()
    expected[:32, 32:] = -9999
    assert np.array_equal(window.data[0], expected)
    assert window.bytes_fetched == whole.byte_count - whole.blocks[1][2]
