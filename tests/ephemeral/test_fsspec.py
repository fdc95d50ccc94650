"""``fsspec.open("xhub-eph://...")``: pandas and pyarrow write and read Tier 0."""

from __future__ import annotations

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import xtremehub.ephemeral.fs  # noqa: F401 - registers the protocol (the entry point does it once installed)
from xtremehub import storage
from xtremehub.config import Settings


def test_fsspec_open_text_and_binary(eph_settings: Settings) -> None:
    with fsspec.open("xhub-eph://fs/dir/a.txt", "w", settings=eph_settings) as fh:
        fh.write("hello\n" * 1000)
    assert storage.get("xhub-eph://fs/dir/a.txt", settings=eph_settings) == b"hello\n" * 1000
    with fsspec.open("xhub-eph://fs/dir/a.txt", "rb", settings=eph_settings) as fh:
        fh.seek(6)
        assert fh.read(5) == b"hello"
    fs = fsspec.filesystem("xhub-eph", settings=eph_settings)
    fs.pipe("xhub-eph://fs/dir/sub/b.bin", b"0123456789")
    assert fs.cat_file("fs/dir/sub/b.bin", start=2, end=5) == b"234"
    assert fs.ls("fs/dir", detail=False) == ["fs/dir/a.txt", "fs/dir/sub"]
    assert fs.info("fs/dir/sub")["type"] == "directory"
    assert fs.size("fs/dir/sub/b.bin") == 10
    fs.rm("fs/dir/sub/b.bin")
    assert not fs.exists("fs/dir/sub/b.bin")
    with pytest.raises(FileNotFoundError):
        fs.info("fs/nothing")


def test_pandas_and_pyarrow_round_trip(eph_settings: Settings) -> None:
    df = pd.DataFrame({"sample": ["a", "b", "c"], "reads": [10, 20, 30], "gc": [0.41, 0.52, 0.38]})
    opts = {"settings": eph_settings}
    df.to_parquet("xhub-eph://frames/reads.parquet", storage_options=opts)
    df.to_csv("xhub-eph://frames/reads.csv", index=False, storage_options=opts)
    pd.testing.assert_frame_equal(pd.read_parquet("xhub-eph://frames/reads.parquet", storage_options=opts), df)
    pd.testing.assert_frame_equal(pd.read_csv("xhub-eph://frames/reads.csv", storage_options=opts), df)
    fs = fsspec.filesystem("xhub-eph", settings=eph_settings)
    table = pa.table({"x": list(range(10_000))})
    pq.write_table(table, "frames/big.parquet", filesystem=fs)
    assert pq.read_table("frames/big.parquet", filesystem=fs).equals(table)
