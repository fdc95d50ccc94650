"""Partial .ibd reads: only the values inside m/z windows, identical to filtering whole spectra."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.imaging import ImzML, read_window_peaks, write_synthetic_imzml
from xtremehub.storage import iostats
from xtremehub.storage.access import PROCESS_DEFAULTS


def _expected(co: CloudObject, lows: np.ndarray, highs: np.ndarray) -> set[tuple[int, float, float]]:
    out = set()
    for data_slice in co.partition("spectra", num_batches=1):
        batch = data_slice.get()
        for i in range(len(batch)):
            mz, ints = batch.spectrum(i)
            at = np.searchsorted(lows, mz, "right") - 1
            keep = (at >= 0) & (mz <= highs[np.maximum(at, 0)])
            out |= {(int(batch.indices[i]), float(m), float(v)) for m, v in zip(mz[keep], ints[keep], strict=True)}
    return out


@pytest.mark.parametrize("mode", ["continuous", "processed"])
@pytest.mark.parametrize(("gap", "chunk"), [(0, 1 << 26), (4096, 1 << 26), (0, 3000)])
def test_window_reads_equal_whole_reads(mode: str, gap: int, chunk: int) -> None:
    ds = write_synthetic_imzml(f"mem://wr/{mode}{gap}{chunk}", width=7, height=5, n_mz=3000, mode=mode)
    co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    lows = np.array([150.0, 300.0, 300.5, 811.0])
    highs = np.array([150.2, 300.1, 302.0, 811.01])
    expected = _expected(co, lows, highs)
    got: set[tuple[int, float, float]] = set()
    fetched = 0
    for data_slice in co.partition("spectra", num_batches=3):
        peaks = read_window_peaks(data_slice, lows, highs, gap_bytes=gap, chunk_bytes=chunk)
        got |= set(
            zip(
                peaks.spectrum.tolist(),
                peaks.mz.astype(float).tolist(),
                peaks.intensity.astype(float).tolist(),
                strict=False,
            )
        )
        fetched += peaks.fetched_bytes
    assert got == expected
    assert len(expected) > 0
    whole = read_window_peaks(co.partition("spectra", num_batches=1)[0], lows, highs, whole=True)
    assert (
        set(
            zip(
                whole.spectrum.tolist(),
                whole.mz.astype(float).tolist(),
                whole.intensity.astype(float).tolist(),
                strict=True,
            )
        )
        == expected
    )
    assert fetched < ds.ibd_size * (0.25 if mode == "continuous" else 0.75)


def test_window_reads_count_bytes_like_the_store() -> None:
    ds = write_synthetic_imzml("mem://wr/count", width=6, height=6, n_mz=2000, mode="continuous")
    co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    (data_slice,) = co.partition("spectra", num_batches=1)
    before = iostats.snapshot()
    peaks = read_window_peaks(data_slice, np.array([400.0]), np.array([401.0]), gap_bytes=0)
    read = iostats.snapshot().bytes_read - before.bytes_read
    assert read == peaks.fetched_bytes
    assert peaks.fetched_bytes < ds.ibd_size / 10


def test_window_reads_empty_windows() -> None:
    ds = write_synthetic_imzml("mem://wr/none", width=2, height=2, n_mz=100, mode="processed")
    co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    (data_slice,) = co.partition("spectra", num_batches=1)
    peaks = read_window_peaks(data_slice, np.array([5000.0]), np.array([5001.0]), gap_bytes=0, max_requests=100)
    assert len(peaks.mz) == 0
    assert peaks.fetched_bytes == int(data_slice.rows["mz_bytes"].sum())  # the m/z arrays only
    # by default small gaps between m/z arrays are read through (fewer requests), never past the .ibd
    coalesced = read_window_peaks(data_slice, np.array([5000.0]), np.array([5001.0]))
    assert int(data_slice.rows["mz_bytes"].sum()) < coalesced.fetched_bytes <= ds.ibd_size


@pytest.mark.s3
@pytest.mark.parametrize("whole", [False, True])
def test_explicit_settings_reach_partial_and_whole_reads(whole: bool, s3_root: str, s3_settings: Settings) -> None:
    """No process-wide S3 settings and a slice without its own: ``settings=`` opens the .ibd either way."""
    ds = write_synthetic_imzml(f"{s3_root}wr/ds", width=4, height=3, n_mz=500, settings=s3_settings)
    co = CloudObject.from_path(ImzML, ds.imzml_url, settings=s3_settings).preprocess()
    lows, highs = np.array([150.0, 300.0]), np.array([150.2, 302.0])
    carried = co.partition("spectra", num_batches=1)[0]
    bare = dataclasses.replace(carried, access=PROCESS_DEFAULTS)
    got = read_window_peaks(bare, lows, highs, whole=whole, settings=s3_settings)
    expected = read_window_peaks(carried, lows, highs, whole=whole)
    assert len(got.mz) > 0
    assert got.mz.tolist() == expected.mz.tolist()
    assert got.intensity.tolist() == expected.intensity.tolist()
