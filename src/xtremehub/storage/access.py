"""How a slice reaches its object on any worker: the object's settings, travelling without secrets.

A :class:`~xtremehub.connectors.CloudObject` hands its settings (explicit ``settings=`` or
the process defaults) to every slice it cuts, as a :class:`StoreAccess`. In the process that
made it, the access holds the settings whole. Pickled (sent to a worker) it keeps the
endpoints, regions, addressing styles, timeouts and per-bucket tables, but no credential:
the receiving process completes them from what it already knows, and only takes a
credential configured for the same endpoint (a key is never sent to another endpoint):

1. this process's settings (:func:`~xtremehub.config.default_settings`): on a local
   worker its executor's settings; on a Ray, Dask or Lithops worker the executor's
   settings completed from the worker's own environment;
2. this process's own configuration (:func:`~xtremehub.config.configured_settings`):
   ``XHUB_*``/``AWS_*`` variables and the config file, e.g. an ``[s3.buckets.<name>]`` table.

In each, the bucket's own table is tried first, then the global ``[s3]`` table, then any
other table for the same endpoint. With none found the store is opened without a
credential, so boto3's own chain (instance roles, ``~/.aws``) still applies. This is the
rule (:func:`complete`) the executors follow for their own settings (see
:mod:`xtremehub.compute.backends._engine`).

Example:
    >>> import pickle
    >>> from xtremehub.config import S3Settings, Settings
    >>> s3 = S3Settings(endpoint_url="http://s3-b:8333", access_key_id="key-b", secret_access_key="s3cr3t-b")
    >>> access = StoreAccess(Settings(s3=s3))
    >>> access.settings_for("s3://bucket/key").s3.secret_access_key
    's3cr3t-b'
    >>> b"s3cr3t-b" in pickle.dumps(access)
    False
    >>> travelled = pickle.loads(pickle.dumps(access))
    >>> travelled.settings.s3.endpoint_url, travelled.settings.s3.secret_access_key
    ('http://s3-b:8333', None)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Iterator

from xtremehub.config import S3Settings, Settings, configured_settings, default_settings
from xtremehub.storage.base import Store
from xtremehub.storage.registry import ENC_PREFIX, open_store, split_url

__all__ = ["PROCESS_DEFAULTS", "StoreAccess", "complete"]

log = logging.getLogger(__name__)


class StoreAccess:
    """The settings a slice reads its object with; they pickle without S3 credentials.

    Args:
        settings: the object's settings; ``None`` for the reading process's defaults.
    """

    __slots__ = ("_complete", "_settings")

    def __init__(self, settings: Settings | None = None, *, _complete: bool = True) -> None:
        self._settings = settings
        self._complete = _complete  # False once it travelled: credentials come from the reader

    @property
    def settings(self) -> Settings | None:
        """The settings as given (without credentials once they travelled), or None for defaults."""
        return self._settings

    def settings_for(self, url: str | os.PathLike[str]) -> Settings:
        """The settings to open ``url`` with in this process (credentials completed here)."""
        if self._settings is None:
            return default_settings()
        if self._complete:
            return self._settings
        scheme, bucket, _ = split_url(os.fspath(url))
        if scheme.removeprefix(ENC_PREFIX) != "s3":
            return self._settings
        return complete(self._settings, bucket, default_settings(), configured_settings())

    def open(self, url: str | os.PathLike[str]) -> tuple[Store, str]:
        """The store holding ``url`` and its key, opened with these settings."""
        return open_store(url, self.settings_for(url))

    def __reduce__(self) -> tuple[object, ...]:
        shipped = None if self._settings is None else self._settings.without_secrets()
        return (_arrived, (shipped,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoreAccess):
            return NotImplemented
        return (self._settings, self._complete) == (other._settings, other._complete)

    def __hash__(self) -> int:
        return hash((self._settings, self._complete))

    def __repr__(self) -> str:
        if self._settings is None:
            return "StoreAccess(defaults)"
        return f"StoreAccess(endpoint={self._settings.s3.endpoint_url!r})"


#: Read with the reading process's own defaults (what slices built by hand use).
PROCESS_DEFAULTS = StoreAccess()


def _arrived(shipped: Settings | None) -> StoreAccess:
    return StoreAccess(shipped, _complete=shipped is None)


def _candidates(source: Settings, bucket: str | None) -> Iterator[S3Settings]:
    own = None if bucket is None else source.buckets.get(bucket)
    if own is not None:
        yield own
    yield source.s3
    yield from (s for name, s in source.buckets.items() if name != bucket)


def _endpoint(section: S3Settings) -> str | None:
    """The section's endpoint, compared as written (``None`` is AWS's default endpoint)."""
    url = section.endpoint_url
    return None if url is None else url.rstrip("/").lower()


@functools.lru_cache(maxsize=64)
def complete(shipped: Settings, bucket: str | None, *sources: Settings) -> Settings:
    """``shipped`` with a credential for ``bucket`` (``None``: the global ``[s3]`` table) taken
    from the first source configured for the same endpoint.

    This is the one rule by which credentials that did not travel are found: in each source
    the bucket's own table, then the global ``[s3]`` table, then any other table; a candidate
    is only taken if it has a credential and the same endpoint (no endpoint is AWS's
    default one), so a key is never given to another endpoint. A section that already has
    a credential is kept as it is.

    Example:
        >>> from xtremehub.config import S3Settings, Settings
        >>> here = Settings(s3=S3Settings(access_key_id="AWSKEY", secret_access_key="x"))
        >>> custom = Settings(s3=S3Settings(endpoint_url="http://third-party:9000"))
        >>> complete(custom, None, here).s3.access_key_id is None
        True
        >>> complete(Settings(), "bucket", here).s3_for("bucket").access_key_id
        'AWSKEY'
    """
    section = shipped.s3 if bucket is None else shipped.s3_for(bucket)
    if section.has_credentials:
        return shipped
    for source in sources:
        for candidate in _candidates(source, bucket):
            if candidate.has_credentials and _endpoint(candidate) == _endpoint(section):
                filled = dataclasses.replace(
                    section,
                    access_key_id=candidate.access_key_id,
                    secret_access_key=candidate.secret_access_key,
                    session_token=candidate.session_token,
                )
                if bucket is None:
                    return shipped.replace(s3=filled)
                return shipped.replace(buckets={**shipped.buckets, bucket: filled})
    log.debug("no credential configured here for s3://%s at %s", bucket or "*", section.endpoint_url or "AWS")
    return shipped
