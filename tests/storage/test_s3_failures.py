"""S3 beyond the happy path, against a real SeaweedFS server: multipart, permissions, outages, cross-store copy."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import io
import pickle
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from xtremehub import config, storage
from xtremehub.config import S3Settings, Settings
from xtremehub.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidRange,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    XHubError,
)
from xtremehub.storage._memory import MemoryStore
from xtremehub.storage._s3 import S3Store, s3_errors
from xtremehub.testing.seaweedfs import ADMIN_KEY, ADMIN_SECRET, SeaweedFS, free_port
from xtremehub.testing.tcprelay import TcpRelay, Way

pytestmark = pytest.mark.s3

MiB = 1024 * 1024
SIZE = 12 * MiB + 12345  # three 5 MiB parts, the last one short


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def big() -> bytes:
    return random.Random(20240611).randbytes(SIZE)


@pytest.fixture
def multipart_settings(s3_settings: Settings) -> Settings:
    """Multipart from 5 MiB on, in 5 MiB parts (the S3 minimum part size)."""
    s3 = dataclasses.replace(s3_settings.s3, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    return s3_settings.replace(s3=s3)


# --------------------------------------------------------------------------- multipart upload


def _as_bytes(data: bytes) -> object:
    return data


def _as_chunks(data: bytes) -> object:
    return (data[i : i + MiB] for i in range(0, len(data), MiB))


def _check_upload(url: str, data: bytes, settings: Settings, info: storage.ObjectInfo) -> None:
    assert info.size == len(data)
    assert info.url == url
    assert storage.head(url, settings=settings).size == len(data)
    assert sha256(storage.get(url, settings=settings)) == sha256(data)
    # An S3 multipart ETag is "<md5 of part md5s>-<number of parts>"; a single PUT's is the plain md5.
    assert info.etag is not None
    assert info.etag.endswith("-3"), f"expected a 3-part multipart upload, got ETag {info.etag!r}"


@pytest.mark.parametrize("make_source", [_as_bytes, _as_chunks], ids=["bytes", "chunk-iterable"])
def test_multipart_upload_from_bytes_and_chunks(
    s3_root: str,
    multipart_settings: Settings,
    big: bytes,
    make_source: Callable[[bytes], object],
) -> None:
    url = f"{s3_root}big.bin"
    info = storage.put(url, make_source(big), settings=multipart_settings)  # type: ignore[arg-type]
    _check_upload(url, big, multipart_settings, info)


def test_multipart_upload_from_file_objects(
    s3_root: str, multipart_settings: Settings, big: bytes, tmp_path: Path
) -> None:
    url = f"{s3_root}from-bytesio.bin"
    _check_upload(url, big, multipart_settings, storage.put(url, io.BytesIO(big), settings=multipart_settings))

    path = tmp_path / "big.bin"
    path.write_bytes(big)
    url = f"{s3_root}from-file.bin"
    with path.open("rb") as fh:
        info = storage.put(url, fh, settings=multipart_settings)
        assert not fh.closed  # the caller's file stays the caller's
    _check_upload(url, big, multipart_settings, info)


def test_below_the_threshold_is_a_single_put(s3_root: str, multipart_settings: Settings, big: bytes) -> None:
    small = big[: 5 * MiB - 1]
    url = f"{s3_root}small.bin"
    info = storage.put(url, small, settings=multipart_settings)
    assert info.size == len(small)
    assert info.etag == hashlib.md5(small).hexdigest()  # a single PUT's ETag is the MD5
    assert sha256(storage.get(url, settings=multipart_settings)) == sha256(small)


def test_open_seek_and_read_across_part_boundaries(s3_root: str, multipart_settings: Settings, big: bytes) -> None:
    url = f"{s3_root}seekable.bin"
    storage.put(url, big, settings=multipart_settings)
    middle = SIZE // 2
    with storage.open(url, block_size=MiB, settings=multipart_settings) as fh:
        assert fh.seekable()
        assert fh.seek(middle - 1000) == middle - 1000
        assert fh.read(2000) == big[middle - 1000 : middle + 1000]
        assert fh.tell() == middle + 1000
        # straddle the first part boundary, which is not a block boundary here
        fh.seek(5 * MiB - 7)
        assert fh.read(3 * MiB) == big[5 * MiB - 7 : 8 * MiB - 7]
        fh.seek(-100, io.SEEK_END)
        assert fh.read() == big[-100:]
        assert fh.read(10) == b""
        fh.seek(0)
        assert sha256(fh.read()) == sha256(big)
    assert storage.get_range(url, middle, middle + 10, settings=multipart_settings) == big[middle : middle + 10]
    assert storage.get_ranges(url, [(0, 4), (SIZE - 4, SIZE + 100)], settings=multipart_settings) == [
        big[:4],
        big[-4:],
    ]


# --------------------------------------------------------------------------- permissions


def test_read_only_identity_can_read_and_list_but_not_write(
    seaweedfs: SeaweedFS, s3_settings: Settings, s3_root: str
) -> None:
    url = f"{s3_root}readable.txt"
    storage.put(url, b"written by admin", settings=s3_settings)
    reader = seaweedfs.settings(read_only=True)

    assert storage.get(url, settings=reader) == b"written by admin"
    assert storage.head(url, settings=reader).size == len(b"written by admin")
    assert [i.url for i in storage.list(s3_root, settings=reader)] == [url]

    target = f"{s3_root}forbidden.txt"
    with pytest.raises(AccessDenied) as excinfo:
        storage.put(target, b"nope", settings=reader)
    err = excinfo.value
    assert isinstance(err, PermissionError)
    assert isinstance(err, XHubError)
    assert err.url == target
    assert target in str(err)
    assert not storage.exists(target, settings=s3_settings)  # nothing was written

    with pytest.raises(AccessDenied) as excinfo:
        storage.delete(url, settings=reader)
    assert excinfo.value.url == url
    assert storage.get(url, settings=s3_settings) == b"written by admin"  # still there


def test_read_only_identity_cannot_multipart_upload(seaweedfs: SeaweedFS, s3_root: str, big: bytes) -> None:
    reader = seaweedfs.settings(read_only=True)
    reader = reader.replace(s3=dataclasses.replace(reader.s3, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    target = f"{s3_root}forbidden-multipart.bin"
    with pytest.raises(AccessDenied) as excinfo:
        storage.put(target, (big[i : i + MiB] for i in range(0, len(big), MiB)), settings=reader)
    assert excinfo.value.url == target
    assert target in str(excinfo.value)


def test_wrong_secret_key_is_access_denied(s3_settings: Settings, s3_root: str) -> None:
    url = f"{s3_root}secret.txt"
    storage.put(url, b"data", settings=s3_settings)
    wrong = s3_settings.replace(s3=dataclasses.replace(s3_settings.s3, secret_access_key="not-the-secret"))

    for operation in (
        lambda: storage.get(url, settings=wrong),
        lambda: storage.head(url, settings=wrong),  # HEAD has no error body: 403 alone
        lambda: storage.put(url, b"overwrite", settings=wrong),
        lambda: list(storage.list(s3_root, settings=wrong)),
    ):
        with pytest.raises(AccessDenied) as excinfo:
            operation()
        assert isinstance(excinfo.value, PermissionError)
        assert excinfo.value.url.startswith(s3_root)
        assert s3_root in str(excinfo.value)
    assert storage.get(url, settings=s3_settings) == b"data"


# --------------------------------------------------------------------------- outages


def _assert_unavailable(operation: Callable[[], object], url_prefix: str, limit: float) -> float:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as excinfo:
        operation()
    elapsed = time.monotonic() - started
    err = excinfo.value
    assert isinstance(err, ConnectionError)
    assert isinstance(err, StorageError)
    assert err.url.startswith(url_prefix)
    assert err.url in str(err)
    assert elapsed < limit, f"gave up only after {elapsed:.1f}s"
    return elapsed


@pytest.mark.slow
def test_server_stopped_mid_test_is_storage_unavailable() -> None:
    server = SeaweedFS.start()  # a private server: stopping the session one would break other tests
    try:
        # Setting up uses patient settings: a fresh SeaweedFS sometimes takes seconds over its
        # first write (it allocates a volume), which is not what this test is about.
        patient = server.settings(timeout=30.0, max_retries=2)
        settings = server.settings(timeout=2.0, max_retries=1)
        bucket = "xhub-outage"
        S3Store(bucket, patient.s3).create_bucket()
        url = f"s3://{bucket}/dir/object.bin"
        data = b"0123456789" * 1000
        storage.put(url, data, settings=patient)
        assert storage.get(url, settings=settings) == data
        assert storage.get_range(url, 10, 20, settings=settings) == data[10:20]
        assert [i.key for i in storage.list(f"s3://{bucket}/dir/", settings=settings)] == ["dir/object.bin"]

        server.stop(graceful=False)  # its data is not needed again
        assert server.process.poll() is not None

        operations: list[tuple[str, Callable[[], object]]] = [
            ("get", lambda: storage.get(url, settings=settings)),
            ("get_range", lambda: storage.get_range(url, 10, 20, settings=settings)),
            ("head", lambda: storage.head(url, settings=settings)),
            ("list", lambda: list(storage.list(f"s3://{bucket}/dir/", settings=settings))),
        ]
        for name, operation in operations:
            prefix = f"s3://{bucket}/dir/" if name == "list" else url
            _assert_unavailable(operation, prefix, limit=30.0)
    finally:
        server.stop(graceful=False)  # its data is not needed again


def test_nothing_listening_is_storage_unavailable_quickly() -> None:
    port = free_port()
    settings = Settings(
        s3=S3Settings(
            endpoint_url=f"http://127.0.0.1:{port}",
            region="us-east-1",
            access_key_id=ADMIN_KEY,
            secret_access_key=ADMIN_SECRET,
            addressing_style="path",
            connect_timeout=1.0,
            read_timeout=2.0,
            max_retries=1,
        )
    )
    url = "s3://nowhere/key.bin"
    _assert_unavailable(lambda: storage.get(url, settings=settings), url, limit=10.0)
    _assert_unavailable(lambda: storage.put(url, b"x", settings=settings), url, limit=10.0)
    _assert_unavailable(lambda: list(storage.list("s3://nowhere/", settings=settings)), "s3://nowhere/", limit=10.0)


@pytest.mark.parametrize("retries", [0, 1])
def test_max_retries_is_the_number_of_retries(retries: int) -> None:
    """A server that drops every connection: ``max_retries=N`` makes N + 1 attempts, no more."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    attempts = 0
    stop = threading.Event()

    def drop_connections() -> None:
        nonlocal attempts
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            attempts += 1
            connection.close()

    thread = threading.Thread(target=drop_connections)
    thread.start()
    try:
        s3 = S3Settings(
            endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            region="us-east-1",
            access_key_id=ADMIN_KEY,
            secret_access_key=ADMIN_SECRET,
            addressing_style="path",
            max_retries=retries,
        )
        with pytest.raises(StorageUnavailable):
            storage.head("s3://dropped/key.bin", settings=Settings(s3=s3))
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert attempts == retries + 1


