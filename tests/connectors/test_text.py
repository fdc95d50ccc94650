"""Text and CSV connectors: each line in exactly one slice; CSV records as Python's csv reads them, with the header."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.formats.text import text as text_module
from xtremehub.connectors.text import CSV, CSVSlice, Text, partition_chunk_size, partition_num_chunks
from xtremehub.errors import ConfigError, MalformedRecord, StaleIndex


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


# --------------------------------------------------------------------------- lines of text


@pytest.mark.parametrize("trailing", [True, False])
def test_every_slice_count_gives_the_file_lines(tmp_path: Path, trailing: bool) -> None:
    """More slices than lines, or slices shorter than a line: no slice adds a line that is not in the file."""
    lines = [b"short", b"a much longer line " * 3, b"", b"x", b"the last line"]
    data = b"\n".join(lines) + (b"\n" if trailing else b"")
    url = str(tmp_path / "few.txt")
    Path(url).write_bytes(data)
    co = CloudObject.from_path(Text, url).preprocess()
    assert co["num_lines"] == len(lines)
    for n in range(1, len(lines) + 6):
        slices = co.partition(partition_num_chunks, num_chunks=n)
        assert [line for s in slices for line in s.lines()] == lines, n
    for size in (1, 2, 3, 7):  # chunks shorter than most lines
        slices = co.partition(partition_chunk_size, chunk_size=size)
        assert [line for s in slices for line in s.lines()] == lines, size
        owning_none = [s for s in slices if not s.get()]
        assert owning_none  # slices shorter than a line: most own no line start
        assert all(s.lines() == [] for s in owning_none)


# --------------------------------------------------------------------------- CSV records as Python's csv reads them


def _dict_rows(data: bytes, **fmtparams: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline=""), **fmtparams))


def _all_rows(co: CloudObject, n: int) -> list[dict[str, str]]:
    slices = co.partition(partition_num_chunks, num_chunks=n)
    assert all(isinstance(s, CSVSlice) for s in slices)
    assert len(slices) <= n
    return [row for s in slices for row in s.rows()]  # type: ignore[attr-defined]


SPECTRUM = sorted(p.stem for p in (Path(__file__).parents[1] / "data" / "csv-spectrum" / "csvs").glob("*.csv"))


@pytest.mark.parametrize("name", SPECTRUM)
@pytest.mark.parametrize("scan_chunk", [1, 2, 3, 5, 1 << 20])
def test_csv_spectrum(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, scan_chunk: int
) -> None:
    """Each csv-spectrum case, scanned in chunks as short as one byte, cut into every possible number of slices."""
    monkeypatch.setattr(text_module, "_CSV_SCAN_CHUNK", scan_chunk)
    path = testdata / "csv-spectrum" / "csvs" / f"{name}.csv"
    data = path.read_bytes()
    expected = _dict_rows(data)
    if name != "location_coordinates":  # upstream's JSON for that case disagrees with its CSV (see SOURCES.md)
        assert expected == json.loads((testdata / "csv-spectrum" / "json" / f"{name}.json").read_text("utf-8"))
    co = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / "idx")).preprocess()
    assert co["num_rows"] == len(expected)
    assert co["columns"] == list(expected[0])
    for n in range(1, len(data) + 2):
        assert _all_rows(co, n) == expected, n


def test_csv_spectrum_cases_are_all_here(testdata: Path) -> None:
    folder = testdata / "csv-spectrum"
    assert len(SPECTRUM) == 12
    assert sorted(p.stem for p in (folder / "json").glob("*.json")) == SPECTRUM
    assert b"\r\n" in (folder / "csvs" / "newlines_crlf.csv").read_bytes()


def _big_csv(rng: random.Random, target: int, *, stray_quotes: bool = False) -> bytes:
    """A CSV with quoted newlines (LF and CRLF), escaped quotes, empty fields, blank records and UTF-8."""
    words = ["plain", "with space", "comma, inside", 'say ""hi""', "two\nlines", "crlf\r\ninside", "", "ünï©ødé ʤ"]
    out = [b"id,text,note,value\r\n"]
    size, i = 0, 0
    while size < target:
        fields = []
        for _ in range(2):
            word = rng.choice(words)
            quote = (word == "" and rng.random() < 0.5) or any(c in word for c in ',"\r\n') or rng.random() < 0.2
            fields.append(f'"{word}"' if quote else word.replace('""', ""))
        value = str(rng.randint(-(10**6), 10**6))
        if stray_quotes and rng.random() < 0.01:
            value = value + '" pipe'  # a quote inside an unquoted field: Python's csv reads it literally
        line = ",".join([str(i), *fields, value]) + rng.choice(["\n", "\r\n", "\r\n", "\n"])
        if rng.random() < 0.01:
            line += "\n"  # a blank record
        encoded = line.encode()
        out.append(encoded)
        size += len(encoded)
        i += 1
    return b"".join(out)


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, list[dict[str, str]]]:
    data = _big_csv(random.Random(11), 3 * 1024 * 1024)
    path = tmp_path_factory.mktemp("csv") / "big.csv"
    path.write_bytes(data)
    return path, data, _dict_rows(data)


def _record_starts(data: bytes) -> set[int]:
    """Byte offsets where Python's csv starts a record (blank ones too), found by watching what it consumes."""
    consumed = 0

    def lines() -> Iterator[str]:
        nonlocal consumed
        for line in io.StringIO(data.decode("latin-1"), newline=""):  # one character per byte
            consumed += len(line)  # counted before csv sees it: after a record, its whole last line is read
            yield line

    starts, reader = {0}, csv.reader(lines())
    for _ in reader:
        starts.add(consumed)
    return starts


