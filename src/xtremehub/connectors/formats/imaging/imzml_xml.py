"""Streaming imzML (XML) parsing into a compact columnar NumPy table, one row per spectrum.

The ``.imzML`` file is read as a stream from storage (ranged reads, constant memory)
with the standard library's ``ElementTree.iterparse``; each ``<spectrum>`` element is
reduced to one row and dropped at once, so a multi-gigabyte XML never sits in memory.

A row holds the pixel coordinates, then for the m/z and the intensity array its
offset in the ``.ibd``, its length (values), its encoded length (bytes) and a dtype
code (:data:`DTYPES`). Controlled-vocabulary accessions (``IMS:1000102`` external
offset ...) are matched, never names, which vary between writers.

Example:
    >>> import io
    >>> xml = io.BytesIO(SAMPLE_XML)
    >>> header, table = parse_imzml(xml, "mem://x/s.imzML")
    >>> header.mode, header.uuid, len(table)
    ('continuous', '00112233445566778899aabbccddeeff', 2)
    >>> table["x"].tolist(), table["int_offset"].tolist()
    ([1, 2], [24, 32])
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from array import array
from dataclasses import dataclass, field
from typing import IO, Any
from xml.parsers import expat

import numpy as np

from xtremehub.errors import MalformedRecord, TruncatedData

__all__ = ["DTYPES", "ROW_DTYPE", "SAMPLE_XML", "ImzMLHeader", "parse_imzml"]

log = logging.getLogger(__name__)

#: Array data types by dtype code (the code is what the index stores per array).
DTYPES: tuple[str, ...] = ("<f4", "<f8", "<i1", "<i2", "<i4", "<i8")
_DTYPE_ACCESSIONS = {
    "MS:1000521": 0,  # 32-bit float
    "MS:1000523": 1,  # 64-bit float
    "IMS:1000141": 2,  # 8-bit integer
    "IMS:1000142": 3,  # 16-bit integer
    "MS:1000519": 4,  # 32-bit integer
    "MS:1000522": 5,  # 64-bit integer
}
_MZ, _INTENSITY = "MS:1000514", "MS:1000515"
_OFFSET, _LENGTH, _ENCODED = "IMS:1000102", "IMS:1000103", "IMS:1000104"
_POSITION = {"IMS:1000050": 0, "IMS:1000051": 1, "IMS:1000052": 2}
_NO_COMPRESSION = "MS:1000576"
_COMPRESSIONS = {"MS:1000574": "zlib", "MS:1002312": "MS-Numpress linear", "MS:1002313": "MS-Numpress pic"}
_FILE_PARAMS = {
    "IMS:1000080": "uuid",
    "IMS:1000090": "md5",
    "IMS:1000091": "sha1",
    "IMS:1000030": "continuous",
    "IMS:1000031": "processed",
}
_PIXELS = {"IMS:1000042": "max_x", "IMS:1000043": "max_y"}
_TRUNCATION_CODES = {
    expat.errors.codes[name]
    for name in (expat.errors.XML_ERROR_NO_ELEMENTS, expat.errors.XML_ERROR_UNCLOSED_TOKEN)
    if name in expat.errors.codes
}

#: One spectrum of the index.
ROW_DTYPE = np.dtype(
    [
        ("x", "<i4"),
        ("y", "<i4"),
        ("z", "<i4"),
        ("mz_offset", "<i8"),
        ("mz_length", "<i8"),
        ("mz_bytes", "<i8"),
        ("int_offset", "<i8"),
        ("int_length", "<i8"),
        ("int_bytes", "<i8"),
        ("mz_dtype", "u1"),
        ("int_dtype", "u1"),
    ]
)
_INT_COLUMNS = ("x", "y", "z", "mz_offset", "mz_length", "mz_bytes", "int_offset", "int_length", "int_bytes")


@dataclass
class ImzMLHeader:
    """What the XML says about the whole dataset (``None`` where it says nothing)."""

    mode: str = ""
    uuid: str | None = None  # as declared, normalised to 32 lowercase hex digits when it is one
    uuid_declared: str | None = None
    md5: str | None = None
    sha1: str | None = None
    declared_spectra: int | None = None
    max_x: int | None = None
    max_y: int | None = None
    notes: list[str] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _params(elem: ET.Element, groups: dict[str, dict[str, str]]) -> dict[str, str]:
    """Accession -> value of the element's own cvParams and of the groups it references."""
    out: dict[str, str] = {}
    for child in elem:
        name = _local(child.tag)
        if name == "referenceableParamGroupRef":
            out.update(groups.get(child.get("ref", ""), {}))
        elif name == "cvParam":
            out[child.get("accession", "")] = child.get("value", "")
    return out


def _normalise_uuid(value: str) -> str | None:
    """32 lowercase hex digits, or ``None`` for a placeholder (wrong length, all zeros, not hex)."""
    hexed = value.strip().strip("{}").replace("-", "").lower()
    if len(hexed) != 32 or hexed == "0" * 32 or any(c not in "0123456789abcdef" for c in hexed):
        return None
    return hexed