# --------------------------------------------------------------------------- cross-store copy


def test_copy_from_s3_to_a_local_path(s3_root: str, s3_settings: Settings, big: bytes, tmp_path: Path) -> None:
    src = f"{s3_root}to-local.bin"
    data = big[: 6 * MiB + 3]
    storage.put(src, data, settings=s3_settings)
    dst = tmp_path / "sub" / "copy.bin"
    info = storage.copy(src, str(dst), settings=s3_settings)
    assert info.size == len(data)
    assert sha256(dst.read_bytes()) == sha256(data)


def test_copy_from_memory_to_s3(s3_root: str, multipart_settings: Settings, big: bytes) -> None:
    bucket = f"xhub-copy-{uuid.uuid4().hex[:8]}"
    MemoryStore(bucket).create_bucket()
    src = f"mem://{bucket}/source.bin"
    storage.put(src, big)
    dst = f"{s3_root}from-memory.bin"
    info = storage.copy(src, dst, settings=multipart_settings)  # streamed, multipart at this size
    assert info.url == dst
    assert info.size == len(big)
    assert sha256(storage.get(dst, settings=multipart_settings)) == sha256(big)


def test_copy_within_s3_is_server_side_and_equal(s3_root: str, s3_settings: Settings) -> None:
    src, dst = f"{s3_root}a.txt", f"{s3_root}b/a-copy.txt"
    storage.put(src, b"same bytes", settings=s3_settings)
    assert storage.copy(src, dst, settings=s3_settings).size == len(b"same bytes")
    assert storage.get(dst, settings=s3_settings) == b"same bytes"


