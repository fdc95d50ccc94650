"""S3-compatible store (AWS, MinIO, Ceph, SeaweedFS) on boto3.

boto3 was chosen over obstore and s3fs by ``bench/storage_ranged_get.py`` (see
``bench/README.md``): ranged-GET throughput was within noise of obstore and
ahead of s3fs, and unlike obstore's tokio runtime, a boto3 client can be
re-created safely in forked worker processes.

Vendor errors are translated here and nowhere else: every boto3 call runs inside the
:func:`s3_errors` boundary, which maps them with one table (``_CODES``) and chains them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from xtremehub.config import S3Settings
from xtremehub.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidRange,
    MissingDependency,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from xtremehub.storage.base import ByteRange, ObjectInfo, PutSource, Store
from xtremehub.storage.chunks import iter_chunks
from xtremehub.storage.iostats import count_read

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Store", "s3_errors", "translate"]

# The one table of vendor errors -> our errors (like s3fs's, but to our hierarchy). Keys are S3
# error codes, HTTP statuses (HEAD answers have no body, only a status), and names of botocore
# exception classes raised before or instead of an HTTP answer (matched along the class's MRO,
# most specific first).
_CODES: dict[str, type[StorageError]] = {
    "NoSuchKey": ObjectNotFound,
    "404": ObjectNotFound,
    "NotFound": ObjectNotFound,
    "NoSuchBucket": BucketNotFound,
    "AccessDenied": AccessDenied,
    "403": AccessDenied,
    "Forbidden": AccessDenied,
    "InvalidAccessKeyId": AccessDenied,
    "SignatureDoesNotMatch": AccessDenied,
    "AllAccessDisabled": AccessDenied,
    "InvalidRange": InvalidRange,
    "416": InvalidRange,
    "SlowDown": StorageUnavailable,
    "ServiceUnavailable": StorageUnavailable,
    "InternalError": StorageUnavailable,
    "503": StorageUnavailable,
    "500": StorageUnavailable,
    "NoCredentialsError": AccessDenied,
    "PartialCredentialsError": AccessDenied,
    "EndpointConnectionError": StorageUnavailable,
    "ConnectTimeoutError": StorageUnavailable,
    "HTTPClientError": StorageUnavailable,  # read timeouts, closed connections, broken streams
    "ConnectionError": StorageUnavailable,  # botocore's (proxy, SSL) and the builtin one
    "IncompleteReadError": StorageUnavailable,  # a body that ended before its Content-Length
    "BotoCoreError": StorageError,
    "OSError": StorageError,  # e.g. reading the caller's file object during an upload
}

_HINTS: dict[str, str] = {
    "NoCredentialsError": "set XHUB_S3_ACCESS_KEY_ID/XHUB_S3_SECRET_ACCESS_KEY",
    "PartialCredentialsError": "set XHUB_S3_ACCESS_KEY_ID/XHUB_S3_SECRET_ACCESS_KEY",
}


def translate(exc: BaseException, url: str, operation: str = "") -> StorageError | None:
    """Our error for a botocore/boto3 exception about ``url``, or ``None`` if it is not a storage error.

    ``operation`` (``"GET bytes [0, 10)"``) goes into the message, after the URL.

    Example:
        >>> from botocore.exceptions import ClientError
        >>> exc = ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        >>> err = translate(exc, "s3://b/k", "GET bytes [0, 10)")
        >>> type(err).__name__, str(err)
        ('ObjectNotFound', 's3://b/k: GET bytes [0, 10): gone (S3 NoSuchKey)')
        >>> translate(TypeError("a bug, not a storage error"), "s3://b/k") is None
        True
        >>> try:
        ...     try:
        ...         raise exc
        ...     except Exception:
        ...         raise KeyError("a bug while handling it")
        ... except KeyError as bug:
        ...     translate(bug, "s3://b/k") is None
        True
    """
    from botocore.exceptions import ClientError

    if isinstance(exc, StorageError):
        return exc
    where = f"{operation}: " if operation else ""
    if isinstance(exc, ClientError):  # the service answered
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        cls = _CODES.get(code) or _CODES.get(status) or StorageError
        return cls(url, f"{where}{err.get('Message') or code or status} (S3 {code or status})")
    for klass in type(exc).__mro__:
        if klass.__name__ in _CODES:
            cls = _CODES[klass.__name__]
            hint = _HINTS.get(klass.__name__)
            detail = f"{type(exc).__name__}: {exc}" + (f" ({hint})" if hint else "")
            if cls is StorageUnavailable:
                detail = f"unreachable after retries: {detail}"
            return cls(url, where + detail)
    # boto3 wraps some failures around the botocore error (S3UploadFailedError, raised inside the
    # except block without ``from``): follow the cause of such wrappers only, so that a bug raised
    # while a storage error was being handled stays a bug.
    cause = exc.__cause__ or exc.__context__
    if cause is not None and type(exc).__module__.split(".")[0] in ("boto3", "botocore", "s3transfer"):
        return translate(cause, url, operation)
    return None


@contextlib.contextmanager
def s3_errors(url: str, operation: str = "") -> Iterator[None]:
    """The one boundary where vendor exceptions become ours, chained with ``raise ... from``.

    Every call into boto3 runs inside it; what :func:`translate` does not know (a bug,
    ``KeyboardInterrupt``) passes through unchanged.

    Example:
        >>> from botocore.exceptions import EndpointConnectionError
        >>> with s3_errors("s3://b/k", "HEAD"):
        ...     raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        Traceback (most recent call last):
        ...
        xtremehub.errors.StorageUnavailable: s3://b/k: HEAD: unreachable after retries: ...
    """
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        err = translate(exc, url, operation)
        if err is None:
            raise
        raise err from exc


@functools.lru_cache(maxsize=64)
def _client(settings: S3Settings, pid: int) -> S3Client:
    # One client per settings per process: boto3 clients are thread-safe but must
    # not cross a fork (their connection pools would be shared), hence ``pid``.
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - boto3 is a core dependency
        raise MissingDependency("S3 support needs boto3: pip install xtremehub") from exc
    config = Config(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # total_max_attempts counts the first attempt; botocore's "max_attempts" key counts retries
        # only, so max_attempts=max_retries + 1 made one retry more than asked (one at max_retries=0)
        retries={"total_max_attempts": settings.max_retries + 1, "mode": "standard"},
        max_pool_connections=max(settings.max_concurrency, 10),
        s3={"addressing_style": settings.addressing_style},
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region or "us-east-1",
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
        config=config,
    )


class _ChunkReader(io.RawIOBase):
    """A read-only file object over an iterator of byte chunks (for multipart upload)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending: memoryview = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class S3Store(Store):
    """One bucket of an S3-compatible service (ranges stream: one GET each, see :meth:`iter_range`).

    Example:
        >>> from xtremehub.config import S3Settings
        >>> S3Store("reads", S3Settings(endpoint_url="http://127.0.0.1:8333")).url("a/b.fq.gz")
        's3://reads/a/b.fq.gz'
    """

    streams_ranges = True

    def __init__(self, bucket: str, settings: S3Settings) -> None:
        self.bucket = bucket
        self.settings = settings
        self.max_concurrency = settings.max_concurrency

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, endpoint={self.settings.endpoint_url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Store) and (other.bucket, other.settings) == (self.bucket, self.settings)

    def __hash__(self) -> int:
        return hash(("s3", self.bucket, self.settings))

    def __reduce__(self) -> tuple[object, ...]:
        # Never pickle credentials: a worker resolves the store from its own configuration.
        from xtremehub.storage.registry import resolve_s3_store

        return (resolve_s3_store, (self.bucket,))

    @property
    def client(self) -> S3Client:
        return _client(self.settings, os.getpid())

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def create_bucket(self) -> None:
        """Create the bucket (idempotent); for tests and first-time set-up."""
        from botocore.exceptions import ClientError

        with s3_errors(f"s3://{self.bucket}/", "CREATE BUCKET"):
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def get(self, key: str) -> bytes:
        with s3_errors(self.url(key), "GET"):
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        rng = ByteRange(start, end)
        try:
            with s3_errors(self.url(key), f"GET {rng}"):
                return self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")[
                    "Body"
                ].read()
        except InvalidRange as exc:
            size = self.head(key).size
            if start == size:
                return b""  # S3 answers 416 for a range starting at the end; we say "empty"
            raise InvalidRange(self.url(key), f"{rng} starts past the end (size {size})") from exc.__cause__

    def iter_range(self, key: str, start: int, end: int, *, piece: int = 1 << 20) -> Generator[bytes, None, None]:
        """One ranged GET for ``[start, end)``, its body read ``piece`` bytes at a time (see
        :meth:`Store.iter_range`): SeaweedFS measured about 4 ms of CPU per GET on this
        project's bench machine, so a slice read in one request instead of 4 MiB parts saves it.

        botocore retries the request, not the reading of its body: a connection that breaks
        mid-body is resumed here with a new GET from the first byte not yet handed out (up to
        ``max_retries`` times, each conditional on the first answer's ETag, so a replaced
        object fails instead of splicing two versions); the error names the byte it broke at.
        """
        if end <= start:
            return
        url, pos, etag, resumes = self.url(key), start, "", 0
        while True:
            rng = ByteRange(pos, end)
            try:
                same: dict[str, Any] = {"IfMatch": etag} if etag else {}  # a resume reads the same version
                with s3_errors(url, f"GET {rng}"):
                    resp = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={pos}-{end - 1}", **same)
            except InvalidRange as exc:
                size = self.head(key).size
                if pos == size:
                    return
                raise InvalidRange(url, f"{rng} starts past the end (size {size})") from exc.__cause__
            etag, body = etag or str(resp.get("ETag", "")), resp["Body"]
            try:
                while True:
                    try:
                        with s3_errors(url, f"GET {ByteRange(start, end)}, at byte {pos}"):
                            data = body.read(piece)
                            while data and len(data) < piece and (more := body.read(piece - len(data))):
                                data += more  # whole pieces, as the contract says
                    except StorageUnavailable:
                        if resumes >= self.settings.max_retries:
                            raise
                        resumes += 1
                        _log.info("%s: the GET broke at byte %d of [%d, %d); resuming there", url, pos, start, end)
                        break
                    if not data:
                        return
                    pos += len(data)
                    count_read(len(data))
                    yield data
            finally:
                body.close()

    def put(self, key: str, data: PutSource) -> ObjectInfo:
        from boto3.s3.transfer import TransferConfig

        if isinstance(data, list | tuple) and sum(len(p) for p in data) < self.settings.multipart_threshold:
            data = b"".join(data)  # pieces of a known, small total: one PUT
        with s3_errors(self.url(key), "PUT"):
            if isinstance(data, bytes | bytearray | memoryview) and len(data) < self.settings.multipart_threshold:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
            else:
                fileobj: Any
                if isinstance(data, bytes | bytearray | memoryview):
                    fileobj = io.BytesIO(data)
                elif hasattr(data, "read"):
                    fileobj = data
                else:
                    fileobj = io.BufferedReader(_ChunkReader(iter_chunks(data)), buffer_size=1 << 20)
                config = TransferConfig(
                    multipart_threshold=self.settings.multipart_threshold,
                    multipart_chunksize=self.settings.multipart_chunksize,
                    max_concurrency=min(self.settings.max_concurrency, 8),
                    use_threads=True,
                )
                self.client.upload_fileobj(fileobj, self.bucket, key, Config=config)
        return self.head(key)

    def head(self, key: str) -> ObjectInfo:
        with s3_errors(self.url(key), "HEAD"):
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        return ObjectInfo(
            url=self.url(key),
            key=key,
            size=int(resp["ContentLength"]),
            etag=str(resp.get("ETag", "")).strip('"') or None,
            mtime=resp.get("LastModified"),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with s3_errors(self.url(prefix), "LIST"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.settings.list_page_size}
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"]
                    yield ObjectInfo(
                        url=self.url(key),
                        key=key,
                        size=int(item["Size"]),
                        etag=str(item.get("ETag", "")).strip('"') or None,
                        mtime=item.get("LastModified"),
                    )

    def delete(self, key: str) -> None:
        self.head(key)  # S3 deletes missing keys silently; our contract says ObjectNotFound
        with s3_errors(self.url(key), "DELETE"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        from boto3.s3.transfer import TransferConfig

        with s3_errors(self.url(src), f"COPY to {self.url(dst)}"):
            self.client.copy(
                {"Bucket": self.bucket, "Key": src},
                self.bucket,
                dst,
                Config=TransferConfig(multipart_threshold=self.settings.multipart_threshold),
            )
        return self.head(dst)
