"""Streaming imzML (XML) parsing into a compact columnar NumPy table, one row per spectrum.

The ``.imzML`` file is read as a stream from storage (ranged reads, constant memory)
with the standard library's expat parser (callbacks only, no element tree); each
``<spectrum>`` becomes one row at its end tag, so a multi-gigabyte XML never sits in memory.

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
_READ_BLOCK = 1 << 20
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


def _normalise_uuid(value: str) -> str | None:
    """32 lowercase hex digits, or ``None`` for a placeholder (wrong length, all zeros, not hex)."""
    hexed = value.strip().strip("{}").replace("-", "").lower()
    if len(hexed) != 32 or hexed == "0" * 32 or any(c not in "0123456789abcdef" for c in hexed):
        return None
    return hexed


class _Builder:
    """Collects spectra into growing typed columns, one row per ``<spectrum>``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.columns = {name: array("q") for name in _INT_COLUMNS}
        self.mz_dtype, self.int_dtype = array("B"), array("B")

    def __len__(self) -> int:
        return len(self.mz_dtype)

    def fail(self, detail: str) -> MalformedRecord:
        return MalformedRecord(self.url, len(self), f"spectrum {len(self)}: {detail}", "record")

    def _int(self, params: dict[str, str], accession: str, what: str) -> int:
        if accession not in params:
            raise self.fail(f"{what} ({accession}) is missing")
        try:
            return int(float(params[accession]))
        except ValueError:
            raise self.fail(f"{what} ({accession}) is {params[accession]!r}, not a number") from None

    def array(self, params: dict[str, str]) -> tuple[str, tuple[int, int, int, int]] | None:
        """A ``<binaryDataArray>``'s kind and (offset, length, encoded length, dtype code)."""
        kind = "mz" if _MZ in params else "int" if _INTENSITY in params else None
        if kind is None:
            return None  # other arrays (e.g. noise) are not indexed
        for acc, what in _COMPRESSIONS.items():
            if acc in params:
                raise self.fail(f"{what}-compressed arrays are not supported (only 'no compression')")
        dtype = next((code for acc, code in _DTYPE_ACCESSIONS.items() if acc in params), None)
        if dtype is None:
            raise self.fail(f"the {kind} array declares no data type")
        offset = self._int(params, _OFFSET, f"{kind} external offset")
        length = self._int(params, _LENGTH, f"{kind} external array length")
        encoded = self._int(params, _ENCODED, f"{kind} external encoded length")
        itemsize = np.dtype(DTYPES[dtype]).itemsize
        if encoded != length * itemsize or offset < 0 or length < 0:
            raise self.fail(
                f"{kind} array: encoded length {encoded} != {length} values x {itemsize} bytes (offset {offset})"
            )
        return kind, (offset, length, encoded, dtype)

    def add(self, coords: list[int | None], arrays: dict[str, tuple[int, int, int, int]]) -> None:
        if coords[0] is None or coords[1] is None:
            raise self.fail("position x or y is missing")
        for kind in ("mz", "int"):
            if kind not in arrays:
                raise self.fail(f"no {'m/z' if kind == 'mz' else 'intensity'} array")
        mz, it = arrays["mz"], arrays["int"]
        if mz[1] != it[1]:
            raise self.fail(f"m/z array has {mz[1]} values but the intensity array {it[1]}")
        z = 1 if coords[2] is None else coords[2]
        for name, value in zip(_INT_COLUMNS, (coords[0], coords[1], z, *mz[:3], *it[:3]), strict=True):
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


class _Handler:
    """expat callbacks: a stack of parameter dicts, one per element whose cvParams matter."""

    _COLLECTS = frozenset({"referenceableParamGroup", "fileContent", "scanSettings", "binaryDataArray", "spectrum"})

    def __init__(self, url: str) -> None:
        self.url = url
        self.header = ImzMLHeader()
        self.builder = _Builder(url)
        self.groups: dict[str, dict[str, str]] = {}
        self.stack: list[dict[str, str]] = []
        self.root: str | None = None
        self.coords: list[int | None] = [None, None, None]
        self.arrays: dict[str, tuple[int, int, int, int]] = {}

    def _position(self, axis: int, value: str) -> None:
        try:
            self.coords[axis] = int(float(value))
        except ValueError:
            raise self.builder.fail(f"position {'xyz'[axis]} is {value!r}, not a number") from None

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        name = tag.rpartition(" ")[2]
        if name == "cvParam":
            accession = attrs.get("accession", "")
            if self.stack:
                self.stack[-1][accession] = attrs.get("value", "")
            if accession in _POSITION and self.stack:
                self._position(_POSITION[accession], attrs.get("value", ""))
        elif name == "referenceableParamGroupRef":
            if self.stack:
                self.stack[-1].update(self.groups.get(attrs.get("ref", ""), {}))
        elif name == "userParam":
            axis = {"position x": 0, "position y": 1, "position z": 2}.get(attrs.get("name", ""))
            if axis is not None and self.stack:
                self._position(axis, attrs.get("value", ""))
        elif name in self._COLLECTS:
            params: dict[str, str] = {}
            if name == "referenceableParamGroup":
                self.groups[attrs.get("id", "")] = params
            elif name == "spectrum":
                self.coords, self.arrays = [None, None, None], {}
            self.stack.append(params)
        elif name == "spectrumList":
            count = attrs.get("count", "")
            self.header.declared_spectra = int(count) if count.isdigit() else None
        elif self.root is None:
            self.root = name
            if name not in ("mzML", "indexedmzML"):
                raise MalformedRecord(self.url, 1, f"root element is <{name}>, not <mzML>: not an imzML file", "line")

    def end(self, tag: str) -> None:
        name = tag.rpartition(" ")[2]
        if name not in self._COLLECTS:
            return
        params = self.stack.pop()
        if name == "binaryDataArray":
            found = self.builder.array(params)
            if found is not None:
                self.arrays[found[0]] = found[1]
        elif name == "spectrum":
            self.builder.add(self.coords, self.arrays)
        elif name == "fileContent":
            _file_params(self.header, params)
        elif name == "scanSettings":
            for acc, key in _PIXELS.items():
                if params.get(acc, "").strip().isdigit():
                    setattr(self.header, key, int(params[acc]))


def parse_imzml(fh: IO[bytes], url: str) -> tuple[ImzMLHeader, np.ndarray[Any, np.dtype[np.void]]]:
    """Parse an imzML stream: the dataset header and one :data:`ROW_DTYPE` row per spectrum.

    Raises :class:`MalformedRecord` (bad XML, missing fields; the offset is a line number
    for XML errors, a spectrum number otherwise) or :class:`TruncatedData` (XML ends early).
    """
    handler = _Handler(url)
    # expat (the parser under ElementTree) without building elements: only callbacks. It never
    # fetches external entities and (>= 2.4, bundled with CPython) bounds entity amplification.
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    try:
        for block in iter(lambda: fh.read(_READ_BLOCK), b""):
            parser.Parse(block, False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        line, column = exc.lineno, exc.offset
        kind = TruncatedData if exc.code in _TRUNCATION_CODES else MalformedRecord
        detail = f"XML is not well-formed at line {line}, column {column}: {expat.errors.messages[exc.code]}"
        raise kind(url, line, detail, "line") from exc
    header, builder = handler.header, handler.builder
    if handler.root is None:
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