# --------------------------------------------------------------------------- pickling without credentials


@pytest.fixture
def no_process_settings() -> Iterator[None]:
    config.use_process_settings(None)
    try:
        yield
    finally:
        config.use_process_settings(None)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_s3_store_pickles_without_credentials(
    s3_settings: Settings, s3_bucket: str, s3_root: str, protocol: int, no_process_settings: None
) -> None:
    secret = "pickle-must-not-carry-this-" + uuid.uuid4().hex
    token = "session-token-" + uuid.uuid4().hex
    s3 = dataclasses.replace(s3_settings.s3, secret_access_key=secret, session_token=token)
    payload = pickle.dumps(S3Store(s3_bucket, s3), protocol=protocol)
    assert secret.encode() not in payload
    assert token.encode() not in payload
    assert ADMIN_SECRET.encode() not in pickle.dumps(S3Store(s3_bucket, s3_settings.s3), protocol=protocol)

    # The receiving side resolves the store from its own configuration.
    config.use_process_settings(s3_settings)
    store = pickle.loads(payload)
    assert isinstance(store, S3Store)
    assert store.bucket == s3_bucket
    assert store.settings == s3_settings.s3
    key = s3_root.removeprefix(f"s3://{s3_bucket}/") + "pickled.txt"
    store.put(key, b"works after unpickling")
    assert storage.get(f"{s3_root}pickled.txt", settings=s3_settings) == b"works after unpickling"


