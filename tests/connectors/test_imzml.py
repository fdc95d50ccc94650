"""imzML connector against FACTS and pyimzML: every strategy, local disk and SeaweedFS S3."""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyimzml.ImzMLParser import ImzMLParser, getionimage

from xtremehub import storage
from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.imaging import (
    ImzML,
    ImzMLSlice,
    Spectra,
    ion_images,
    partition_bytes,
    partition_spectra,
    partition_tiles,
    write_synthetic_imzml,
)

FILES = ["Example_Continuous", "Example_Processed", "pewlib_test"]
STRATEGIES: list[tuple[str, dict[str, Any]]] = [
    *[("spectra", {"num_batches": n}) for n in (1, 2, 3, 4, 7, 20)],
    ("spectra", {"spectra_per_slice": 2}),
    *[("bytes", {"bytes_per_slice": n}) for n in (70_000, 140_000, 10**9)],
    *[("tiles", p) for p in ({"tile_width": 1}, {"tile_width": 2}, {"tile_width": 2, "tile_height": 3})],
    ("tiles", {"tiles": (2, 1)}),
]


@pytest.fixture
def facts(testdata: Path) -> dict[str, Any]:
    return json.loads((testdata / "FACTS.json").read_text())


@contextmanager
def pyimzml(path: str | Path) -> Iterator[ImzMLParser]:
    """pyimzML's reader (it warns about ontology names in pewlib_test: not our concern here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with ImzMLParser(str(path)) as parser:
            yield parser


def _reference(path: str | Path) -> tuple[list[tuple[int, int, int]], list[tuple[np.ndarray, np.ndarray]]]:
    with pyimzml(path) as p:
        return list(p.coordinates), [tuple(map(np.asarray, p.getspectrum(i))) for i in range(len(p.coordinates))]


def _check_slices(slices: Sequence[Any], path: str | Path) -> list[Spectra]:
    """Every spectrum exactly once, arrays and coordinates identical to pyimzML's."""
    coords, spectra = _reference(path)
    batches = [s.get() for s in slices]
    seen = np.concatenate([b.indices for b in batches]) if batches else np.zeros(0)
    assert sorted(seen.tolist()) == list(range(len(coords)))
    for batch in batches:
        for i, index in enumerate(batch.indices.tolist()):
            assert tuple(batch.coords[i].tolist()) == coords[index]
            mz, ints = batch.spectrum(i)
            np.testing.assert_array_equal(mz, spectra[index][0])
            np.testing.assert_array_equal(ints, spectra[index][1])
    return batches


