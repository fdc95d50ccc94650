"""Synthetic imzML datasets (demo, tests, benchmarks): seeded, fast at any size, pyimzML-readable.

The ``.ibd`` is written with NumPy one pixel row at a time (streamed to storage, hashed
on the way for the declared SHA-1) and the XML from a string template, so a
gigabyte-sized dataset takes seconds. Each spectrum is uniform noise plus Gaussian
peaks at ``peaks`` whose heights vary smoothly over the image, so ion images show
patterns. In processed mode every pixel has its own, slightly shifted m/z array.

Example:
    >>> ds = write_synthetic_imzml("mem://syn/a", width=3, height=2, n_mz=20, mode="continuous")
    >>> ds.imzml_url, ds.ibd_size == 16 + 4 * 20 + 6 * 4 * 20
    ('mem://syn/a.imzML', True)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from xtremehub import storage
from xtremehub.config import Settings

__all__ = ["SyntheticImzML", "write_synthetic_imzml"]

_MODES = {"continuous": "IMS:1000030", "processed": "IMS:1000031"}
_HEADER = """<?xml version="1.0" encoding="ISO-8859-1"?>
<mzML xmlns="http://psi.hupo.org/ms/mzml" version="1.1">
  <cvList count="2">
    <cv id="MS" fullName="PSI Mass Spectrometry Ontology" URI="http://purl.obolibrary.org/obo/ms.obo"/>
    <cv id="IMS" fullName="Imaging MS Ontology" URI="http://www.maldi-msi.org/download/imzml/imagingMS.obo"/>
  </cvList>
  <fileDescription>
    <fileContent>
      <cvParam cvRef="MS" accession="MS:1000579" name="MS1 spectrum" value=""/>
      <cvParam cvRef="IMS" accession="{mode_acc}" name="{mode}" value=""/>
      <cvParam cvRef="IMS" accession="IMS:1000080" name="universally unique identifier" value="{uuid}"/>
      <cvParam cvRef="IMS" accession="IMS:1000091" name="ibd SHA-1" value="{sha1}"/>
    </fileContent>
  </fileDescription>
  <referenceableParamGroupList count="2">
    <referenceableParamGroup id="mzArray">
      <cvParam cvRef="MS" accession="MS:1000576" name="no compression" value=""/>
      <cvParam cvRef="MS" accession="MS:1000514" name="m/z array"/>
      <cvParam cvRef="MS" accession="MS:1000521" name="32-bit float" value=""/>
      <cvParam cvRef="IMS" accession="IMS:1000101" name="external data" value="true"/>
    </referenceableParamGroup>
    <referenceableParamGroup id="intensityArray">
      <cvParam cvRef="MS" accession="MS:1000521" name="32-bit float" value=""/>
      <cvParam cvRef="MS" accession="MS:1000515" name="intensity array"/>
      <cvParam cvRef="MS" accession="MS:1000576" name="no compression" value=""/>
      <cvParam cvRef="IMS" accession="IMS:1000101" name="external data" value="true"/>
    </referenceableParamGroup>
  </referenceableParamGroupList>
  <softwareList count="1">
    <software id="xtremehub" version="0">
      <cvParam cvRef="MS" accession="MS:1000799" name="custom unreleased software tool" value="xtremehub synthetic"/>
    </software>
  </softwareList>
  <scanSettingsList count="1">
    <scanSettings id="scanSettings1">
      <cvParam cvRef="IMS" accession="IMS:1000042" name="max count of pixels x" value="{width}"/>
      <cvParam cvRef="IMS" accession="IMS:1000043" name="max count of pixels y" value="{height}"/>
    </scanSettings>
  </scanSettingsList>
  <instrumentConfigurationList count="1">
    <instrumentConfiguration id="IC1"/>
  </instrumentConfigurationList>
  <dataProcessingList count="1">
    <dataProcessing id="synthetic">
      <processingMethod order="0" softwareRef="xtremehub">
        <cvParam cvRef="MS" accession="MS:1000530" name="file format conversion" value="Output to imzML"/>
      </processingMethod>
    </dataProcessing>
  </dataProcessingList>
  <run defaultInstrumentConfigurationRef="IC1" id="synthetic">
    <spectrumList count="{count}" defaultDataProcessingRef="synthetic">
"""
_SPECTRUM = """      <spectrum defaultArrayLength="0" id="spectrum={n}" index="{n}">
        <cvParam cvRef="MS" accession="MS:1000511" name="ms level" value="1"/>
        <scanList count="1">
          <cvParam accession="MS:1000795" cvRef="MS" name="no combination"/>
          <scan instrumentConfigurationRef="IC1">
            <cvParam accession="IMS:1000050" cvRef="IMS" name="position x" value="{x}"/>
            <cvParam accession="IMS:1000051" cvRef="IMS" name="position y" value="{y}"/>
          </scan>
        </scanList>
        <binaryDataArrayList count="2">
          <binaryDataArray encodedLength="0">
            <referenceableParamGroupRef ref="mzArray"/>
            <cvParam accession="IMS:1000103" cvRef="IMS" name="external array length" value="{length}"/>
            <cvParam accession="IMS:1000104" cvRef="IMS" name="external encoded length" value="{nbytes}"/>
            <cvParam accession="IMS:1000102" cvRef="IMS" name="external offset" value="{mz_offset}"/>
            <binary/>
          </binaryDataArray>
          <binaryDataArray encodedLength="0">
            <referenceableParamGroupRef ref="intensityArray"/>
            <cvParam accession="IMS:1000103" cvRef="IMS" name="external array length" value="{length}"/>
            <cvParam accession="IMS:1000104" cvRef="IMS" name="external encoded length" value="{nbytes}"/>
            <cvParam accession="IMS:1000102" cvRef="IMS" name="external offset" value="{int_offset}"/>
            <binary/>
          </binaryDataArray>
        </binaryDataArrayList>
      </spectrum>
