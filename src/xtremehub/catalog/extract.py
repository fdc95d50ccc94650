"""Metadata extracted automatically from what a URL holds (connector index facts, stream history).

``register(url)`` without ``facts`` calls :func:`extract`. An object is indexed once by its
connector (an index sidecar that is still current is reused, not rebuilt) and its facts are
read from the index (:mod:`xtremehub.catalog.facts`); a prefix (a URL ending in ``/``) is
described by its object count and total size; a stream by :func:`extract_stream` over a
:class:`~xtremehub.streams.history.StreamHistory`.

``source_version`` is the object's etag (for a prefix: a digest of its keys and etags; for a
stream: the end cut). Distributions carry the size and a checksum, saying which it is: an
S3/memory etag that is an MD5 of the content becomes ``md5:<etag>`` (``checksum_source``
``"etag"``); otherwise objects up to ``checksum_max_bytes`` are hashed (``sha256:``,
``checksum_source`` ``"computed"``); larger ones get none.

Example:
    >>> from xtremehub import storage
    >>> _ = storage.put("mem://extract-doc/table.csv", b"a,b\\n1,2\\n3,4\\n")
    >>> facts = extract("mem://extract-doc/table.csv")
    >>> facts.format, facts.facts["rows"], facts.facts["columns"], facts.distributions[0].checksum[:4]
    ('csv', 2, 2, 'md5:')
    >>> extract("file:///data/../../etc/passwd")
    Traceback (most recent call last):
    ...
    xtremehub.errors.UnsafeURL: file:///data/../../etc/passwd: '..' path segment refused (path traversal)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from xtremehub import storage
from xtremehub.catalog.facts import FACTS, HEALTH_CATEGORY, MEDIA_TYPES, RECORDS_FACT, format_for_url
from xtremehub.catalog.model import Distribution, HealthFields
from xtremehub.config import Settings, default_settings
from xtremehub.connectors.cloudobject import CloudObject
from xtremehub.errors import InvalidMetadata, StaleIndex, UnsafeURL, UnsupportedData

if TYPE_CHECKING:
    from xtremehub.streams.history import StreamHistory

__all__ = ["CHECKSUM_MAX_BYTES", "Extracted", "check_url", "extract", "extract_stream", "stream_url"]

log = logging.getLogger(__name__)

#: Objects up to this size are hashed (SHA-256) when their etag is not an MD5 of the content.
CHECKSUM_MAX_BYTES = 256 << 20
_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Extracted:
    """What :func:`extract` learned about one URL.

    Attributes:
        format: the connector format name (``prefix`` for a prefix, ``stream`` for a stream).
        source_version: the object's etag (or the stream cut) the facts describe.
        facts: JSON-able metadata (reads, bases, contigs, spectra, m/z range, bounds, bands, CRS...).
        distributions: at least the URL itself with size and checksum when known.
        health: HealthDCAT-AP fields the connector knows (e.g. number of records), or None.
        title: a suggested title (e.g. the file name).
    """

    format: str
    source_version: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    distributions: tuple[Distribution, ...] = ()
    health: HealthFields | None = None
    title: str = ""


def check_url(url: str) -> str:
    """Refuse URLs whose path climbs out of where it points (``..`` or ``.`` segments, NUL bytes).

    Checked on the URL as written and percent-decoded, so ``%2e%2e`` is refused too.

    Raises:
        UnsafeURL: the URL has a traversal segment.
    """
    for text in (url, unquote(url)):
        if "\x00" in text:
            raise UnsafeURL(url, "NUL byte refused")
        _, sep, rest = text.partition("://")
        path = rest if sep else text
        if any(part in ("..", ".") for part in re.split(r"[/\\]", path)):
            raise UnsafeURL(url, "'..' path segment refused (path traversal)")
    return url


def extract(
    url: str,
    *,
    settings: Settings | None = None,
    format: str | None = None,
    checksum_max_bytes: int = CHECKSUM_MAX_BYTES,
) -> Extracted:
    """Index ``url`` with its connector (or list the prefix) and return its facts.

    Args:
        url: an object, or a prefix ending in ``/``.
        settings: storage settings (default: the process's).
        format: the connector format name (default: from the file name).
        checksum_max_bytes: hash objects up to this size when the etag is no MD5.

    Raises:
        UnsafeURL: a ``..`` segment in the URL.
        ObjectNotFound: nothing at ``url``.
        UnsupportedData: no connector knows the format (name ``format=`` to force one).
        StaleIndex: the object changed while it was being indexed.
    """
    check_url(url)
    settings = settings or default_settings()
    if url.endswith("/"):
        return _extract_prefix(url, settings)
    info = storage.head(url, settings=settings)  # ObjectNotFound first, before any guessing
    fmt = format or format_for_url(url)
    if fmt is None or fmt not in FACTS:
        known = ", ".join(sorted(FACTS))
        detail = f"no connector for format {fmt!r}" if fmt else "no connector knows this file name"
        raise UnsupportedData(url, 0, f"{detail}; name one with format= ({known})")
    co = CloudObject(fmt, url, settings=settings)
    co.preprocess()
    identity = co.index.identity
    facts = FACTS[fmt](co)
    checksum, source = _checksum(url, info, settings, checksum_max_bytes)
    co.__dict__.pop("info", None)
    now = co.identity()
    if now != identity:
        raise StaleIndex(
            f"{url}: the object changed while it was being registered (indexed {identity}, now {now}); "
            "register it again"
        )
    facts = {**facts, "size": info.size, "checksum_source": source}
    health = _health(fmt, facts)
    dist = Distribution(url, fmt, MEDIA_TYPES.get(fmt), info.size, checksum)
    return Extracted(fmt, str(identity.get("etag") or ""), facts, (dist,), health, url.rsplit("/", 1)[-1])


def _checksum(url: str, info: storage.ObjectInfo, settings: Settings, limit: int) -> tuple[str | None, str]:
    """``(checksum, how it was obtained)``: the etag when it is an MD5, else SHA-256 of small objects."""
    etag = (info.etag or "").lower()
    if _MD5.match(etag):
        return f"md5:{etag}", "etag"
    if info.size > limit:
        return None, f"none (over {limit} bytes)"
    digest = hashlib.sha256()
    with storage.open(url, settings=settings) as fh:
        while chunk := fh.read(4 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}", "computed"


def _health(fmt: str, facts: Mapping[str, Any]) -> HealthFields | None:
    category = HEALTH_CATEGORY.get(fmt)
    if category is None:
        return None
    records = facts.get(RECORDS_FACT[fmt])
    individuals = facts.get("samples") if fmt == "vcf" else None
    return HealthFields(
        health_category=(category,),
        number_of_records=int(records) if records is not None else None,
        number_of_unique_individuals=int(individuals) if individuals is not None else None,
    )


#: Objects a prefix dataset may hold (a registration never walks a whole file system or bucket).
MAX_PREFIX_OBJECTS = 100_000


def _extract_prefix(url: str, settings: Settings) -> Extracted:
    """Object count and total size of a prefix (index sidecars under ``.xhub/`` left out)."""
    infos = []
    for i in storage.list(url, settings=settings):
        if "/.xhub/" in f"/{i.key}":
            continue
        infos.append(i)
        if len(infos) > MAX_PREFIX_OBJECTS:
            raise InvalidMetadata(
                "url", f"{url} holds more than {MAX_PREFIX_OBJECTS:,} objects: register a narrower prefix"
            )
    digest = hashlib.sha256()
    formats: dict[str, int] = {}
    for i in sorted(infos, key=lambda i: i.key):
        digest.update(f"{i.key}\0{i.etag}\0{i.size}\n".encode())
        fmt = format_for_url(i.key) or "other"
        formats[fmt] = formats.get(fmt, 0) + 1
    total = sum(i.size for i in infos)
    facts = {"objects": len(infos), "total_size": total, "formats": formats}
    name = url.rstrip("/").rsplit("/", 1)[-1]
    dist = Distribution(url, "prefix", None, total, None)
    return Extracted("prefix", digest.hexdigest()[:32], facts, (dist,), None, name)


def stream_url(scope: str, stream: str) -> str:
    """The URL a stream is registered under: ``xhub-stream://<scope>/<stream>``."""
    return f"xhub-stream://{scope}/{stream}"


def extract_stream(history: StreamHistory, *, count_events: bool = True) -> Extracted:
    """Facts of a stream's history between two cuts: events, bytes, segments, time range.

    ``source_version`` is the end cut (its JSON form): a later cut makes a new version. The
    time range is when the first and last LTS chunk holding those bytes were written.
    ``count_events`` reads the history once from LTS to count events.
    """
    events = sum(1 for s in history.partition() for _ in s.events()) if count_events else None
    store, prefix = history.access.open(history.lts_url)
    times = []
    for segment, _, _ in history.ranges:
        for info in store.list(f"{prefix.rstrip('/')}/segments/{quote(segment, safe='')}/".lstrip("/")):
            if info.mtime is not None and not info.key.endswith("/metadata.json"):
                times.append(info.mtime)
    facts: dict[str, Any] = {
        "scope": history.scope,
        "stream": history.stream,
        "events": events,
        "bytes": history.nbytes,
        "segments": len(history.ranges),
        "segment_names": [s for s, _, _ in history.ranges],
        "start_cut": json.loads(history.start.to_json()),
        "end_cut": json.loads(history.end.to_json()),
        "time_range": [min(times).isoformat(), max(times).isoformat()] if times else None,
    }
    url = stream_url(history.scope, history.stream)
    dist = Distribution(url, "stream", None, None, None)
    return Extracted("stream", history.end.to_json(), facts, (dist,), None, f"{history.scope}/{history.stream}")