@pytest.mark.parametrize("name", FILES)
def test_index_matches_facts(testdata: Path, tmp_path: Path, facts: dict[str, Any], name: str) -> None:
    path = testdata / "imzml" / f"{name}.imzML"
    co = CloudObject.from_path(ImzML, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    fact = facts[f"imzml/{name}.imzML"]
    assert co["num_spectra"] == fact["spectra"]
    assert co["declared_spectra"] == fact["spectrumList_count_attr"]
    assert co["mode"] == fact["mode"]
    assert co["mz_values_total"] == fact["mz_values_total"]
    assert co["ibd_size"] == fact["ibd_size"]
    assert co["mz_dtypes"] == [np.dtype(fact["mz_dtype"]).newbyteorder("<").str]
    assert co["intensity_dtypes"] == [np.dtype(fact["intensity_dtype"]).newbyteorder("<").str]
    assert co["ibd_url"] == str(path.with_suffix(".ibd"))
    batch = co.partition(partition_spectra, num_batches=1)[0].get()
    assert batch.coords[0].tolist() == fact["coordinates_first"]
    assert batch.coords[-1].tolist() == fact["coordinates_last"]
    mz0, ints0 = batch.spectrum(0)
    assert [float(mz0.min()), float(mz0.max())] == pytest.approx(fact["spectrum0_mz_range"])
    assert float(ints0.sum(dtype=np.float64)) == pytest.approx(fact["spectrum0_intensity_sum"], rel=1e-12)
    assert float(batch.intensity_sums().sum()) == pytest.approx(fact["total_intensity_sum"], rel=1e-12)
    if fact.get("ibd_sha1_declared"):
        assert co["checksum"] == "sha1 verified"
        assert co["uuid"] == fact["uuid_declared"] == fact["ibd_uuid_first16_hex"]
    # a compact index: one 62-byte row per spectrum plus a small JSON header
    assert storage.head(co.metadata_url).size < 2000 + 62 * co["num_spectra"]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize(("strategy", "params"), STRATEGIES)
def test_every_strategy_reads_every_spectrum_once(
    testdata: Path, tmp_path: Path, name: str, strategy: str, params: dict[str, Any]
) -> None:
    path = testdata / "imzml" / f"{name}.imzML"
    co = CloudObject.from_path(ImzML, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    slices = co.partition(strategy, **params)
    if strategy == "bytes":
        assert all(s.nbytes <= params["bytes_per_slice"] for s in slices)
    if strategy == "tiles":
        for s in slices:  # each slice's pixels fit in one tile
            width = params.get("tile_width") or -(-co["grid"][0] // params["tiles"][0])
            height = params.get("tile_height") or params.get("tile_width") or -(-co["grid"][1] // params["tiles"][1])
            assert len(set(((s.rows["x"] - 1) // width).tolist())) == 1
            assert len(set(((s.rows["y"] - 1) // height).tolist())) == 1
    batches = _check_slices(slices, path)
    fetched = sum(b.fetched_bytes for b in batches)
    assert fetched == sum(s.nbytes for s in slices)
    if co["mode"] == "continuous":  # the shared m/z array once per slice, nothing else twice
        assert fetched == co["ibd_size"] - 16 + (len(slices) - 1) * 4 * 8399
    else:
        assert fetched == co["array_bytes"] == co["ibd_size"] - 16


def test_bytes_strategy_names_a_spectrum_over_the_limit(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(
        ImzML, str(testdata / "imzml" / "Example_Processed.imzML"), metadata_url=str(tmp_path / "i")
    ).preprocess()
    with pytest.raises(ValueError, match=r"spectrum 0 at \(1, 1, 1\) needs 67192 bytes"):
        co.partition(partition_bytes, bytes_per_slice=50_000)


def test_continuous_slices_share_one_mz_array(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(
        ImzML, str(testdata / "imzml" / "Example_Continuous.imzML"), metadata_url=str(tmp_path / "i")
    ).preprocess()
    (only,) = co.partition(partition_spectra, num_batches=1)
    batch = only.get()
    assert batch.continuous
    assert batch.mz.shape == (8399,)
    assert batch.intensity_matrix().shape == (9, 8399)
    assert batch.fetched_bytes == co["ibd_size"] - 16  # m/z once + 9 intensity arrays, one coalesced read
    clone = pickle.loads(pickle.dumps(only))
    assert isinstance(clone, ImzMLSlice)
    np.testing.assert_array_equal(clone.get().intensities, batch.intensities)
    assert b"".join(only.iter_chunks()) == (testdata / "imzml" / "Example_Continuous.ibd").read_bytes()[16:]


@pytest.mark.s3
@pytest.mark.parametrize("name", FILES)
def test_on_s3_with_a_case_variant_ibd(testdata: Path, s3_root: str, s3_default: Settings, name: str) -> None:
    src = testdata / "imzml" / name
    url = f"{s3_root}{name}.imzML"
    storage.put(url, src.with_suffix(".imzML").read_bytes())
    storage.put(f"{s3_root}{name}.Ibd", src.with_suffix(".ibd").read_bytes())
    co = CloudObject.from_path(ImzML, url).preprocess()
    assert co.metadata_url == f"{s3_root}.xhub/{name}.imzML.imzml.xhidx"
    assert storage.exists(co.metadata_url)
    assert co["ibd_url"] == f"{s3_root}{name}.Ibd"
    plans: list[tuple[str, dict[str, Any]]] = [
        ("spectra", {"num_batches": 3}),
        ("bytes", {"bytes_per_slice": 140_000}),
        ("tiles", {"tile_width": 2}),
    ]
    for strategy, params in plans:
        _check_slices(co.partition(strategy, **params), src.with_suffix(".imzML"))


def _targets(path: Path, count: int) -> list[float]:
    """m/z values well inside spectrum 0's range (pyimzML's window search misbehaves at the edges)."""
    with pyimzml(path) as p:
        mz = np.asarray(p.getspectrum(0)[0])
    return np.linspace(mz[len(mz) // 10], mz[-len(mz) // 10], count).tolist()


def _pyimzml_images(path: Path, targets: Sequence[float], ppm: float) -> np.ndarray:
    with pyimzml(path) as p:
        return np.stack([getionimage(p, t, tol=t * ppm * 1e-6) for t in targets])


@pytest.mark.parametrize("name", FILES)
def test_ion_images_equal_pyimzml(testdata: Path, tmp_path: Path, name: str) -> None:
    path = testdata / "imzml" / f"{name}.imzML"
    co = CloudObject.from_path(ImzML, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    targets = _targets(path, 7)
    for ppm in (5.0, 200.0):
        expected = _pyimzml_images(path, targets, ppm)
        assert expected.any()
        for strategy, params in [("spectra", {"num_batches": 2}), ("tiles", {"tile_width": 2})]:
            got = ion_images(co, targets, ppm, strategy=strategy, **params)
            assert got.images.shape == expected.shape
            np.testing.assert_allclose(got.images, expected, rtol=1e-5)


@pytest.mark.slow
def test_ion_images_on_executor_and_png(tmp_path: Path) -> None:
    ds = write_synthetic_imzml(str(tmp_path / "syn"), width=9, height=7, n_mz=3000, mode="processed")
    co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    targets = list(ds.peaks[:4])
    with FunctionExecutor(workers=2, progress=False) as fexec:
        got = ion_images(co, targets, 50.0, executor=fexec, strategy="tiles", tile_width=4)
    np.testing.assert_allclose(got.images, _pyimzml_images(Path(ds.imzml_url), targets, 50.0), rtol=1e-5)
    png = got.save_png(tmp_path / "ions.png", columns=2)
    from PIL import Image

    with Image.open(png) as img:
        assert img.format == "PNG"
        assert img.width > 2 * 100
        assert img.height > 2 * 100


@pytest.mark.parametrize("mode", ["continuous", "processed"])
def test_synthetic_data_reads_the_same_in_pyimzml(tmp_path: Path, mode: str) -> None:
    ds = write_synthetic_imzml(str(tmp_path / "syn"), width=5, height=4, n_mz=300, mode=mode)
    co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    assert (co["mode"], co["num_spectra"], co["grid"], co["checksum"]) == (mode, 20, [5, 4], "sha1 verified")
    _check_slices(co.partition(partition_tiles, tiles=(2, 2)), ds.imzml_url)


@pytest.mark.parametrize("name", FILES)
def test_ion_windows_include_both_ends_exactly(testdata: Path, tmp_path: Path, name: str) -> None:
    """ppm 0 on m/z values present in the data: exactly those points, as pyimzML's bisection finds them."""
    path = testdata / "imzml" / f"{name}.imzML"
    co = CloudObject.from_path(ImzML, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    with pyimzml(path) as p:
        mz, ints = map(np.asarray, p.getspectrum(0))
        x, y, _ = p.coordinates[0]
    picks = np.flatnonzero(ints > 0)[[5, -5]].tolist()
    assert len(set(mz[picks].tolist())) == len(picks)  # distinct m/z values, each present once
    targets = [float(mz[k]) for k in picks]
    got = ion_images(co, targets, 0.0, strategy="spectra", num_batches=2)
    np.testing.assert_array_equal(got.images[:, y - 1, x - 1], ints[picks])
    # pyimzML's getionimage adds a spectrum's first intensity when the window lies below its m/z
    # range (its _bisect_spectrum returns (0, 0)), so compare with a masked sum over its spectra instead
    expected = np.zeros_like(got.images)
    with pyimzml(path) as p:
        for i, (px, py, _) in enumerate(p.coordinates):
            smz, sints = map(np.asarray, p.getspectrum(i))
            for k, t in enumerate(targets):
                expected[k, py - 1, px - 1] = sints[(smz >= t) & (smz <= t)].sum(dtype=np.float64)
    np.testing.assert_array_equal(got.images, expected)


def _array_xml(kind: str, dtype_acc: str, offset: int, length: int, itemsize: int) -> str:
    return (
        f'<binaryDataArray><cvParam accession="{kind}"/><cvParam accession="{dtype_acc}"/>'
        f'<cvParam accession="MS:1000576"/><cvParam accession="IMS:1000102" value="{offset}"/>'
        f'<cvParam accession="IMS:1000103" value="{length}"/>'
        f'<cvParam accession="IMS:1000104" value="{length * itemsize}"/><binary/></binaryDataArray>'
    )


def test_inline_params_and_mixed_dtypes(tmp_path: Path) -> None:
    """Arrays described inline (no param groups), float32 and float64 intensities in one slice."""
    mz = np.array([100.0, 200.0, 300.0], dtype="<f8")
    first, second = np.array([1, 2, 3], dtype="<f4"), np.array([4.5, 5.5, 6.5], dtype="<f8")
    ibd = bytes(range(16)) + mz.tobytes() + first.tobytes() + mz.tobytes() + second.tobytes()
    spectra = []
    offsets = [(16, 40), (52, 76)]
    int_types = [("MS:1000521", 4), ("MS:1000523", 8)]
    for n, ((mz_at, int_at), (int_acc, size)) in enumerate(zip(offsets, int_types, strict=True)):
        spectra.append(
            f'<spectrum index="{n}"><scanList><scan><userParam name="position x" value="{n + 1}"/>'
            f'<userParam name="position y" value="1"/><userParam name="position z" value="2"/></scan></scanList>'
            f"<binaryDataArrayList>{_array_xml('MS:1000514', 'MS:1000523', mz_at, 3, 8)}"
            f"{_array_xml('MS:1000515', int_acc, int_at, 3, size)}</binaryDataArrayList></spectrum>"
        )
    xml = (
        '<mzML xmlns="http://psi.hupo.org/ms/mzml"><fileDescription><fileContent>'
        '<cvParam accession="IMS:1000031"/>'
        '<cvParam accession="IMS:1000080" value="{00010203-0405-0607-0809-0a0b0c0d0e0f}"/>'
        f'</fileContent></fileDescription><run><spectrumList count="2">{"".join(spectra)}</spectrumList></run></mzML>'
    )
    (tmp_path / "m.imzML").write_text(xml)
    (tmp_path / "m.ibd").write_bytes(ibd)
    co = CloudObject.from_path(ImzML, str(tmp_path / "m.imzML")).preprocess()
    assert co["intensity_dtypes"] == ["<f4", "<f8"]
    assert co["z_values"] == [2]
    batch = co.partition(partition_spectra, num_batches=1)[0].get()
    assert batch.coords.tolist() == [[1, 1, 2], [2, 1, 2]]
    assert batch.intensities.dtype == np.float64
    np.testing.assert_array_equal(batch.intensities, [1, 2, 3, 4.5, 5.5, 6.5])
    np.testing.assert_array_equal(batch.spectrum(1)[0], mz)
    images = ion_images(co, [200.0], 1.0, z=2).images
    np.testing.assert_array_equal(images, [[[2.0, 5.5]]])
    tiles = [s.get() for s in co.partition(partition_tiles, tile_width=1)]  # pyimzML needs param groups
    assert [t.indices.tolist() for t in tiles] == [[0], [1]]
    np.testing.assert_array_equal(tiles[1].intensities, second)


@pytest.mark.parametrize("continuous", [False, True])
def test_window_sums_on_unsorted_spectra(continuous: bool) -> None:
    """Spectra not sorted by m/z take the sorting path and still sum every point in each window."""
    from xtremehub.connectors.formats.imaging.ion_images import batch_ion_values, windows

    rng = np.random.default_rng(3)
    mz = rng.uniform(100, 200, 3 * 50).astype(np.float32)
    ints = rng.uniform(0, 10, 3 * 50).astype(np.float32)
    if continuous:
        mz = mz[:50]
    offsets = np.array([0, 50, 100, 150])
    batch = Spectra(np.arange(3), np.ones((3, 3), dtype=np.int32), mz, ints, offsets, continuous)
    targets = [120.0, 150.0, 199.0]
    lows, highs = windows(targets, 20_000)
    got = batch_ion_values(batch, lows, highs)
    for i in range(3):
        smz, sints = batch.spectrum(i)
        for k in range(3):
            inside = (smz.astype(np.float64) >= lows[k]) & (smz.astype(np.float64) <= highs[k])
            assert got[k, i] == pytest.approx(sints[inside].sum(dtype=np.float64), rel=1e-12)
    assert got.any()


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("batch_bytes", [1, 20_000, 10**9])
def test_iteration_in_batches_gives_what_get_gives(
    testdata: Path, tmp_path: Path, name: str, batch_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = testdata / "imzml" / f"{name}.imzML"
    co = CloudObject.from_path(ImzML, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    for s in co.partition(partition_spectra, num_batches=3) + co.partition(partition_tiles, tile_width=2):
        whole = s.get()
        batches = list(s.iter_spectra(batch_bytes))
        assert len(batches) == {1: len(s), 10**9: 1}.get(batch_bytes, len(batches))
        assert 1 <= len(batches) <= len(s)
        assert sum(len(b) for b in batches) == len(whole)
        records = list(s.iter_records(batch_bytes))
        assert [r[0] for r in records] == whole.indices.tolist()
        for i, (_, coords, mz, intensities) in enumerate(records):
            want_mz, want_int = whole.spectrum(i)
            np.testing.assert_array_equal(coords, whole.coords[i])
            np.testing.assert_array_equal(mz, want_mz)
            np.testing.assert_array_equal(intensities, want_int)
        chunks = b"".join(s.iter_chunks())
        monkeypatch.setattr("xtremehub.connectors.formats.imaging.imzml_slice.BATCH_BYTES", batch_bytes)
        assert b"".join(s.iter_chunks()) == chunks  # read in batches of parts, the same bytes
        monkeypatch.undo()
