"""Streams as datasets: ``xhub-stream://<scope>/<stream>`` registered with the facts of its history.

A stream URL names a stream of the catalog's stream store: ``[catalog] streams`` is a stream
server (``tcp://host:port``) or an embedded store's data directory (default ``<home>/streams``,
where ``xhub streams`` keeps its streams), ``[catalog] streams_lts`` that store's long-term
storage (LTS; an embedded store's default when unset, required with a server). Registering one
reads the stream's history from its head cut to its tail cut out of LTS
(:func:`~xtremehub.catalog.extract.extract_stream`): events, bytes, segments, the time range
and average rates. The tail cut is the ``source_version``: registering again after more events
adds a version; with no new event it is unchanged.

Bytes written just before a registration may not be in LTS yet: the registration waits for
them up to :attr:`StreamStore.wait` seconds (an embedded store opened here flushes them at
once), then gives up with :class:`~xtremehub.errors.HistoryNotTiered` (retry later). A stream
that does not exist (or a store that holds none) is :class:`~xtremehub.errors.StreamNotFound`.
An embedded data directory another process has open is
:class:`~xtremehub.errors.DataDirLocked`: point ``[catalog] streams`` at that process's server.

Example:
    >>> split_stream_url("xhub-stream://lab/sensors")
    ('lab', 'sensors')
    >>> dataset_kind("xhub-stream://lab/sensors", "object"), dataset_kind("s3://lab/a.csv", "object")
    ('stream', 'object')
    >>> dataset_kind("s3://lab/a.csv", "stream")
    Traceback (most recent call last):
    ...
    xtremehub.errors.InvalidMetadata: kind: s3://lab/a.csv is not a stream URL (xhub-stream://<scope>/<stream>)
    >>> split_stream_url("xhub-stream://lab")
    Traceback (most recent call last):
    ...
    xtremehub.errors.UnsupportedURL: xhub-stream://lab: a stream URL is xhub-stream://<scope>/<stream>
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from xtremehub.catalog.model import DatasetKind
from xtremehub.config import Settings
from xtremehub.errors import ConfigError, DataDirLocked, InvalidMetadata, ScopeNotFound, StreamNotFound, UnsupportedURL

if TYPE_CHECKING:
    from xtremehub.catalog.extract import Extracted
    from xtremehub.streams import StreamManager

__all__ = ["STREAM_SCHEME", "StreamStore", "dataset_kind", "is_stream_url", "split_stream_url"]

log = logging.getLogger(__name__)

STREAM_SCHEME = "xhub-stream://"

#: Seconds a registration waits for a stream's newest bytes to reach LTS.
DEFAULT_WAIT = 30.0


def is_stream_url(url: str) -> bool:
    """Whether ``url`` names a stream (``xhub-stream://``)."""
    return url.startswith(STREAM_SCHEME)


def split_stream_url(url: str) -> tuple[str, str]:
    """``(scope, stream)`` of ``xhub-stream://<scope>/<stream>``; anything else is :class:`UnsupportedURL`."""
    scope, sep, stream = url.removeprefix(STREAM_SCHEME).partition("/")
    if not is_stream_url(url) or not sep or not scope or not stream or "/" in stream:
        raise UnsupportedURL(url, "a stream URL is xhub-stream://<scope>/<stream>")
    return scope, stream


def dataset_kind(url: str, kind: DatasetKind) -> DatasetKind:
    """The kind ``url`` is registered as: a stream URL is a ``stream`` (also when ``object``, the
    default, is given); ``prefix`` or ``derived`` for a stream URL, and ``stream`` for any other
    URL, are :class:`InvalidMetadata` (a ``stream`` is judged as a stream: calling an object one
    would judge, and extract, the object under the stream's rules)."""
    if not is_stream_url(url):
        if kind == "stream":
            raise InvalidMetadata("kind", f"{url} is not a stream URL (xhub-stream://<scope>/<stream>)")
        return kind
    if kind == "stream":
        return kind
    if kind == "object":
        return "stream"
    raise InvalidMetadata("kind", f"{url} is a stream, not a {kind}")


class StreamStore:
    """Where the catalog finds the streams its ``xhub-stream://`` URLs name.

    Args:
        settings: ``[catalog] streams`` and ``streams_lts`` (and how to reach LTS).
        manager: an open stream manager to use (or a function returning one, called at each
            registration; the caller closes it), e.g. the one a web server already holds. None:
            opened from the settings for each registration and closed after it.
        lts_url: the LTS URL of ``manager`` (default: an embedded manager's own).
        wait: seconds to wait for the newest bytes to reach LTS.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        manager: StreamManager | Callable[[], StreamManager] | None = None,
        lts_url: str | None = None,
        wait: float = DEFAULT_WAIT,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.lts_url = lts_url
        self.wait = wait

    def __repr__(self) -> str:
        where = "given manager" if self.manager is not None else self.location
        return f"StreamStore({where!r})"

    @property
    def location(self) -> str:
        """The configured store: a server URL or a data directory."""
        return self.settings.catalog.streams or str(self.settings.home / "streams")

    def extract(self, url: str) -> Extracted:
        """The facts of the stream ``url`` names, from its head to its tail cut now.

        Raises:
            UnsupportedURL: not ``xhub-stream://<scope>/<stream>``.
            StreamNotFound: no such scope or stream.
            HistoryNotTiered: the newest bytes did not reach LTS within :attr:`wait` seconds.
            DataDirLocked: the embedded store is open in another process.
            ServerUnavailable: the stream server cannot be reached.
        """
        from xtremehub.catalog.extract import Extracted, extract_stream
        from xtremehub.streams.history import StreamHistory

        scope, stream = split_stream_url(url)
        with self._opened(url) as (manager, lts_url):
            try:
                info = manager.get_stream(scope, stream)
            except (ScopeNotFound, StreamNotFound) as exc:
                raise StreamNotFound(f"{url}: no such stream ({exc})") from exc
            history = StreamHistory(manager, scope, stream, lts_url, settings=self.settings, wait=self.wait)
            found = extract_stream(history)
        age = max(time.time() - info.created, 1e-3)
        facts = dict(found.facts)
        events = facts.get("events")
        facts.update(
            sealed=info.sealed,
            created=datetime.fromtimestamp(info.created, UTC).isoformat(),
            average_bytes_per_second=round(history.nbytes / age, 3),
            average_events_per_second=round(events / age, 3) if isinstance(events, int) else None,
        )
        return Extracted(found.format, found.source_version, facts, found.distributions, found.health, found.title)

    @contextlib.contextmanager
    def _opened(self, url: str) -> Iterator[tuple[StreamManager, str]]:
        """The manager and its LTS URL: the given one, or one opened from the settings (closed after)."""
        if self.manager is not None:
            manager = self.manager if not callable(self.manager) else self.manager()
            yield manager, self.lts_url or _own_lts(manager)
            return
        from xtremehub.streams import StreamManager

        location, lts = self.location, self.settings.catalog.streams_lts
        if "://" in location:
            if not lts:
                raise ConfigError(f"catalog.streams_lts: the LTS URL of the stream server {location} is needed")
            with StreamManager(location) as manager:
                yield manager, lts
            return
        if not Path(location).is_dir():  # nothing there: do not create an empty store
            raise StreamNotFound(f"{url}: no such stream (no stream store at {location})")
        try:  # flushed to LTS at once: a history read here needs the newest bytes there
            manager = StreamManager.embedded(
                location, lts, settings=self.settings, lts_flush_delay=0.0, tiering_interval=0.05
            )
        except DataDirLocked as exc:
            raise DataDirLocked(f"{exc}; point [catalog] streams at the stream server that has it open") from exc
        with manager:
            yield manager, lts or _own_lts(manager)


def _own_lts(manager: StreamManager) -> str:
    """The LTS URL an embedded manager's segment store writes to."""
    config = getattr(manager.store, "config", None)
    lts = getattr(config, "lts_store_url", None)
    if not isinstance(lts, str):
        raise ConfigError("the LTS URL of a stream server's manager is needed (lts_url=, [catalog] streams_lts)")
    return lts