class _Builder:
    """Turns ``<spectrum>`` elements into rows of growing typed columns."""

    def __init__(self, url: str, groups: dict[str, dict[str, str]]) -> None:
        self.url, self.groups = url, groups
        self.columns = {name: array("q") for name in _INT_COLUMNS}
        self.mz_dtype, self.int_dtype = array("B"), array("B")

    def __len__(self) -> int:
        return len(self.mz_dtype)

    def _fail(self, detail: str) -> MalformedRecord:
        return MalformedRecord(self.url, len(self), f"spectrum {len(self)}: {detail}", "record")

    def _int(self, params: dict[str, str], accession: str, what: str) -> int:
        if accession not in params:
            raise self._fail(f"{what} ({accession}) is missing")
        try:
            return int(float(params[accession]))
        except ValueError:
            raise self._fail(f"{what} ({accession}) is {params[accession]!r}, not a number") from None

    def add(self, spectrum: ET.Element) -> None:
        coords = [0, 0, 1]
        found = [False, False]
        arrays: dict[str, tuple[int, int, int, int]] = {}
        for elem in spectrum.iter():
            name = _local(elem.tag)
            if name in ("cvParam", "userParam"):
                axis = _POSITION.get(elem.get("accession", "")) if name == "cvParam" else None
                if axis is None and name == "userParam":
                    axis = {"position x": 0, "position y": 1, "position z": 2}.get(elem.get("name", ""))
                if axis is not None:
                    try:
                        coords[axis] = int(float(elem.get("value", "")))
                    except ValueError:
                        raise self._fail(f"position {'xyz'[axis]} is {elem.get('value')!r}, not a number") from None
                    if axis < 2:
                        found[axis] = True
            elif name == "binaryDataArray":
                params = _params(elem, self.groups)
                kind = "mz" if _MZ in params else "int" if _INTENSITY in params else None
                if kind is None:
                    continue  # other arrays (e.g. noise) are not indexed
                for acc, what in _COMPRESSIONS.items():
                    if acc in params:
                        raise self._fail(f"{what}-compressed arrays are not supported (only 'no compression')")
                dtype = next((code for acc, code in _DTYPE_ACCESSIONS.items() if acc in params), None)
                if dtype is None:
                    raise self._fail(f"the {kind} array declares no data type")
                offset = self._int(params, _OFFSET, f"{kind} external offset")
                length = self._int(params, _LENGTH, f"{kind} external array length")
                encoded = self._int(params, _ENCODED, f"{kind} external encoded length")
                itemsize = np.dtype(DTYPES[dtype]).itemsize
                if encoded != length * itemsize or offset < 0 or length < 0:
                    raise self._fail(
                        f"{kind} array: encoded length {encoded} != {length} values x {itemsize} bytes "
                        f"(offset {offset})"
                    )
                arrays[kind] = (offset, length, encoded, dtype)
        if not all(found):
            raise self._fail("position x or y is missing")
        for kind in ("mz", "int"):
            if kind not in arrays:
                raise self._fail(f"no {'m/z' if kind == 'mz' else 'intensity'} array")
        mz, it = arrays["mz"], arrays["int"]
        if mz[1] != it[1]:
            raise self._fail(f"m/z array has {mz[1]} values but the intensity array {it[1]}")
        for name, value in zip(_INT_COLUMNS, (*coords, *mz[:3], *it[:3]), strict=True):
            self.columns[name].append(value)
        self.mz_dtype.append(mz[3])
        self.int_dtype.append(it[3])

    def table(self) -> np.ndarray[Any, np.dtype[np.void]]:
        out = np.zeros(len(self), dtype=ROW_DTYPE)
        for name, column in self.columns.items():
            out[name] = np.frombuffer(column, dtype=np.int64) if len(column) else 0
        out["mz_dtype"] = np.frombuffer(self.mz_dtype, dtype=np.uint8) if len(self) else 0
        out["int_dtype"] = np.frombuffer(self.int_dtype, dtype=np.uint8) if len(self) else 0
        return out


def _file_params(header: ImzMLHeader, params: dict[str, str]) -> None:
    for acc, key in _FILE_PARAMS.items():
        if acc not in params:
            continue
        if key in ("continuous", "processed"):
            header.mode = key
        elif key == "uuid":
            header.uuid_declared = params[acc]
            header.uuid = _normalise_uuid(params[acc])
        else:
            setattr(header, key, params[acc].strip().lower() or None)