def test_list_follows_pagination(s3_settings: Settings, s3_root: str) -> None:
    """Listings longer than one page are fetched lazily, page after page, in key order."""
    small_pages = s3_settings.replace(s3=dataclasses.replace(s3_settings.s3, list_page_size=3))
    names = [f"k{i:02d}" for i in range(11)]
    for name in names:
        storage.put(s3_root + name, name.encode(), settings=s3_settings)
    store = storage.open_store(s3_root, small_pages)[0]
    requests: list[object] = []
    store.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: requests.append(kw))  # type: ignore[attr-defined]
    listed = storage.list(s3_root, settings=small_pages)
    first = next(listed)
    assert first.key.endswith("k00")
    assert len(requests) == 1  # lazy: one page fetched so far
    assert [first.key.rsplit("/", 1)[1]] + [i.key.rsplit("/", 1)[1] for i in listed] == names
    assert len(requests) == 4  # 11 keys in pages of 3


# --------------------------------------------------------------------------- the one translating boundary


def test_errors_name_the_range_and_chain_the_vendor_error(s3_settings: Settings, s3_root: str) -> None:
    from botocore.exceptions import ClientError

    url = f"{s3_root}ranged.bin"
    storage.put(url, b"0123456789" * 3, settings=s3_settings)
    wrong = s3_settings.replace(s3=dataclasses.replace(s3_settings.s3, secret_access_key="not-the-secret"))
    with pytest.raises(AccessDenied) as denied:
        storage.get_range(url, 10, 20, settings=wrong)
    assert str(denied.value).startswith(f"{url}: GET bytes [10, 20): ")
    assert isinstance(denied.value.__cause__, ClientError)

    with pytest.raises(InvalidRange) as past:
        storage.get_range(url, 31, 40, settings=s3_settings)
    assert str(past.value) == f"{url}: bytes [31, 40) starts past the end (size 30)"
    assert isinstance(past.value.__cause__, ClientError)
    assert storage.get_range(url, 30, 40, settings=s3_settings) == b""  # at the end: empty, as HTTP says

    with pytest.raises(ObjectNotFound) as missing:
        storage.get(f"{s3_root}never-written", settings=s3_settings)
    assert str(missing.value).startswith(f"{s3_root}never-written: GET: ")
    assert isinstance(missing.value.__cause__, ClientError)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("NoSuchKey", ObjectNotFound),
        ("NoSuchBucket", BucketNotFound),
        ("SignatureDoesNotMatch", AccessDenied),
        ("InvalidRange", InvalidRange),
        ("SlowDown", StorageUnavailable),
        ("SomethingNew", StorageError),
    ],
)
def test_one_table_maps_s3_codes(code: str, expected: type[StorageError]) -> None:
    from botocore.exceptions import ClientError

    vendor = ClientError({"Error": {"Code": code, "Message": "said the server"}}, "GetObject")
    with pytest.raises(expected) as excinfo, s3_errors("s3://b/k", "GET bytes [0, 4)"):
        raise vendor
    assert type(excinfo.value) is expected
    assert str(excinfo.value) == f"s3://b/k: GET bytes [0, 4): said the server (S3 {code})"
    assert excinfo.value.__cause__ is vendor


