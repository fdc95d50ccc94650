"""imzML failure paths: corrupt, truncated, mismatched and missing inputs give typed errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.imaging import ImzML, partition_spectra
from xtremehub.errors import CorruptData, MalformedRecord, ObjectNotFound, StaleIndex, TruncatedData


def _pair(testdata: Path, tmp_path: Path, name: str, ibd_from: str | None = None) -> tuple[Path, Path]:
    """Copy ``name``.imzML and an .ibd (by default its own) into ``tmp_path``."""
    xml, ibd = tmp_path / f"{name}.imzML", tmp_path / f"{name}.ibd"
    shutil.copy(testdata / "imzml" / f"{name}.imzML", xml)
    shutil.copy(testdata / "imzml" / f"{ibd_from or name}.ibd", ibd)
    return xml, ibd


def test_uuid_mismatch(testdata: Path, tmp_path: Path) -> None:
    xml, ibd = _pair(testdata, tmp_path, "Example_Processed", ibd_from="Example_Continuous")
    with pytest.raises(CorruptData, match=r"UUID 554a27fa.* differs from UUID 9d501bdc") as info:
        CloudObject.from_path(ImzML, str(xml)).preprocess()
    assert info.value.url == str(ibd)
    assert info.value.offset == 0


def test_truncated_ibd_names_the_spectrum(testdata: Path, tmp_path: Path) -> None:
    _, ibd = _pair(testdata, tmp_path, "Example_Processed")
    with ibd.open("r+b") as fh:
        fh.truncate(604744 - 100)
    with pytest.raises(TruncatedData, match=r"spectrum 8 at \(3, 3, 1\): its intensity array \[571148, 604744\)"):
        CloudObject.from_path(ImzML, str(tmp_path / "Example_Processed.imzML")).preprocess()


def test_ibd_shorter_than_its_uuid(testdata: Path, tmp_path: Path) -> None:
    xml, ibd = _pair(testdata, tmp_path, "Example_Continuous")
    ibd.write_bytes(b"\x55\x4a")
    with pytest.raises(TruncatedData, match="fewer than its 16-byte UUID"):
        CloudObject.from_path(ImzML, str(xml)).preprocess()


def test_checksum_mismatch_and_the_cheap_threshold(testdata: Path, tmp_path: Path) -> None:
    xml, ibd = _pair(testdata, tmp_path, "Example_Continuous")
    raw = bytearray(ibd.read_bytes())
    raw[40_000] ^= 0xFF  # same size and UUID, one intensity byte flipped
    ibd.write_bytes(bytes(raw))
    with pytest.raises(CorruptData, match=r"sha1 .* differs from a5be532d"):
        CloudObject.from_path(ImzML, str(xml)).preprocess()
    co = CloudObject.from_path(ImzML, str(xml), checksum_max_bytes=100_000).preprocess()
    assert co["checksum"] == "sha1 declared, not checked (.ibd 335976 bytes > checksum_max_bytes 100000)"


def test_missing_ibd(testdata: Path, tmp_path: Path) -> None:
    xml, ibd = _pair(testdata, tmp_path, "Example_Processed")
    ibd.unlink()
    with pytest.raises(ObjectNotFound, match=r"Example_Processed\.ibd: no \.ibd beside"):
        CloudObject.from_path(ImzML, str(xml)).preprocess()


@pytest.mark.s3
def test_missing_ibd_on_s3(testdata: Path, s3_root: str, s3_default: Settings) -> None:
    url = s3_root + "x.imzML"
    storage.put(url, (testdata / "imzml" / "Example_Processed.imzML").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"x\.ibd: no \.ibd beside"):
        CloudObject.from_path(ImzML, url).preprocess()


def test_truncated_xml(testdata: Path, tmp_path: Path) -> None:
    xml, _ = _pair(testdata, tmp_path, "Example_Processed")
    xml.write_bytes(xml.read_bytes()[:15_000])
    with pytest.raises(TruncatedData, match="XML is not well-formed at line") as info:
        CloudObject.from_path(ImzML, str(xml)).preprocess()
    assert info.value.offset_kind == "line"
    assert info.value.offset > 100


def test_malformed_xml(testdata: Path, tmp_path: Path) -> None:
    xml, _ = _pair(testdata, tmp_path, "Example_Continuous")
    text = xml.read_bytes()
    at = text.index(b"<spectrum ", 15_000)
    xml.write_bytes(text[:at] + b"<spectrum <<" + text[at:])
    with pytest.raises(MalformedRecord, match="XML is not well-formed at line"):
        CloudObject.from_path(ImzML, str(xml)).preprocess()


def test_missing_offset_names_spectrum(testdata: Path, tmp_path: Path) -> None:
    xml, _ = _pair(testdata, tmp_path, "Example_Processed")
    text = xml.read_text(encoding="latin-1")
    cut = text.index('accession="IMS:1000102"', text.index('id="Scan=4"'))
    start, end = text.rindex("<cvParam", 0, cut), text.index("/>", cut) + 2
    xml.write_text(text[:start] + text[end:], encoding="latin-1")
    with pytest.raises(MalformedRecord, match=r"spectrum 3: .*external offset \(IMS:1000102\) is missing") as info:
        CloudObject.from_path(ImzML, str(xml)).preprocess()
    assert (info.value.offset, info.value.offset_kind) == (3, "record")


def test_not_an_imzml(tmp_path: Path) -> None:
    (tmp_path / "a.ibd").write_bytes(bytes(32))
    (tmp_path / "a.imzML").write_bytes(b"<?xml version='1.0'?><svg></svg>")
    with pytest.raises(MalformedRecord, match="root element is <svg>"):
        CloudObject.from_path(ImzML, str(tmp_path / "a.imzML")).preprocess()


def test_pewlib_lenient_by_default_strict_on_request(testdata: Path, tmp_path: Path) -> None:
    """pewlib_test declares 95,993 spectra and holds 4, with placeholder UUID and MD5 (FACTS.md)."""
    xml, _ = _pair(testdata, tmp_path, "pewlib_test")
    co = CloudObject.from_path(ImzML, str(xml)).preprocess()
    assert (co["num_spectra"], co["declared_spectra"], co["uuid"]) == (4, 95993, None)
    assert co["checksum"] == "placeholder md5: not checked"
    assert any("declares 95993 spectra but 4 are present" in n for n in co["notes"])
    assert any("is a placeholder (the .ibd starts with d948c021" in n for n in co["notes"])
    with pytest.raises(MalformedRecord, match=r"UUID .* is a placeholder.*\[strict\]"):
        CloudObject.from_path(ImzML, str(xml), strict=True).preprocess(force=True)


def test_strict_spectrum_count(testdata: Path, tmp_path: Path) -> None:
    xml, _ = _pair(testdata, tmp_path, "Example_Processed")
    text = xml.read_text(encoding="latin-1")
    xml.write_text(text.replace('<spectrumList count="9"', '<spectrumList count="12"'), encoding="latin-1")
    co = CloudObject.from_path(ImzML, str(xml)).preprocess()
    assert (co["num_spectra"], co["declared_spectra"]) == (9, 12)
    with pytest.raises(MalformedRecord, match=r"declares 12 spectra but 9 are present \[strict\]"):
        CloudObject.from_path(ImzML, str(xml), strict=True).preprocess(force=True)


def test_changed_ibd_makes_the_index_stale(testdata: Path, tmp_path: Path) -> None:
    xml, ibd = _pair(testdata, tmp_path, "Example_Continuous")
    co = CloudObject.from_path(ImzML, str(xml)).preprocess()
    before = co.partition(partition_spectra, num_batches=1)[0].get().intensities.copy()
    raw = bytearray(ibd.read_bytes())
    raw[-4:] = np.float32(7.0).tobytes()
    ibd.write_bytes(bytes(raw))
    os.utime(ibd, (1, 1))  # a different mtime, hence etag, whatever the clock's resolution
    with pytest.raises(StaleIndex, match="changed since it was indexed"):
        co.partition(partition_spectra, num_batches=1)
    fresh = CloudObject.from_path(ImzML, str(xml), checksum_max_bytes=0)
    assert not fresh.is_preprocessed()
    after = fresh.preprocess().partition(partition_spectra, num_batches=1)[0].get().intensities
    assert after[-1] == 7.0
    assert np.array_equal(after[:-1], before[:-1])
