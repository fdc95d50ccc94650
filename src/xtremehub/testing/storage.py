"""Storage conformance suite: every store must pass these tests unchanged.

Subclass :class:`StoreTests` and provide two fixtures::

    class TestMyStore(StoreTests):
        @pytest.fixture
        def root(self) -> str:            # an empty URL prefix, unique per test
            return "mys://bucket/some-unique-prefix/"

        @pytest.fixture
        def settings(self) -> Settings:   # settings that reach the store
            return Settings()

Stores with buckets (S3, memory) subclass :class:`BucketStoreTests` instead and
also provide ``missing_bucket_root``: a prefix in a bucket that does not exist.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable

import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import BucketNotFound, InvalidRange, ObjectNotFound, StorageError, XHubError

__all__ = ["BucketStoreTests", "StoreTests"]


class StoreTests:
    """The contract of :class:`xtremehub.storage.Store`, exercised through URLs."""

    @pytest.fixture
    def root(self) -> str:
        raise NotImplementedError("subclasses provide an empty, unique URL prefix")

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings()

    # -- put / get -----------------------------------------------------------------
    def test_put_get_bytes(self, root: str, settings: Settings) -> None:
        info = storage.put(root + "a.bin", b"\x00\x01payload", settings=settings)
        assert info.size == 9
        assert info.url == root + "a.bin"
        assert storage.get(root + "a.bin", settings=settings) == b"\x00\x01payload"

    def test_put_empty_object(self, root: str, settings: Settings) -> None:
        assert storage.put(root + "empty", b"", settings=settings).size == 0
        assert storage.get(root + "empty", settings=settings) == b""
        assert storage.get_range(root + "empty", 0, 10, settings=settings) == b""

    def test_put_file_object_and_chunk_iterable(self, root: str, settings: Settings) -> None:
        payload = os.urandom(300_000)
        storage.put(root + "from-file", io.BytesIO(payload), settings=settings)
        chunks = (payload[i : i + 65536] for i in range(0, len(payload), 65536))
        storage.put(root + "from-iter", chunks, settings=settings)
        assert storage.get(root + "from-file", settings=settings) == payload
        assert storage.get(root + "from-iter", settings=settings) == payload

    def test_put_replaces_and_changes_etag(self, root: str, settings: Settings) -> None:
        first = storage.put(root + "v", b"version one", settings=settings)
        second = storage.put(root + "v", b"version two!", settings=settings)
        assert storage.get(root + "v", settings=settings) == b"version two!"
        assert second.size == 12
        assert first.etag != second.etag

    def test_put_rejects_non_bytes_chunks(self, root: str, settings: Settings) -> None:
        with pytest.raises(TypeError, match="expected bytes"):
            storage.put(root + "bad", iter(["text"]), settings=settings)  # type: ignore[arg-type]

    # -- head / exists ---------------------------------------------------------------
    def test_head(self, root: str, settings: Settings) -> None:
        storage.put(root + "h", b"12345", settings=settings)
        info = storage.head(root + "h", settings=settings)
        assert (info.size, info.key.endswith("h"), info.url) == (5, True, root + "h")
        assert info.etag
        assert info.mtime is not None

    def test_exists(self, root: str, settings: Settings) -> None:
        assert not storage.exists(root + "nope", settings=settings)
        storage.put(root + "yes", b"1", settings=settings)
        assert storage.exists(root + "yes", settings=settings)

    # -- missing objects -------------------------------------------------------------
    @pytest.mark.parametrize("op", ["get", "head", "get_range", "delete", "open"])
    def test_missing_key_is_object_not_found(self, root: str, settings: Settings, op: str) -> None:
        url = root + "does/not/exist.txt"
        call: Callable[[], object] = {
            "get": lambda: storage.get(url, settings=settings),
            "head": lambda: storage.head(url, settings=settings),
            "get_range": lambda: storage.get_range(url, 0, 4, settings=settings),
            "delete": lambda: storage.delete(url, settings=settings),
            "open": lambda: storage.open(url, settings=settings),
        }[op]
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert isinstance(info.value, FileNotFoundError)
        assert isinstance(info.value, XHubError)
        assert url in str(info.value)

    # -- ranges ----------------------------------------------------------------------
    def test_get_range(self, root: str, settings: Settings) -> None:
        storage.put(root + "r", b"0123456789", settings=settings)
        assert storage.get_range(root + "r", 2, 5, settings=settings) == b"234"
        assert storage.get_range(root + "r", 0, 10, settings=settings) == b"0123456789"
        assert storage.get_range(root + "r", 7, 100, settings=settings) == b"789"  # clipped
        assert storage.get_range(root + "r", 10, 12, settings=settings) == b""  # at the end
        assert storage.get_range(root + "r", 3, 3, settings=settings) == b""

    def test_range_past_end_is_invalid_range(self, root: str, settings: Settings) -> None:
        storage.put(root + "r", b"0123456789", settings=settings)
        with pytest.raises(InvalidRange) as info:
            storage.get_range(root + "r", 11, 20, settings=settings)
        assert isinstance(info.value, ValueError)
        assert root + "r" in str(info.value)
        assert "11" in str(info.value)

    def test_negative_or_reversed_range(self, root: str, settings: Settings) -> None:
        storage.put(root + "r", b"0123", settings=settings)
        with pytest.raises(ValueError, match="invalid byte range"):
            storage.get_range(root + "r", 3, 1, settings=settings)
        with pytest.raises(ValueError, match="invalid byte range"):
            storage.get_range(root + "r", -1, 2, settings=settings)

    def test_get_ranges_many_at_once_in_order(self, root: str, settings: Settings) -> None:
        payload = os.urandom(1 << 20)
        storage.put(root + "big", payload, settings=settings)
        ranges = [(i * 7919 % (1 << 20), min(i * 7919 % (1 << 20) + 5000, 1 << 20)) for i in range(64)]
        parts = storage.get_ranges(root + "big", ranges, settings=settings)
        assert parts == [payload[a:b] for a, b in ranges]

    # -- list ------------------------------------------------------------------------
    def test_list_prefix(self, root: str, settings: Settings) -> None:
        for name in ["d/a", "d/b", "d/sub/c", "e/x", "dz"]:
            storage.put(root + name, name.encode(), settings=settings)
        listed = storage.list(root + "d/", settings=settings)
        assert not isinstance(listed, list)  # lazy iterator
        urls = sorted(info.url for info in listed)
        assert urls == [root + "d/a", root + "d/b", root + "d/sub/c"]
        everything = sorted(info.url for info in storage.list(root, settings=settings))
        assert everything == sorted(root + n for n in ["d/a", "d/b", "d/sub/c", "dz", "e/x"])
        sizes = {info.url: info.size for info in storage.list(root + "d", settings=settings)}
        assert sizes[root + "dz"] == 2

    def test_list_empty_prefix_is_empty(self, root: str, settings: Settings) -> None:
        assert list(storage.list(root + "nothing-here/", settings=settings)) == []

    # -- delete / copy ---------------------------------------------------------------
    def test_delete(self, root: str, settings: Settings) -> None:
        storage.put(root + "gone", b"x", settings=settings)
        storage.delete(root + "gone", settings=settings)
        assert not storage.exists(root + "gone", settings=settings)

    def test_copy(self, root: str, settings: Settings) -> None:
        storage.put(root + "src", b"copy me", settings=settings)
        info = storage.copy(root + "src", root + "dst/copied", settings=settings)
        assert info.size == 7
        assert storage.get(root + "dst/copied", settings=settings) == b"copy me"
        assert storage.get(root + "src", settings=settings) == b"copy me"

    def test_copy_missing_source(self, root: str, settings: Settings) -> None:
        with pytest.raises(ObjectNotFound):
            storage.copy(root + "no-src", root + "dst", settings=settings)

    # -- file object -------------------------------------------------------------------
    def test_open_seek_read(self, root: str, settings: Settings) -> None:
        payload = bytes(range(256)) * 1000
        storage.put(root + "f", payload, settings=settings)
        with storage.open(root + "f", block_size=4096, settings=settings) as fh:
            assert fh.seekable()
            fh.seek(1000)
            assert fh.read(10) == payload[1000:1010]
            assert fh.tell() == 1010
            fh.seek(-5, io.SEEK_END)
            assert fh.read() == payload[-5:]
            fh.seek(0)
            assert fh.read() == payload

    def test_open_feeds_c_libraries(self, root: str, settings: Settings) -> None:
        text = b"".join(b"line %d\n" % i for i in range(20000))
        storage.put(root + "t.gz", gzip.compress(text), settings=settings)
        with storage.open(root + "t.gz", settings=settings) as raw, gzip.GzipFile(fileobj=raw) as fh:
            assert fh.read() == text
        whole = storage.get(root + "t.gz", settings=settings)
        assert zlib.decompress(whole, wbits=31) == text

    def test_errors_share_one_hierarchy(self, root: str, settings: Settings) -> None:
        with pytest.raises(StorageError):
            storage.get(root + "missing", settings=settings)


class BucketStoreTests(StoreTests):
    """:class:`StoreTests` plus the behaviour of stores that have buckets."""

    @pytest.fixture
    def missing_bucket_root(self) -> str:
        raise NotImplementedError("subclasses provide a prefix in a bucket that does not exist")

    def test_missing_bucket(self, missing_bucket_root: str, settings: Settings) -> None:
        with pytest.raises(BucketNotFound) as info:
            list(storage.list(missing_bucket_root, settings=settings))
        assert "bucket" in str(info.value).lower()
        with pytest.raises(ObjectNotFound):  # BucketNotFound or ObjectNotFound, both FileNotFoundError
            storage.get(missing_bucket_root + "k", settings=settings)
