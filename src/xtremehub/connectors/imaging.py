"""Imaging connectors: imzML mass-spectrometry imaging (with ion images).

Example:
    >>> from xtremehub.connectors.imaging import ImzML, partition_tiles
    >>> ImzML.name, sorted(ImzML.strategies)
    ('imzml', ['bytes', 'spectra', 'tiles'])
"""

from __future__ import annotations

from xtremehub.connectors.formats.imaging.imzml import (
    ImzML,
    find_ibd,
    partition_bytes,
    partition_spectra,
    partition_tiles,
    spectra_table,
)
from xtremehub.connectors.formats.imaging.imzml_slice import ImzMLSlice, Spectra
from xtremehub.connectors.formats.imaging.ion_images import IonImages, ion_images, slice_ion_values, window_sums
from xtremehub.connectors.formats.imaging.synthetic import SyntheticImzML, write_synthetic_imzml
from xtremehub.connectors.formats.imaging.window_reads import WindowPeaks, in_windows, read_window_peaks

__all__ = [
    "ImzML",
    "ImzMLSlice",
    "IonImages",
    "Spectra",
    "SyntheticImzML",
    "WindowPeaks",
    "find_ibd",
    "in_windows",
    "ion_images",
    "partition_bytes",
    "partition_spectra",
    "partition_tiles",
    "read_window_peaks",
    "slice_ion_values",
    "spectra_table",
    "window_sums",
    "write_synthetic_imzml",
]