"""
_FOOTER = "    </spectrumList>\n  </run>\n</mzML>\n"


@dataclass(frozen=True)
class SyntheticImzML:
    """Where a synthetic dataset was written and how it was made."""

    imzml_url: str
    ibd_url: str
    width: int
    height: int
    n_mz: int
    mode: str
    peaks: tuple[float, ...]
    ibd_size: int


def _offsets(i: int, n_mz: int, continuous: bool) -> tuple[int, int]:
    """(m/z offset, intensity offset) of spectrum ``i`` (row-major, x fastest)."""
    nbytes = 4 * n_mz
    if continuous:
        return 16, 16 + nbytes * (1 + i)
    return 16 + 2 * nbytes * i, 16 + 2 * nbytes * i + nbytes


def write_synthetic_imzml(
    url_stem: str,
    *,
    width: int = 32,
    height: int = 32,
    n_mz: int = 2000,
    mode: str = "processed",
    peaks: Sequence[float] | None = None,
    mz_range: tuple[float, float] = (100.0, 1000.0),
    seed: int = 20261122,
    settings: Settings | None = None,
) -> SyntheticImzML:
    """Write ``<url_stem>.imzML`` and ``<url_stem>.ibd`` (any storage URL)."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, not {mode!r}")
    continuous = mode == "continuous"
    rng = np.random.default_rng(seed)
    lo, hi = mz_range
    peak_mz = np.asarray(peaks if peaks is not None else np.linspace(lo, hi, 12)[1:-1], dtype=np.float64)
    base_mz = np.linspace(lo, hi, n_mz, dtype=np.float64)
    sigma = 3 * (hi - lo) / max(n_mz - 1, 1)  # peaks span a handful of points
    xs = np.arange(1, width + 1, dtype=np.float64)
    digest = hashlib.sha1(usedforsecurity=False)
    file_uuid = uuid.UUID(bytes=rng.bytes(16))

    def ibd_chunks() -> Iterator[bytes]:
        head = file_uuid.bytes + (base_mz.astype("<f4").tobytes() if continuous else b"")
        digest.update(head)
        yield head
        for y in range(1, height + 1):
            shift = ((np.arange(width) + y) % 7 - 3) * 1e-4 * (not continuous)
            mz = (base_mz[None, :] + shift[:, None]).astype("<f4")
            ints = rng.random((width, n_mz), dtype=np.float32)
            for k, p in enumerate(peak_mz):
                a, b = np.searchsorted(base_mz, [p - 5 * sigma, p + 5 * sigma])
                height_k = 100.0 * (1.5 + np.sin(xs * (k + 1) / width * 3) * np.cos(y * (k + 2) / height * 3))
                profile = np.exp(-0.5 * ((mz[:, a:b].astype(np.float64) - p) / sigma) ** 2)
                ints[:, a:b] += (height_k[:, None] * profile).astype(np.float32)
            rows = ints.astype("<f4") if continuous else np.concatenate([mz, ints.astype("<f4")], axis=1)
            chunk = rows.tobytes()
            digest.update(chunk)
            yield chunk

    stem = url_stem.removesuffix(".imzML")
    ibd_info = storage.put(stem + ".ibd", ibd_chunks(), settings=settings)

    def xml_chunks() -> Iterator[bytes]:
        yield _HEADER.format(
            mode_acc=_MODES[mode],
            mode=mode,
            uuid=str(file_uuid),
            sha1=digest.hexdigest(),
            width=width,
            height=height,
            count=width * height,
        ).encode()
        block: list[str] = []
        for i in range(width * height):
            mz_offset, int_offset = _offsets(i, n_mz, continuous)
            block.append(
                _SPECTRUM.format(
                    n=i + 1,
                    x=i % width + 1,
                    y=i // width + 1,
                    length=n_mz,
                    nbytes=4 * n_mz,
                    mz_offset=mz_offset,
                    int_offset=int_offset,
                )
            )
            if len(block) == 1000:
                yield "".join(block).encode()
                block = []
        yield ("".join(block) + _FOOTER).encode()

    storage.put(stem + ".imzML", xml_chunks(), settings=settings)
    return SyntheticImzML(
        stem + ".imzML", stem + ".ibd", width, height, n_mz, mode, tuple(peak_mz.tolist()), ibd_info.size
    )