def test_the_boundary_maps_transport_errors_and_passes_bugs_through() -> None:
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, NoCredentialsError, ReadTimeoutError

    with pytest.raises(StorageUnavailable, match="unreachable after retries"), s3_errors("s3://b/k"):
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1")
    with pytest.raises(AccessDenied, match="XHUB_S3_ACCESS_KEY_ID"), s3_errors("s3://b/k"):
        raise NoCredentialsError()
    with pytest.raises(AccessDenied, match="s3://b/k: PUT: denied"), s3_errors("s3://b/k", "PUT"):  # noqa: PT012
        try:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "UploadPart")
        except ClientError as exc:
            raise S3UploadFailedError("Failed to upload") from exc
    with pytest.raises(TypeError, match="a bug"), s3_errors("s3://b/k"):
        raise TypeError("a bug")


def test_every_boto3_call_is_inside_the_boundary() -> None:
    """``_s3.py`` calls boto3 only inside ``with s3_errors(...)``, and catches broadly nowhere else."""
    from xtremehub.storage import _s3

    tree = ast.parse(Path(_s3.__file__).read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def inside_boundary(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.With) and any(
                isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "id", "") == "s3_errors"
                for item in node.items
            ):
                return True
        return False

    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "client" and getattr(node.value, "id", "") == "self"
    ]
    assert len(calls) >= 8
    outside = [node.lineno for node in calls if not inside_boundary(node)]
    assert outside == [], f"boto3 called outside s3_errors at lines {outside}"
    broad = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.ExceptHandler)
        and getattr(node.type, "id", None) in (None, "Exception", "BaseException")
    ]
    boundary = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "s3_errors")
    assert all(boundary.lineno < line <= (boundary.end_lineno or 0) for line in broad), broad


# --------------------------------------------------------------------------- a stream broken mid-body


