"""LAS / LAZ / COPC connector against FACTS.json and laspy reading whole files."""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path
from typing import Any

import laspy
import lazrs
import numpy as np
import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.pointcloud import COPC, LAS, Grid, chunk_table, partition_grid, partition_points
from xtremehub.errors import ConfigError, CorruptData, TruncatedData, UnsupportedData

FILES = ["simple.las", "simple.laz", "test1_4.las", "autzen_trim.laz", "simple.copc.laz", "lone-star.copc.laz"]
COPC_FILES = ["simple.copc.laz", "lone-star.copc.laz"]
FACT_SUMS = {  # scaled coordinate sums from FACTS.md (laspy), 2 decimals
    "autzen_trim.laz": (70020104544.61, 93406036431.28, 47337127.73),
    "lone-star.copc.laz": (267417386868.52, 2551953195888.61, 1208260675.94),
    "simple.copc.laz": (678721022.97, 906580758.49, 462314.20),
    "simple.las": (678721022.97, 906580758.49, 462314.20),
    "simple.laz": (678721022.97, 906580758.49, 462314.20),
    "test1_4.las": (1694379477.65, 1816495465.57, 5597520.53),
}


@pytest.fixture
def facts(testdata: Path) -> dict[str, Any]:
    return json.loads((testdata / "FACTS.json").read_text())


def _open(path: Path | str, tmp_path: Path, fmt: type[LAS] = LAS) -> CloudObject:
    return CloudObject.from_path(fmt, str(path), metadata_url=str(tmp_path / "index")).preprocess()


