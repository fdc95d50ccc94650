"""``xtremehub.lithops.Storage``: Lithops's ``Storage`` API on any XtremeHub store.

The storage section of a Lithops config picks the store: ``localhost`` keeps buckets
as directories where Lithops's localhost storage keeps them (or under
``localhost.storage_root``), the S3-compatible backends (``aws_s3``, ``minio``,
``ceph``, ...) use XtremeHub's S3 store with the section's endpoint and credentials,
and any XtremeHub scheme (``mem``, ``s3``) names itself.

Example:
    >>> storage = Storage(storage_config={"backend": "mem", "mem": {"storage_bucket": "demo"}})
    >>> storage.put_object(storage.bucket, "dir/a.txt", b"hello")
    >>> storage.get_object(storage.bucket, "dir/a.txt")
    b'hello'
    >>> storage.list_keys(storage.bucket, "dir/")
    ['dir/a.txt']
    >>> co = storage.put_cloudobject(b"payload")
    >>> storage.get_cloudobject(co)
    b'payload'
"""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from xtremehub.config import Settings, default_settings
from xtremehub.errors import ConfigError, ObjectNotFound
from xtremehub.lithops.config import (
    LITHOPS_TEMP_DIR,
    S3_BACKENDS,
    default_config,
    extract_storage_config,
    settings_for,
)
from xtremehub.lithops.storage.utils import CloudObject, StorageNoSuchKeyError
from xtremehub.storage.access import StoreAccess
from xtremehub.storage.base import Store

__all__ = ["CloudObject", "Storage", "StorageNoSuchKeyError"]

#: Where ``put_cloudobject`` puts objects without a key (as Lithops's temporary prefix).
CLOUDOBJECT_PREFIX = "lithops.jobs"
#: Storage config fields that are credentials: never pickled.
_SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key", "session_token", "api_key", "password"})