def parse_imzml(fh: IO[bytes], url: str) -> tuple[ImzMLHeader, np.ndarray[Any, np.dtype[np.void]]]:
    """Parse an imzML stream: the dataset header and one :data:`ROW_DTYPE` row per spectrum.

    Raises :class:`MalformedRecord` (bad XML, missing fields; the offset is a line number
    for XML errors, a spectrum number otherwise) or :class:`TruncatedData` (XML ends early).
    """
    header = ImzMLHeader()
    groups: dict[str, dict[str, str]] = {}
    builder = _Builder(url, groups)
    parents: list[ET.Element] = []
    root_seen = False
    in_spectrum = 0
    try:
        # Untrusted XML: ElementTree never fetches external entities, and expat >= 2.4 (bundled
        # with every supported CPython) bounds entity amplification ("billion laughs").
        for event, elem in ET.iterparse(fh, events=("start", "end")):  # noqa: S314
            name = _local(elem.tag)
            if event == "start":
                if not root_seen:
                    root_seen = True
                    if name not in ("mzML", "indexedmzML"):
                        raise MalformedRecord(
                            url, 1, f"root element is <{name}>, not <mzML>: not an imzML file", "line"
                        )
                if name == "spectrumList":
                    count = elem.get("count")
                    header.declared_spectra = int(count) if count and count.isdigit() else None
                elif name == "spectrum":
                    in_spectrum += 1
                parents.append(elem)
                continue
            parents.pop()
            if name == "spectrum":
                in_spectrum -= 1
                builder.add(elem)
                if parents:
                    parents[-1].remove(elem)  # constant memory: forget the parsed spectrum
            elif in_spectrum:
                continue
            elif name == "referenceableParamGroup":
                groups[elem.get("id", "")] = _params(elem, groups)
            elif name == "fileContent":
                _file_params(header, _params(elem, groups))
            elif name == "scanSettings":
                for acc, key in _PIXELS.items():
                    value = _params(elem, groups).get(acc, "")
                    if value.strip().isdigit():
                        setattr(header, key, int(value))
    except ET.ParseError as exc:
        line, column = exc.position
        kind = TruncatedData if exc.code in _TRUNCATION_CODES else MalformedRecord
        raise kind(url, line, f"XML is not well-formed at line {line}, column {column}: {exc}", "line") from exc
    if not root_seen:
        raise TruncatedData(url, 0, "empty file: not an imzML file", "line")
    if header.declared_spectra is None and not len(builder):
        raise MalformedRecord(url, 0, "no <spectrumList>: not an imzML file", "record")
    if not header.mode:
        header.mode = "processed"
        header.notes.append("neither continuous nor processed declared: assumed processed")
    return header, builder.table()


#: A tiny well-formed imzML document (two pixels, continuous), for examples and tests.
SAMPLE_XML = b"""<?xml version="1.0"?>
<mzML xmlns="http://psi.hupo.org/ms/mzml" version="1.1">
 <fileDescription><fileContent>
  <cvParam accession="IMS:1000030" name="continuous"/>
  <cvParam accession="IMS:1000080" name="universally unique identifier" value="{00112233-4455-6677-8899-AABBCCDDEEFF}"/>
 </fileContent></fileDescription>
 <referenceableParamGroupList count="2">
  <referenceableParamGroup id="mz"><cvParam accession="MS:1000514"/><cvParam accession="MS:1000521"/>
   <cvParam accession="MS:1000576"/></referenceableParamGroup>
  <referenceableParamGroup id="int"><cvParam accession="MS:1000515"/><cvParam accession="MS:1000521"/>
   <cvParam accession="MS:1000576"/></referenceableParamGroup>
 </referenceableParamGroupList>
 <run id="r"><spectrumList count="2">
  <spectrum id="s1" index="0"><scanList count="1"><scan>
   <cvParam accession="IMS:1000050" value="1"/><cvParam accession="IMS:1000051" value="1"/></scan></scanList>
   <binaryDataArrayList count="2">
    <binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="mz"/>
     <cvParam accession="IMS:1000102" value="16"/><cvParam accession="IMS:1000103" value="2"/>
     <cvParam accession="IMS:1000104" value="8"/><binary/></binaryDataArray>
    <binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="int"/>
     <cvParam accession="IMS:1000102" value="24"/><cvParam accession="IMS:1000103" value="2"/>
     <cvParam accession="IMS:1000104" value="8"/><binary/></binaryDataArray>
   </binaryDataArrayList></spectrum>
  <spectrum id="s2" index="1"><scanList count="1"><scan>
   <cvParam accession="IMS:1000050" value="2"/><cvParam accession="IMS:1000051" value="1"/></scan></scanList>
   <binaryDataArrayList count="2">
    <binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="mz"/>
     <cvParam accession="IMS:1000102" value="16"/><cvParam accession="IMS:1000103" value="2"/>
     <cvParam accession="IMS:1000104" value="8"/><binary/></binaryDataArray>
    <binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="int"/>
     <cvParam accession="IMS:1000102" value="32"/><cvParam accession="IMS:1000103" value="2"/>
     <cvParam accession="IMS:1000104" value="8"/><binary/></binaryDataArray>
   </binaryDataArrayList></spectrum>
 </spectrumList></run>
</mzML>
"""
