"""Text and CSV connectors: every line in exactly one slice, CSV slices carry the header."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.text import CSV, CSVSlice, Text, partition_chunk_size, partition_num_chunks
from xtremehub.errors import ConfigError, StaleIndex


@pytest.mark.parametrize("newline", ["\n", "\r\n", "||"])
@pytest.mark.parametrize("trailing", [True, False])
def test_text_lines_exactly_once(tmp_path: Path, newline: str, trailing: bool) -> None:
    lines = [f"line {i} " + "x" * (i % 23) for i in range(997)]
    text = newline.join(lines) + (newline if trailing else "")
    url = str(tmp_path / "t.txt")
    Path(url).write_text(text, newline="")
    co = CloudObject.from_path(Text, url, newline=newline).preprocess()
    assert co["num_lines"] == len(lines)
    for n in (1, 2, 3, 7, 64, 1500):  # 1500 > lines: most slices hold no line start
        slices = co.partition(partition_num_chunks, num_chunks=n)
        assert b"".join(s.get() for s in slices).decode() == text
        got = [line for s in slices for line in s.get().decode().split(newline) if line]
        assert got == lines


def test_text_on_real_file(testdata: Path, tmp_path: Path) -> None:
    path = testdata / "vcf" / "index.vcf"
    co = CloudObject.from_path(Text, str(path), metadata_url=str(tmp_path / "i")).preprocess()
    expected = path.read_bytes().splitlines()
    assert co["num_lines"] == len(expected)
    slices = co.partition(partition_chunk_size, chunk_size=4096)
    assert [line for s in slices for line in s.lines()] == expected


def _csv_file(tmp_path: Path) -> tuple[str, list[dict[str, str]]]:
    rows = [{"id": str(i), "name": f"n{i}", "value": str(i * 1.5)} for i in range(1000)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "name", "value"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    url = str(tmp_path / "t.csv")
    Path(url).write_text(buf.getvalue())
    return url, rows


def test_csv_slices_carry_the_header(tmp_path: Path) -> None:
    url, rows = _csv_file(tmp_path)
    co = CloudObject.from_path(CSV, url).preprocess()
    assert co["num_rows"] == 1000
    assert co["columns"] == ["id", "name", "value"]
    for n in (1, 2, 7, 50):
        slices = co.partition("num_chunks", num_chunks=n)
        assert all(isinstance(s, CSVSlice) and s.header == b"id,name,value" for s in slices)
        assert [r for s in slices for r in s.rows()] == rows
        assert all(not s.get().startswith(b"id,name") for s in slices)


def test_csv_with_the_executor(tmp_path: Path) -> None:
    url, rows = _csv_file(tmp_path)
    co = CloudObject.from_path(CSV, url).preprocess()
    with FunctionExecutor(workers=2) as fexec:
        counts = fexec.get_result(fexec.map(_row_count, co.partition(partition_num_chunks, num_chunks=5)))
    assert sum(counts) == len(rows)


def _row_count(data_slice: CSVSlice) -> int:
    return len(data_slice.rows())


@pytest.mark.s3
def test_csv_on_s3(s3_root: str, s3_default: Settings, tmp_path: Path) -> None:
    local, rows = _csv_file(tmp_path)
    url = s3_root + "t.csv"
    storage.put(url, Path(local).read_bytes())
    co = CloudObject.from_path(CSV, url).preprocess()
    assert co.metadata_url == s3_root + ".xhub/t.csv.csv.xhidx"
    assert [r for s in co.partition(partition_num_chunks, num_chunks=4) for r in s.rows()] == rows
    storage.put(url, Path(local).read_bytes() + b"1000,extra,0\n")
    with pytest.raises(StaleIndex):
        CloudObject.from_path(CSV, url).partition(partition_num_chunks, num_chunks=2)


def test_bad_parameters(tmp_path: Path) -> None:
    url, _ = _csv_file(tmp_path)
    co = CloudObject.from_path(CSV, url).preprocess()
    with pytest.raises(ConfigError, match="num_chunks"):
        co.partition(partition_num_chunks, num_chunks=0)
    with pytest.raises(ConfigError, match="no strategy 'rows'"):
        co.partition("rows")