def _without_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (and its backend sections) without credential fields."""
    return {k: _without_secrets(v) if isinstance(v, dict) else v for k, v in config.items() if k not in _SECRET_FIELDS}


def _arrived(config: dict[str, Any], access: StoreAccess, executor_id: str, cloudobjects: int) -> Storage:
    """A pickled :class:`Storage` rebuilt where it arrived (credentials from this process)."""
    storage = Storage(storage_config=config, executor_id=executor_id)
    storage._access = access
    storage._cloudobjects = cloudobjects
    return storage


class Storage:
    """Lithops's storage client: objects by ``(bucket, key)`` on the configured store.

    Args:
        config: a Lithops config dict (its ``lithops.storage`` section is used).
        backend: overrides the config's storage backend.
        storage_config: what ``lithops.config.extract_storage_config`` gives (wins over ``config``).
        settings: XtremeHub settings to start from (S3 endpoints in the config override them).
        executor_id: set by an executor: ``put_cloudobject`` keys go under its prefix, so
            ``fexec.clean()`` finds them.
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        backend: str | None = None,
        storage_config: dict[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        executor_id: str | None = None,
    ) -> None:
        if storage_config is None:
            cfg = default_config(
                config_data=config or {}, config_overwrite={"lithops": {"storage": backend}} if backend else None
            )
            storage_config = extract_storage_config(cfg)
        self.config = dict(storage_config)
        self.backend: str = self.config.get("backend", "localhost")
        section = dict(self.config.get(self.backend, {}))
        self.bucket: str = section.get("storage_bucket") or self.config.get("bucket") or "storage"
        self._root = Path(section.get("storage_root", LITHOPS_TEMP_DIR))
        self._access = StoreAccess(settings_for(self.config, settings or default_settings()))
        self._executor_id = executor_id or uuid.uuid4().hex[:6]
        self._cloudobjects = 0

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled (sent to workers with a call) without any credential.

        The config travels with its secret fields removed and the settings as a
        :class:`~xtremehub.storage.access.StoreAccess`: the receiving process completes the
        credential from what it has configured for the same endpoint.

        Example:
            >>> import pickle
            >>> st = Storage(storage_config={"backend": "minio", "minio": {"secret_access_key": "s3cr3t"}})
            >>> b"s3cr3t" in pickle.dumps(st)
            False
            >>> pickle.loads(pickle.dumps(st)).get_storage_config()
            {'backend': 'minio', 'minio': {}}
        """
        state = (_without_secrets(self.config), self._access, self._executor_id, self._cloudobjects)
        return (_arrived, state)

    def __repr__(self) -> str:
        return f"Storage(backend={self.backend!r}, bucket={self.bucket!r})"

    def get_storage_config(self) -> dict[str, Any]:
        return dict(self.config)

    def get_client(self) -> Storage:
        """Lithops returns the backend's native client; here the storage itself serves."""
        return self

    # -- where things are -------------------------------------------------------------------------
    def url(self, bucket: str, key: str = "") -> str:
        """The XtremeHub URL of ``key`` in ``bucket`` (what the executor reads).

        Example:
            >>> Storage(storage_config={"backend": "minio", "minio": {}}).url("b", "k")
            's3://b/k'
        """
        if self.backend == "localhost":
            return str(self._root / bucket / key) if key else str(self._root / bucket) + "/"
        return f"{self._scheme()}://{bucket}/{key}"

    def _scheme(self) -> str:
        if self.backend in S3_BACKENDS:
            return "s3"
        from xtremehub.storage import known_schemes

        if self.backend not in known_schemes():
            raise ConfigError(
                f"storage backend {self.backend!r} is not one XtremeHub reaches: use localhost, "
                f"an S3-compatible one ({', '.join(sorted(S3_BACKENDS))}) or a scheme of {known_schemes()}"
            )
        return self.backend

    def _store(self, bucket: str) -> Store:
        if self.backend == "localhost":
            from xtremehub.storage._local import LocalStore

            return LocalStore(self._root / bucket)
        return self._access.open(f"{self._scheme()}://{bucket}/")[0]

    # -- objects ----------------------------------------------------------------------------------
    def put_object(self, bucket: str, key: str, body: str | bytes | BinaryIO | Iterable[bytes]) -> None:
        """Write an object (bytes, str, or a binary file object)."""
        self._store(bucket).put(key, body.encode() if isinstance(body, str) else body)

    def get_object(
        self, bucket: str, key: str, stream: bool = False, extra_get_args: dict[str, Any] | None = None
    ) -> Any:
        """An object's bytes (a file object with ``stream``).

        ``extra_get_args={'Range': 'bytes=first-last'}`` reads a range, as with Lithops.
        """
        store = self._store(bucket)
        try:
            rng = (extra_get_args or {}).get("Range")
            if rng:
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", str(rng).strip())
                if match is None:
                    raise ConfigError(f"unsupported Range {rng!r}: expected 'bytes=first-last'")
                start = int(match.group(1))
                end = int(match.group(2)) + 1 if match.group(2) else store.head(key).size
                data = store.get_range(key, start, end)
            elif stream:
                return store.open(key)
            else:
                data = store.get(key)
        except ObjectNotFound as exc:
            raise StorageNoSuchKeyError(f"{bucket}/{key}") from exc
        return io.BytesIO(data) if stream else data

    def head_object(self, bucket: str, key: str) -> dict[str, str]:
        """An object's metadata, with Lithops's (HTTP header) names."""
        try:
            info = self._store(bucket).head(key)
        except ObjectNotFound as exc:
            raise StorageNoSuchKeyError(f"{bucket}/{key}") from exc
        meta = {"content-length": str(info.size)}
        if info.etag:
            meta["ETag"] = info.etag
        if info.mtime:
            meta["LastModified"] = info.mtime.isoformat()
        return meta

    def head_bucket(self, bucket: str) -> dict[str, Any]:
        """Whether the bucket is reachable: a 200 response (listing one key proves it)."""
        next(iter(self._store(bucket).list("")), None)
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def delete_object(self, bucket: str, key: str) -> None:
        with contextlib.suppress(ObjectNotFound):  # S3 (and Lithops) treat deleting a missing key as done
            self._store(bucket).delete(key)

    def delete_objects(self, bucket: str, key_list: Iterable[str]) -> None:
        for key in key_list:
            self.delete_object(bucket, key)

    def list_objects(
        self, bucket: str, prefix: str | None = None, match_pattern: str | None = None
    ) -> list[dict[str, Any]]:
        """``[{'Key', 'Size', 'LastModified'}, ...]`` of the objects whose key starts with ``prefix``."""
        out = []
        for info in self._store(bucket).list(prefix or ""):
            if match_pattern is not None and not re.match(match_pattern, info.key):
                continue
            out.append({"Key": info.key, "Size": info.size, "LastModified": info.mtime})
        return out

    def list_keys(self, bucket: str, prefix: str | None = None) -> list[str]:
        """The keys that start with ``prefix``."""
        return [info.key for info in self._store(bucket).list(prefix or "")]

    # -- cloud objects ----------------------------------------------------------------------------
    def put_cloudobject(
        self, body: str | bytes | BinaryIO, bucket: str | None = None, key: str | None = None
    ) -> CloudObject:
        """Put ``body`` and return the :class:`CloudObject` naming it."""
        if key is None:
            self._cloudobjects += 1
            key = f"{CLOUDOBJECT_PREFIX}/{self._executor_id}/cloudobjects/{uuid.uuid4().hex}"
        bucket = bucket or self.bucket
        self.put_object(bucket, key, body)
        return CloudObject(self.backend, bucket, key)

    def _located(self, co: CloudObject) -> tuple[str, str]:
        if co.backend != self.backend:
            raise ConfigError(f"cloud object of storage backend {co.backend!r} given to a {self.backend!r} storage")
        return co.bucket, co.key

    def get_cloudobject(self, cloudobject: CloudObject, stream: bool = False) -> Any:
        return self.get_object(*self._located(cloudobject), stream=stream)

    def delete_cloudobject(self, cloudobject: CloudObject) -> None:
        self.delete_object(*self._located(cloudobject))

    def delete_cloudobjects(self, cloudobjects: Iterable[CloudObject]) -> None:
        located = [self._located(co) for co in cloudobjects]  # all checked before any is deleted
        for bucket, key in located:
            self.delete_object(bucket, key)

    def delete_executor_cloudobjects(self) -> None:
        """Delete the cloud objects put without a key through this storage's executor."""
        prefix = f"{CLOUDOBJECT_PREFIX}/{self._executor_id}/cloudobjects/"
        self.delete_objects(self.bucket, self.list_keys(self.bucket, prefix))