def test_large_csv_every_partition_count(
    big_csv: tuple[Path, bytes, list[dict[str, str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data, expected = big_csv
    assert sum(1 for row in expected if "\n" in row["text"] or "\n" in row["note"]) > 1000
    monkeypatch.setattr(text_module, "_CSV_SCAN_CHUNK", 65521)  # ~50 chunks, cut anywhere (inside quotes, CRLF)
    co = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / "idx")).preprocess()
    assert co["num_rows"] == len(expected)
    assert co.index.data["checkpoints"] > 10000
    record_starts = _record_starts(data)
    for n in range(1, 201):
        slices = co.partition(partition_num_chunks, num_chunks=n)
        assert all(s.start in record_starts and s.end in record_starts for s in slices), n
        assert [(a.end, b.start) for a, b in itertools.pairwise(slices) if a.end != b.start] == []
        assert (slices[0].start, slices[-1].end) == (co.index.data["data_start"], len(data))
        assert len(slices) > n * 0.9
    for n in (1, 2, 7, 40, 1000):
        assert _all_rows(co, n) == expected, n


def test_large_csv_with_the_executor_equals_the_serial_index(
    big_csv: tuple[Path, bytes, list[dict[str, str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, expected = big_csv
    monkeypatch.setattr(text_module, "_CSV_SCAN_CHUNK", 1 << 20)
    serial = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / "a")).preprocess()
    with FunctionExecutor(workers=2) as fexec:
        mapped = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / "b")).preprocess(fexec)
        counts = fexec.get_result(fexec.map(_row_count, mapped.partition(partition_num_chunks, num_chunks=7)))
    assert mapped.index.blob == serial.index.blob
    assert mapped["num_rows"] == serial["num_rows"] == sum(counts) == len(expected)


def test_stray_quotes_are_read_as_python_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A quote inside an unquoted field is a literal character for Python's csv: the exact serial scan takes over."""
    data = _big_csv(random.Random(5), 400_000, stray_quotes=True)
    expected = _dict_rows(data)
    assert any('" pipe' in row["value"] for row in expected)
    path = tmp_path / "stray.csv"
    path.write_bytes(data)
    monkeypatch.setattr(text_module, "_CSV_SCAN_CHUNK", 30011)
    monkeypatch.setattr("xtremehub.connectors.formats.text.records._EXACT_BLOCK", 40009)  # records span blocks
    with caplog.at_level(logging.INFO, logger=text_module.__name__):
        co = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / "idx")).preprocess()
    assert "indexing records serially" in caplog.text
    assert co["num_rows"] == len(expected)
    for n in (1, 2, 3, 10, 100):
        assert _all_rows(co, n) == expected


_FUZZ_ALPHABET = ["a", "b", ",", '"', '""', "\n", "\r", "\r\n", " ", "é"]


def _python_ends_in_quotes(text: str) -> bool:
    """Whether Python's csv (non-strict) reaches the end inside a quoted field: its state machine, four states."""
    state = "start"
    for c in text:
        if state in ("start", "unquoted"):
            state = "start" if c in ",\r\n" else "quoted" if state == "start" and c == '"' else "unquoted"
        elif state == "quoted":
            state = "quote in quoted" if c == '"' else "quoted"
        else:  # after a quote inside a quoted field: an escaped quote, the field's end, or literal text
            state = "quoted" if c == '"' else "start" if c in ",\r\n" else "unquoted"
    return state == "quoted"


@pytest.mark.parametrize("seed", range(4))
def test_random_csv_matches_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    for case in range(150):
        body = "".join(rng.choices(_FUZZ_ALPHABET, [6, 3, 3, rng.choice([0, 1, 3]), 1, 2, 1, 2, 1, 1], k=60))
        text = "h1,h2\n" + body
        path = tmp_path / f"{case}.csv"
        path.write_bytes(text.encode())
        monkeypatch.setattr(text_module, "_CSV_SCAN_CHUNK", rng.randint(1, 20))
        co = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / f"{case}.idx"))
        if _python_ends_in_quotes(body):
            with pytest.raises(MalformedRecord, match="never closed") as excinfo:
                co.preprocess()
            assert excinfo.value.offset_kind == "uncompressed"
            continue
        expected = _dict_rows(text.encode())
        co.preprocess()
        assert co["num_rows"] == len(expected), text
        assert _all_rows(co, rng.randint(1, 30)) == expected, text