def _sorted_rows(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Rows as raw bytes, sorted: two arrays hold the same multiset of points iff these are equal."""
    raw = np.ascontiguousarray(array).view(np.dtype((np.void, array.dtype.itemsize)))
    return np.sort(raw)


def _check_sums(records: list[laspy.ScaleAwarePointRecord], name: str) -> None:
    for axis, expected in zip("xyz", FACT_SUMS[name], strict=True):
        total = sum(float(np.sum(np.asarray(getattr(r, axis)), dtype=np.float64)) for r in records)
        assert total == pytest.approx(expected, abs=0.02), (name, axis)


@pytest.mark.parametrize("name", FILES)
def test_header_facts(testdata: Path, tmp_path: Path, facts: dict[str, Any], name: str) -> None:
    co = _open(testdata / "las" / name, tmp_path)
    fact = facts[f"las/{name}"]
    assert co["point_count"] == fact["point_count"]
    assert co["version"] == fact["version"]
    assert co["point_format"] == fact["point_format"]
    assert co["point_record_length"] == fact["point_record_length"]
    assert co["offset_to_point_data"] == fact["offset_to_point_data"]
    assert co["scales"] == pytest.approx(fact["scales"])
    assert co["offsets"] == pytest.approx(fact["offsets"])
    assert co["mins"] == pytest.approx(fact["header_mins"])
    assert co["maxs"] == pytest.approx(fact["header_maxs"])
    assert co["evlrs"] == fact["evlrs"]
    assert co["compressed"] == name.endswith(".laz")
    if co["compressed"]:
        assert co["chunks"] == fact["laszip_number_of_chunks"]
        chunks = chunk_table(co)
        assert int(chunks["point_count"].sum()) == fact["point_count"]
        # chunks tile the point data exactly: from just after the chunk-table offset up to the table
        assert int(chunks["offset"][0]) == fact["offset_to_point_data"] + 8
        ends = chunks["offset"] + chunks["byte_size"]
        assert int(ends.max()) == fact["laszip_chunk_table_offset"]
    if name == "autzen_trim.laz":
        assert chunk_table(co)["point_count"].tolist() == [50000, 50000, 10000]


@pytest.mark.parametrize("name", FILES)
def test_points_strategy_every_point_once(testdata: Path, tmp_path: Path, name: str) -> None:
    path = testdata / "las" / name
    co = _open(path, tmp_path)
    whole = laspy.read(str(path)).points.array
    for n in (1, 2, 3, 7, 100):
        slices = co.partition(partition_points, num_batches=n)
        assert len(slices) == min(n, co["chunks"] or co["point_count"]), n
        records = [s.get() for s in slices]
        assert sum(s.point_count for s in slices) == len(whole)
        # file order is kept: the concatenation is laspy's whole read, byte for byte
        assert np.array_equal(np.concatenate([r.array for r in records]), whole), n
        _check_sums(records, name)
        assert sum(s.nbytes for s in slices) <= co.size


@pytest.mark.parametrize("name", FILES)
def test_grid_strategy_every_point_once(testdata: Path, tmp_path: Path, name: str) -> None:
    path = testdata / "las" / name
    co = _open(path, tmp_path)
    whole = laspy.read(str(path)).points.array
    for cols, rows in ((1, 1), (2, 3), (4, 4)):
        slices = co.partition("grid", cols=cols, rows=rows)
        assert len(slices) == cols * rows
        records = [s.get() for s in slices]
        assert sum(len(r) for r in records) == len(whole)
        assert np.array_equal(_sorted_rows(np.concatenate([r.array for r in records])), _sorted_rows(whole))
        _check_sums(records, name)
        grid = Grid(co["mins"][0], co["mins"][1], co["maxs"][0], co["maxs"][1], cols, rows)
        for s, r in zip(slices, records, strict=True):
            assert s.tile is not None
            c, w = grid.cells(np.asarray(r.x), np.asarray(r.y))
            assert (c == s.tile[1]).all()
            assert (w == s.tile[2]).all()


@pytest.mark.parametrize("name", COPC_FILES)
def test_copc_levels_and_max_level(testdata: Path, tmp_path: Path, facts: dict[str, Any], name: str) -> None:
    path = testdata / "las" / name
    fact = facts[f"las/{name}"]
    co = _open(path, tmp_path, COPC)
    assert co["copc_points_per_level"] == fact["copc_points_per_level"]
    assert co["copc_max_level"] == fact["copc_max_level"]
    assert co["chunks"] == fact["copc_nodes_with_points"]
    info = co["copc_info"]
    assert info["halfsize"] == pytest.approx(fact["copc_info"]["halfsize"])
    assert info["hierarchy_root_offset"] == fact["copc_info"]["hierarchy_root_offset"]
    with laspy.CopcReader.open(str(path)) as reader:
        for level in range(fact["copc_max_level"] + 1):
            expected = sum(fact["copc_points_per_level"][str(k)] for k in range(level + 1))
            ref = reader.query(level=range(level + 1)).array
            assert len(ref) == expected
            for slices in (
                co.partition(partition_points, num_batches=3, max_level=level),
                co.partition(partition_grid, cols=3, rows=2, max_level=level),
            ):
                got = np.concatenate([s.get().array for s in slices])
                assert np.array_equal(_sorted_rows(got), _sorted_rows(ref)), level
    level0 = co.partition(partition_points, num_batches=1, max_level=0)
    assert sum(len(s.get()) for s in level0) == fact["copc_level0_points"]


def test_copc_grid_reads_only_nodes_of_the_tile(testdata: Path, tmp_path: Path) -> None:
    co = _open(testdata / "las" / "lone-star.copc.laz", tmp_path)
    slices = co.partition(partition_grid, cols=4, rows=4)
    root = [s for s in slices if len(s.runs) < co["chunks"]]
    assert root, "every tile reads every node: the octree is not used"
    assert sum(s.nbytes for s in slices) < 16 * co.size


def test_slice_to_file_roundtrip(testdata: Path, tmp_path: Path) -> None:
    co = _open(testdata / "las" / "autzen_trim.laz", tmp_path)
    s = co.partition(partition_points, num_batches=3)[1]
    out = s.to_file(tmp_path / "part.laz")
    back = laspy.read(str(out))
    assert np.array_equal(back.points.array, s.get().array)
    assert back.header.point_format.id == 3
    assert b"".join(s.iter_chunks()) == s.get().array.tobytes()


@pytest.mark.s3
@pytest.mark.parametrize("name", ["autzen_trim.laz", "lone-star.copc.laz", "test1_4.las"])
def test_on_s3(testdata: Path, s3_root: str, s3_default: Settings, name: str) -> None:
    url = s3_root + name
    storage.put(url, (testdata / "las" / name).read_bytes())
    co = CloudObject.from_path(LAS, url).preprocess()
    assert co.metadata_url.startswith(s3_root + ".xhub/")
    whole = laspy.read(str(testdata / "las" / name)).points.array
    for slices in (co.partition(partition_points, num_batches=3), co.partition(partition_grid, cols=3, rows=3)):
        records = [s.get() for s in slices]
        assert sum(len(r) for r in records) == len(whole)
        _check_sums(records, name)
        assert np.array_equal(_sorted_rows(np.concatenate([r.array for r in records])), _sorted_rows(whole))


# -- bad input ---------------------------------------------------------------------------------


def test_bad_signature(testdata: Path, tmp_path: Path) -> None:
    raw = bytearray((testdata / "las" / "simple.las").read_bytes())
    raw[:4] = b"LASX"
    bad = tmp_path / "bad.las"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CorruptData, match=r"bad LAS file signature .*offset 0"):
        _open(bad, tmp_path)


def test_truncated_las(testdata: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.las"
    bad.write_bytes((testdata / "las" / "simple.las").read_bytes()[:20000])
    with pytest.raises(TruncatedData, match="1065 points of 34 bytes"):
        _open(bad, tmp_path)
    tiny = tmp_path / "tiny.las"
    tiny.write_bytes(b"LASF" + bytes(100))
    with pytest.raises(TruncatedData, match="header needs 227 bytes"):
        _open(tiny, tmp_path)


def test_truncated_laz_file(testdata: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.laz"
    bad.write_bytes((testdata / "las" / "autzen_trim.laz").read_bytes()[:400000])
    with pytest.raises(CorruptData, match=r"chunk table offset 603333 is outside the object \(size 400000\)"):
        _open(bad, tmp_path)


def test_chunk_table_offset_past_eof(testdata: Path, tmp_path: Path) -> None:
    raw = bytearray((testdata / "las" / "simple.laz").read_bytes())
    struct.pack_into("<q", raw, 333, 10**9)
    bad = tmp_path / "far.laz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CorruptData, match="chunk table offset 1000000000 is outside") as info:
        _open(bad, tmp_path)
    assert info.value.offset == 333


def _laz_with_short_chunk(src: bytes, chunk: int, cut: int) -> bytes:
    """A LAZ whose chunk ``chunk`` lost its last ``cut`` bytes, with a consistent chunk table."""
    header = laspy.LasHeader.read_from(io.BytesIO(src))
    vlr_data = header.vlrs.get("LasZipVlr")[0].record_data_bytes()
    vlr = lazrs.LazVlr(vlr_data)
    start = header.offset_to_point_data
    (table_offset,) = struct.unpack_from("<q", src, start)
    table = lazrs.read_chunk_table_only(io.BytesIO(src[table_offset:]), vlr)
    offsets = np.concatenate([[start + 8], start + 8 + np.cumsum([s for _, s in table])])
    end = int(offsets[chunk + 1])
    body = src[: end - cut] + src[end:table_offset]
    table[chunk] = (table[chunk][0], table[chunk][1] - cut)
    out = io.BytesIO()
    out.write(body)
    lazrs.write_chunk_table(out, table, vlr)
    data = bytearray(out.getvalue())
    struct.pack_into("<q", data, start, table_offset - cut)
    return bytes(data)


def test_truncated_laz_chunk(testdata: Path, tmp_path: Path) -> None:
    bad = tmp_path / "short.laz"
    bad.write_bytes(_laz_with_short_chunk((testdata / "las" / "autzen_trim.laz").read_bytes(), 1, 20000))
    co = _open(bad, tmp_path)
    first, second, third = co.partition(partition_points, num_batches=3)
    assert len(first.get()) == 50000
    assert len(third.get()) == 10000
    with pytest.raises(TruncatedData, match="LAZ chunk of 50000 points") as info:
        second.get()
    assert info.value.offset == 2152 + 283499


def test_wrong_format_and_options(testdata: Path, tmp_path: Path) -> None:
    with pytest.raises(CorruptData, match="not a COPC file"):
        _open(testdata / "las" / "autzen_trim.laz", tmp_path, COPC)
    co = _open(testdata / "las" / "simple.laz", tmp_path)
    with pytest.raises(ConfigError, match="max_level needs a COPC"):
        co.partition(partition_points, num_batches=2, max_level=1)
    with pytest.raises(ConfigError, match="num_batches"):
        co.partition(partition_points, num_batches=0)
    with pytest.raises(ConfigError, match="at least 1 x 1"):
        co.partition(partition_grid, cols=0, rows=2)


def _as_laszip_1_2(laz: bytes, las: bytes) -> bytes:
    """``laz`` relabelled as LASzip 1.2r0's pointwise output (made here: no such file is in tests/data).

    LASzip 1.x compressed point by point (LASzip VLR ``compressor`` 1, version fields 1.2r0) and
    wrote no chunk table: its point data starts with the first point stored raw. So the VLR's
    preamble (compressor, coder, major, minor, revision) is patched and the 8 bytes where LASzip
    >= 2 keeps the chunk-table offset get the first point's raw X and Y, which read as an offset
    are the nonsense the old error reported.
    """
    data = bytearray(laz)
    header = laspy.LasHeader.read_from(io.BytesIO(laz))
    record = laz.find(b"laszip encoded") - 2 + 54
    assert struct.unpack_from("<HHBBH", data, record)[0] == 2  # a chunked LASzip 2+ file to start from
    struct.pack_into("<HHBBH", data, record, 1, 0, 1, 2, 0)
    first_point = las[laspy.LasHeader.read_from(io.BytesIO(las)).offset_to_point_data :][:8]
    data[header.offset_to_point_data : header.offset_to_point_data + 8] = first_point
    return bytes(data)


def test_a_laz_from_laszip_1_2_is_named_as_an_unsupported_version(testdata: Path, tmp_path: Path) -> None:
    old = tmp_path / "laszip12.laz"
    las = testdata / "las"
    old.write_bytes(_as_laszip_1_2((las / "simple.laz").read_bytes(), (las / "simple.las").read_bytes()))
    (nonsense,) = struct.unpack_from("<q", old.read_bytes(), 333)
    assert not 0 <= nonsense <= old.stat().st_size  # what used to be reported as a chunk-table offset
    expected = r"LASzip 1\.2r0 with the 'pointwise' compressor is not supported"
    with pytest.raises(UnsupportedData, match=expected) as info:
        _open(old, tmp_path)
    assert "chunk table offset" not in str(info.value)
    assert "re-compress it with LASzip >= 2.0" in str(info.value)
    assert info.value.url == str(old)
    assert old.read_bytes()[info.value.offset - 54 + 2 :].startswith(b"laszip encoded")  # names the VLR
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)  # raised on workers too


def test_a_laz_whose_writer_stopped_before_the_chunk_table_says_so(testdata: Path, tmp_path: Path) -> None:
    raw = bytearray((testdata / "las" / "simple.laz").read_bytes())
    struct.pack_into("<q", raw, 333, 333)  # LASzip's mark: the offset points at itself
    bad = tmp_path / "stopped.laz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CorruptData, match="interrupted before it wrote the chunk table"):
        _open(bad, tmp_path)
