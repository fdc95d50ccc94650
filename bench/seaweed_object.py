"""Shared by the connector benchmarks: a local file uploaded to a real SeaweedFS on loopback."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from xtremehub import storage
from xtremehub.config import Settings, use_process_settings
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS


@contextmanager
def files_on_seaweedfs(
    *local: Path, keys: Sequence[str] | None = None, bucket: str = "bench", weed_flags: Sequence[str] = ()
) -> Iterator[tuple[list[str], Settings]]:
    """Start SeaweedFS (with ``weed_flags`` added to ``weed server``'s), make it this process's (and
    its workers') store, upload each file (under its own name, or the matching ``keys``); yield
    ``(urls, settings)``."""
    with SeaweedFS.start(extra_args=weed_flags) as server:
        settings = server.settings(timeout=120)
        use_process_settings(settings)
        try:
            S3Store(bucket, settings.s3).create_bucket()
            urls = [f"s3://{bucket}/{key}" for key in (keys or [path.name for path in local])]
            for path, url in zip(local, urls, strict=True):
                with path.open("rb") as fh:
                    storage.put(url, fh, settings=settings)
            yield urls, settings
        finally:
            use_process_settings(None)


@contextmanager
def object_on_seaweedfs(
    local: Path, key: str, bucket: str = "bench", weed_flags: Sequence[str] = ()
) -> Iterator[tuple[str, Settings]]:
    """Start SeaweedFS, make it this process's store, upload ``local`` as ``key``; yield ``(url, settings)``."""
    with files_on_seaweedfs(local, keys=[key], bucket=bucket, weed_flags=weed_flags) as (urls, settings):
        yield urls[0], settings
