"""Per-format facts for the catalog, read from a connector's index (plus a few small ranged reads).

Each function takes a preprocessed :class:`~xtremehub.connectors.CloudObject` and returns
JSON-able facts. Everything comes from the index except what it does not keep, fetched with
small byte-range reads: the first FASTQ records (mate / interleaving), the imzML XML head
(centroid or profile) and the first and last m/z value of the spectra, the LAS header's VLRs
(coordinate reference system).

Example:
    >>> from xtremehub.catalog.facts import FORMAT_BY_SUFFIX, format_for_url
    >>> format_for_url("s3://lab/run7/reads.fq.gz"), format_for_url("/data/tile.copc.laz")
    ('fastq_gzip', 'copc')
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from xtremehub import storage
from xtremehub.connectors.cloudobject import CloudObject

__all__ = [
    "FACTS",
    "FORMAT_BY_SUFFIX",
    "HEALTH_CATEGORY",
    "MEDIA_TYPES",
    "RECORDS_FACT",
    "format_for_url",
    "wkt_epsg",
]

#: File-name endings (lower case, longest first when matching) -> connector format name.
FORMAT_BY_SUFFIX: dict[str, str] = {
    ".fastq.gz": "fastq_gzip",
    ".fq.gz": "fastq_gzip",
    ".fastq.bgz": "fastq_gzip",
    ".fq.bgz": "fastq_gzip",
    ".fa": "fasta",
    ".fasta": "fasta",
    ".fna": "fasta",
    ".fa.gz": "fasta",
    ".fasta.gz": "fasta",
    ".vcf": "vcf",
    ".vcf.gz": "vcf",
    ".vcf.bgz": "vcf",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".log": "text",
    ".imzml": "imzml",
    ".copc.laz": "copc",
    ".las": "las",
    ".laz": "las",
    ".tif": "cog",
    ".tiff": "cog",
}

#: IANA media types, where one exists for the format.
MEDIA_TYPES: dict[str, str] = {
    "fastq_gzip": "application/gzip",
    "csv": "text/csv",
    "text": "text/plain",
    "cog": "image/tiff",
    "imzml": "application/xml",
}

#: HealthDCAT-AP health category of the formats that carry health data.
HEALTH_CATEGORY: dict[str, str] = {"fastq_gzip": "genomics", "vcf": "genomics", "imzml": "metabolomics"}

#: Which fact is HealthDCAT-AP's number of records, per format.
RECORDS_FACT: dict[str, str] = {"fastq_gzip": "reads", "vcf": "variants", "imzml": "spectra"}

#: At most this many names (sequences, samples) are listed in the facts; counts are always complete.
MAX_NAMES = 1000
#: m/z range of processed imzML: read the first and last m/z of at most this many spectra.
MZ_SAMPLE = 512
_XML_HEAD = 256 << 10


def format_for_url(url: str) -> str | None:
    """The connector format a URL's file name suggests, or None."""
    name = url.rsplit("/", 1)[-1].lower()
    for suffix in sorted(FORMAT_BY_SUFFIX, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMAT_BY_SUFFIX[suffix]
    return None


def _fastq(co: CloudObject) -> dict[str, Any]:
    a = co.attributes
    reads, bases = int(a["num_reads"]), int(a["num_bases"])
    facts: dict[str, Any] = {
        "reads": reads,
        "bases": bases,
        "mean_read_length": round(bases / reads, 3) if reads else 0.0,
        "uncompressed_size": a.get("uncompressed_size"),
        "gzip_flavour": a.get("gzip_flavour"),
        "first_read": a.get("first_read"),
    }
    facts.update(_fastq_mates(co))
    return facts


_ILLUMINA_MATE = re.compile(r"^([12]):[YN]:")


def _mate_of(header: str) -> tuple[str, int | None]:
    """``(read name without mate suffix, mate 1/2 or None)`` of a FASTQ header line."""
    name, _, comment = header[1:].partition(" ")
    if len(name) > 2 and name[-2] == "/" and name[-1] in "12":
        return name[:-2], int(name[-1])
    found = _ILLUMINA_MATE.match(comment)
    return name, (int(found.group(1)) if found else None)


def _fastq_mates(co: CloudObject) -> dict[str, Any]:
    """Whether reads name a mate (``/1``, Illumina ``1:N:``) and whether mates alternate (interleaved)."""
    raw = storage.get_range(co.url, 0, 64 << 10, settings=co.settings)
    text = zlib.decompressobj(wbits=31).decompress(raw).decode("ascii", "replace")
    lines = text.split("\n")
    headers = [lines[i] for i in (0, 4) if i + 1 < len(lines) and lines[i].startswith("@")]
    if not headers:
        return {"mate": None, "paired": None, "interleaved": None}
    mates = [_mate_of(h) for h in headers]
    mate = mates[0][1]
    interleaved = len(mates) == 2 and mates[0][0] == mates[1][0] and (mates[0][1], mates[1][1]) == (1, 2)
    return {"mate": mate, "paired": mate is not None, "interleaved": interleaved}


def _fasta(co: CloudObject) -> dict[str, Any]:
    a = co.attributes
    names = list(a.get("names", []))
    return {
        "sequences": int(a["num_sequences"]),
        "bases": int(a["total_length"]),
        "names": names[:MAX_NAMES],
        "names_truncated": len(names) > MAX_NAMES,
        "compressed": bool(a.get("compressed")),
    }


def _vcf(co: CloudObject) -> dict[str, Any]:
    a = co.attributes
    samples = list(a.get("samples", []))
    return {
        "variants": int(a["num_variants"]),
        "variants_per_contig": dict(a.get("per_contig", {})),
        "samples": len(samples),
        "sample_names": samples[:MAX_NAMES],
        "header_contigs": len(a.get("header_contigs", [])),
        "fileformat": a.get("fileformat"),
        "compressed": bool(a.get("compressed")),
    }


def _csv(co: CloudObject) -> dict[str, Any]:
    a = co.attributes
    columns = list(a.get("columns", []))
    return {
        "rows": int(a["num_rows"]),
        "columns": len(columns),
        "column_names": columns,
        "delimiter": a.get("delimiter"),
    }


def _text(co: CloudObject) -> dict[str, Any]:
    return {"lines": int(co.attributes["num_lines"])}


def _imzml(co: CloudObject) -> dict[str, Any]:
    from xtremehub.connectors.formats.imaging.imzml import spectra_table

    a = co.attributes
    table = spectra_table(co)
    facts: dict[str, Any] = {
        "spectra": int(a["num_spectra"]),
        "pixel_grid": list(a.get("grid", [])),
        "z_values": list(a.get("z_values", [])),
        "mode": a.get("mode"),
        "spectrum_type": _spectrum_type(co),
        "mz_values_total": a.get("mz_values_total"),
        "ibd_url": a.get("ibd_url"),
        "ibd_size": a.get("ibd_size"),
        "checksum_check": a.get("checksum"),
    }
    facts.update(_mz_range(co, table, str(a["ibd_url"])))
    return facts


def _spectrum_type(co: CloudObject) -> str | None:
    """``centroid`` or ``profile`` as the XML's file content says (PSI-MS MS:1000127 / MS:1000128)."""
    head = storage.get_range(co.url, 0, _XML_HEAD, settings=co.settings)
    if b"MS:1000127" in head:
        return "centroid"
    if b"MS:1000128" in head:
        return "profile"
    return None


def _mz_range(co: CloudObject, table: np.ndarray[Any, Any], ibd_url: str) -> dict[str, Any]:
    """Smallest first and largest last m/z over the spectra (m/z arrays are sorted ascending)."""
    from xtremehub.connectors.formats.imaging.imzml_xml import DTYPES

    rows = table[table["mz_length"] > 0]
    if not len(rows):
        return {"mz_range": None, "mz_range_spectra_read": 0}
    if co.attributes.get("mode") == "continuous":
        rows = rows[:1]
    elif len(rows) > MZ_SAMPLE:
        rows = rows[np.linspace(0, len(rows) - 1, MZ_SAMPLE).astype(np.int64)]
    ranges: list[tuple[int, int]] = []
    dtypes = []
    for r in rows:
        dtype = np.dtype(DTYPES[int(r["mz_dtype"])])
        first, nbytes = int(r["mz_offset"]), int(r["mz_bytes"])
        ranges += [(first, first + dtype.itemsize), (first + nbytes - dtype.itemsize, first + nbytes)]
        dtypes.append(dtype)
    values = storage.get_ranges(ibd_url, ranges, settings=co.settings)
    lows = [float(np.frombuffer(values[2 * i], dtype=d)[0]) for i, d in enumerate(dtypes)]
    highs = [float(np.frombuffer(values[2 * i + 1], dtype=d)[0]) for i, d in enumerate(dtypes)]
    return {"mz_range": [min(lows), max(highs)], "mz_range_spectra_read": len(rows)}


def _pointcloud(co: CloudObject) -> dict[str, Any]:
    a = co.attributes
    facts: dict[str, Any] = {
        "points": int(a["point_count"]),
        "point_format": a.get("point_format"),
        "las_version": a.get("version"),
        "bounds": {"min": list(a["mins"]), "max": list(a["maxs"])},
        "compressed": bool(a.get("compressed")),
        "copc": bool(a.get("copc")),
    }
    if "copc_max_level" in a:
        facts["copc_levels"] = int(a["copc_max_level"]) + 1
    facts.update(_las_crs(co, int(a["offset_to_point_data"])))
    return facts


_NODE = re.compile(r'([A-Z_][A-Z0-9_]*)\[|(\])|"[^"]*"')
_EPSG_CODE = re.compile(r'(?:AUTHORITY|ID)\["EPSG",\s*"?(\d+)')


def wkt_epsg(wkt: str) -> int | None:
    """The EPSG code of a WKT coordinate system's top node (of its first part for a compound one).

    Example:
        >>> wkt_epsg('COMPD_CS["x",PROJCS["p",UNIT["m",1,AUTHORITY["EPSG","9001"]],AUTHORITY["EPSG","6360"]],'
        ...          'VERT_CS["v",AUTHORITY["EPSG","5703"]]]')
        6360
    """
    path: list[int] = []  # index of each open node among its siblings
    children = [0]
    found: dict[tuple[int, ...], int] = {}
    for m in _NODE.finditer(wkt):
        if m.group(1):
            name = m.group(1)
            code = _EPSG_CODE.match(wkt, m.start())
            if name in ("AUTHORITY", "ID") and code:
                found.setdefault(tuple(path), int(code.group(1)))
            path.append(children[-1])
            children[-1] += 1
            children.append(0)
        elif m.group(2) and path:
            path.pop()
            children.pop()
    compound = wkt.lstrip().startswith(("COMPD_CS[", "COMPOUNDCRS["))
    return found.get((0,)) or (found.get((0, 0)) if compound else None)


_EPSG_KEYS = (3072, 2048)  # ProjectedCSTypeGeoKey, GeographicTypeGeoKey


def _las_crs(co: CloudObject, header_size: int) -> dict[str, Any]:
    """EPSG code and name from the header's WKT or GeoTIFF-keys VLR (None when it has neither)."""
    import laspy

    raw = storage.get_range(co.url, 0, header_size, settings=co.settings)
    try:
        header = laspy.LasHeader.read_from(io.BytesIO(raw))
    except Exception:  # a header laspy cannot parse alone: the CRS stays unknown
        return {"crs": None, "crs_name": None}
    epsg: int | None = None
    name: str | None = None
    for vlr in header.vlrs:
        kind = type(vlr).__name__
        if kind == "WktCoordinateSystemVlr":
            wkt = str(vlr.string).strip("\x00 ")
            name_match = re.search(r'^\w+\["([^"]*)"', wkt)
            name = name_match.group(1) if name_match else None
            epsg = epsg or wkt_epsg(wkt)
        elif kind == "GeoKeyDirectoryVlr":
            keys = {k.id: k.value_offset for k in vlr.geo_keys}
            for key in _EPSG_KEYS:
                if 0 < keys.get(key, 0) < 32767:
                    epsg = epsg or int(keys[key])
    return {"crs": f"EPSG:{epsg}" if epsg else None, "crs_name": name}


def _cog(co: CloudObject) -> dict[str, Any]:
    from xtremehub.connectors.formats.geo.cog_georef import GeoReference

    a = co.attributes
    georef = GeoReference.from_json(co.index.data["georef"])
    bounds = list(georef.bounds) if georef.transform is not None else None
    return {
        "width": int(a["width"]),
        "height": int(a["height"]),
        "bands": int(a["bands"]),
        "dtype": a.get("dtype"),
        "crs": a.get("crs"),
        "crs_name": a.get("crs_name") or None,
        "bounds": bounds,
        "overviews": list(a.get("overviews", [])),
        "block_size": list(a.get("block_size", [])),
        "compression": a.get("compression"),
        "cloud_optimized": bool(a.get("cloud_optimized")),
        "nodata": a.get("nodata"),
    }


#: Connector format name -> facts function.
FACTS: dict[str, Callable[[CloudObject], dict[str, Any]]] = {
    "fastq_gzip": _fastq,
    "fasta": _fasta,
    "vcf": _vcf,
    "csv": _csv,
    "text": _text,
    "imzml": _imzml,
    "las": _pointcloud,
    "copc": _pointcloud,
    "cog": _cog,
}
