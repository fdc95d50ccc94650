"""``Store.iter_range``: a range as whole pieces, streamed with one request on S3, counted once."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import InvalidRange
from xtremehub.storage import iostats, open_store

DATA = random.Random(7).randbytes(300_000)


def _roots(tmp_path: Path, s3_root: str) -> list[str]:
    return [str(tmp_path) + "/", "mem://iter-range/", s3_root]


def test_pieces_are_whole_and_in_order_on_every_store(tmp_path: Path, s3_root: str, s3_settings: Settings) -> None:
    for root in _roots(tmp_path, s3_root):
        url = root + "obj.bin"
        storage.put(url, DATA, settings=s3_settings)
        store, key = open_store(url, s3_settings)
        pieces = list(store.iter_range(key, 1000, 250_000, piece=65536))
        assert [len(p) for p in pieces] == [65536, 65536, 65536, 249_000 - 3 * 65536], root
        assert b"".join(pieces) == DATA[1000:250_000], root
        assert b"".join(store.iter_range(key, 299_000, 10**9, piece=4096)) == DATA[299_000:], root  # clipped
        assert list(store.iter_range(key, 5, 5)) == [], root


def test_s3_streams_one_request_and_counts_the_bytes_read(s3_root: str, s3_settings: Settings) -> None:
    url = s3_root + "streamed.bin"
    storage.put(url, DATA, settings=s3_settings)
    store, key = open_store(url, s3_settings)
    assert store.streams_ranges
    calls = []
    real = store.client.get_object

    def spy(**kwargs: object) -> object:
        calls.append(kwargs["Range"])
        return real(**kwargs)

    before = iostats.snapshot().bytes_read
    store.client.get_object = spy  # type: ignore[method-assign]
    try:
        pieces = store.iter_range(key, 0, len(DATA), piece=32768)
        first = next(pieces)
        pieces.close()  # stopped early: the rest is not read
    finally:
        del store.client.get_object
    assert calls == [f"bytes=0-{len(DATA) - 1}"]
    assert first == DATA[:32768]
    assert iostats.snapshot().bytes_read - before == 32768


def test_s3_range_past_the_end_is_an_invalid_range(s3_root: str, s3_settings: Settings) -> None:
    url = s3_root + "short.bin"
    storage.put(url, b"12345", settings=s3_settings)
    store, key = open_store(url, s3_settings)
    assert list(store.iter_range(key, 5, 10)) == []  # at the end: nothing, as get_range
    with pytest.raises(InvalidRange) as info:
        list(store.iter_range(key, 9, 20))
    assert "short.bin" in str(info.value)