@pytest.mark.parametrize(
    "body",
    [b"1\r\n\r\n2\r\n", b",\rb\r\n\r\nba", b'a\r\r\n\n\r"x\r\n"\r\n\r\n', b'"",""\r\n\r\n"\r\n\r"\r\r'],
)
def test_blank_records_and_crlf_at_every_chunk_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    """A CRLF split between two scan chunks is one terminator; the blank records around it are skipped."""
    data = b"h1,h2\r\n" + body
    path = tmp_path / "blank.csv"
    path.write_bytes(data)
    expected = _dict_rows(data)
    for scan_chunk in range(1, len(body) + 1):
        monkeypatch.setattr(text_module, "_CSV_SCAN_CHUNK", scan_chunk)
        co = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / f"{scan_chunk}.idx")).preprocess()
        assert co["num_rows"] == len(expected), scan_chunk
        assert _all_rows(co, len(body)) == expected


def test_quoted_header_and_other_dialects(tmp_path: Path) -> None:
    data = b"'first\nname';last\r\nAda;'Love;lace'\r\n'x''y';z\r\n"
    path = tmp_path / "semi.csv"
    path.write_bytes(data)
    co = CloudObject.from_path(CSV, str(path), delimiter=";", quotechar="'").preprocess()
    expected = _dict_rows(data, delimiter=";", quotechar="'")
    assert co["columns"] == ["first\nname", "last"] == list(expected[0])
    assert co["num_rows"] == len(expected) == 2
    assert expected[1] == {"first\nname": "x'y", "last": "z"}
    for n in (1, 2, 3):
        assert _all_rows(co, n) == expected


@pytest.mark.parametrize(
    ("data", "columns", "rows"),
    [
        (b"", [], []),
        (b"a,b", ["a", "b"], []),
        (b"a,b\r\n\r\n", ["a", "b"], []),
        (b'"a\nb",c\n1,2', ["a\nb", "c"], [{"a\nb": "1", "c": "2"}]),
    ],
)
def test_csv_without_data_records(tmp_path: Path, data: bytes, columns: list[str], rows: list[dict[str, str]]) -> None:
    path = tmp_path / "small.csv"
    path.write_bytes(data)
    co = CloudObject.from_path(CSV, str(path)).preprocess()
    assert (co["columns"], co["num_rows"]) == (columns, len(rows))
    assert _all_rows(co, 3) == rows == _dict_rows(data)


def test_header_record_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header record, terminator included, must fit the head read (1 MiB); a CRLF is never split."""
    path = tmp_path / "head.csv"
    path.write_bytes(b"abc,def\r\n1,2\r\n")
    for limit in range(6, 12):
        monkeypatch.setattr(text_module, "_CSV_HEAD", limit)
        co = CloudObject.from_path(CSV, str(path), metadata_url=str(tmp_path / f"{limit}.idx"))
        if limit < 9:
            with pytest.raises(MalformedRecord, match="header record longer than"):
                co.preprocess()
        else:
            assert co.preprocess()["num_rows"] == 1
            assert _all_rows(co, 2) == [{"abc": "1", "def": "2"}]


def test_an_index_from_the_line_counting_csv_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, rows = _csv_file(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(CSV, "index_version", 1)  # as the CSV connector that counted physical lines wrote it
        CloudObject.from_path(CSV, url).preprocess()
    with pytest.raises(StaleIndex, match="version 1 is outdated"):
        CloudObject.from_path(CSV, url).partition(partition_num_chunks, num_chunks=2)
    co = CloudObject.from_path(CSV, url).preprocess()
    assert co.index.version == 2
    assert _all_rows(co, 2) == rows


def test_slices_to_pandas_keep_quoted_newlines(big_csv: tuple[Path, bytes, list[dict[str, str]]]) -> None:
    path, _, expected = big_csv
    co = CloudObject.from_path(CSV, str(path), metadata_url=str(path) + ".pd.idx").preprocess()
    frames = [s.to_pandas() for s in co.partition(partition_num_chunks, num_chunks=5)]  # type: ignore[attr-defined]
    assert sum(len(f) for f in frames) == len(expected)
    texts = [str(t) if t == t else "" for f in frames for t in f["text"]]  # NaN (empty field) != NaN
    assert texts == [row["text"] for row in expected]


def test_unclosed_quote_names_the_record(tmp_path: Path) -> None:
    path = tmp_path / "open.csv"
    path.write_bytes(b'a,b\n1,2\n3,"never closed\n4,5\n')
    with pytest.raises(MalformedRecord, match="never closed") as excinfo:
        CloudObject.from_path(CSV, str(path)).preprocess()
    assert excinfo.value.offset == 8  # where the record holding the open quote starts
    assert str(path) in str(excinfo.value)


def test_bad_dialects_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="newline"):
        CSV(newline="||")
    with pytest.raises(ConfigError, match="delimiter"):
        CSV(delimiter=";;")
    with pytest.raises(ConfigError, match="ASCII"):
        CSV(quotechar="«")
    with pytest.raises(ConfigError, match="differ"):
        CSV(delimiter='"')