class _CuttingProxy(TcpRelay):
    """A relay in front of the real SeaweedFS that breaks the first ``cuts`` responses longer
    than ``after`` bytes: it forwards ``after`` bytes of the answer, then closes both sides (what
    a connection reset or a dying load balancer does mid-body). Not a mock: the requests and
    answers are SeaweedFS's own, only the connection is cut."""

    def __init__(self, upstream: str, after: int, cuts: int) -> None:
        parts = urlsplit(upstream)
        super().__init__(parts.hostname or "127.0.0.1", parts.port or 80)
        self.url = f"http://127.0.0.1:{self.port}"
        self._after, self._left = after, cuts
        self.cut_answers = 0

    def pump(self, way: Way, src: socket.socket, dst: socket.socket) -> None:
        sent = 0
        while data := src.recv(65536):
            if way == "down" and sent + len(data) > self._after:
                with self.lock:
                    cut, self._left = self._left > 0, self._left - 1
                if cut:
                    dst.sendall(data[: self._after - sent])
                    self.cut_answers += 1
                    self.close_both(src, dst)
                    return
                self._after = 1 << 62  # cuts used up: forward the rest untouched
            dst.sendall(data)
            sent += len(data)


def _through(proxy: _CuttingProxy, settings: Settings) -> Settings:
    return settings.replace(s3=dataclasses.replace(settings.s3, endpoint_url=proxy.url))


def test_a_streamed_range_broken_mid_body_resumes_where_it_broke(
    s3_root: str, s3_settings: Settings, big: bytes
) -> None:
    """``iter_range`` reads a whole range from one GET; a connection cut mid-body is resumed with a
    new GET from the first byte not yet handed out: the bytes are exact, none twice, none missing."""
    url = s3_root + "streamed-cut.bin"
    storage.put(url, big, settings=s3_settings)
    proxy = _CuttingProxy(s3_settings.s3.endpoint_url or "", after=3 * MiB + 777, cuts=2)
    try:
        store, key = storage.open_store(url, _through(proxy, s3_settings))
        got = b"".join(store.iter_range(key, 100, SIZE - 5, piece=MiB))
    finally:
        proxy.close()
    assert proxy.cut_answers == 2  # both breaks happened...
    assert sha256(got) == sha256(big[100 : SIZE - 5])  # ...and the bytes are exactly the range


def test_a_streamed_range_that_keeps_breaking_is_unavailable_naming_the_byte(
    s3_root: str, s3_settings: Settings, big: bytes
) -> None:
    url = s3_root + "streamed-cut-always.bin"
    storage.put(url, big, settings=s3_settings)
    settings = s3_settings.replace(s3=dataclasses.replace(s3_settings.s3, max_retries=1))
    proxy = _CuttingProxy(s3_settings.s3.endpoint_url or "", after=2 * MiB, cuts=1000)
    try:
        store, key = storage.open_store(url, _through(proxy, settings))
        pieces = store.iter_range(key, 0, SIZE, piece=MiB)
        with pytest.raises(StorageUnavailable, match=r"at byte \d+") as info:
            for _ in pieces:
                pass
    finally:
        proxy.close()
    assert url in str(info.value)
    assert proxy.cut_answers >= 2  # the first GET and one resume


def test_a_range_source_reads_on_after_a_broken_stream(s3_root: str, s3_settings: Settings, big: bytes) -> None:
    """A slice's reader whose stream broke beyond the store's resumes asks again from where it was
    (before, the dead stream stayed and the next read called the object cut short)."""
    from xtremehub.connectors.codecs.source import RangeSource

    url = s3_root + "range-source-cut.bin"
    storage.put(url, big, settings=s3_settings)
    settings = s3_settings.replace(s3=dataclasses.replace(s3_settings.s3, max_retries=0))
    proxy = _CuttingProxy(s3_settings.s3.endpoint_url or "", after=2 * MiB + 5, cuts=1)
    try:
        source = RangeSource(url, SIZE, 0, SIZE, settings=_through(proxy, settings))
        got = bytearray()

        def drain() -> None:
            while data := source.read():
                got.extend(data)

        with pytest.raises(StorageUnavailable):
            drain()
        drain()  # the application retries: the reader goes on from where it was
    finally:
        proxy.close()
    assert bytes(got) == big
