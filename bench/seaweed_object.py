"""Shared by the connector benchmarks: a local file uploaded to a real SeaweedFS on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xtremehub import storage
from xtremehub.config import Settings, use_process_settings
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS


@contextmanager
def object_on_seaweedfs(local: Path, key: str, bucket: str = "bench") -> Iterator[tuple[str, Settings]]:
    """Start SeaweedFS, make it this process's (and its workers') store, upload ``local``;
    yield ``(url, settings)``."""
    with SeaweedFS.start() as server:
        settings = server.settings(timeout=120)
        use_process_settings(settings)
        try:
            S3Store(bucket, settings.s3).create_bucket()
            url = f"s3://{bucket}/{key}"
            with local.open("rb") as fh:
                storage.put(url, fh, settings=settings)
            yield url, settings
        finally:
            use_process_settings(None)
