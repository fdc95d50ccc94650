"""What the API shows of the stream store: scopes, streams, segments, write rates, reader-group
lag and the LTS backlog, read through a :class:`~xtremehub.streams.StreamManager`.

The manager is a stream server (``tcp://host:port``) or an embedded store on a data directory
(the default, ``<home>/streams``), opened on first use; a data directory another process
serves is :class:`~xtremehub.errors.DataDirLocked` (HTTP 503: point ``streams`` at that
server's URL instead).

**A stream server that requires tokens.** The web server connects with its own service
credential (``[web] streams_client_id`` + ``streams_client_secret_file``: the client-credentials
grant at ``oidc_issuer``, renewed before expiry; or ``streams_token_file``), asked again at every
(re)connection, so an expired token is replaced without a restart. The service token only opens
the connection: every API route and cockpit page first authorises its *caller* (the bearer token
of the request, against the web server's Cedar policies) for the scope or stream it shows, and
only then asks the stream server. A caller therefore sees at most what the web policies allow
them, and nothing the service itself may not read; the service's wider reach never passes to a
caller. With security on, a service credential needs web policies (``create_app`` refuses
"every valid token may do everything" then); with security off the one local user sees what the
service sees (loopback only).

The write rate of a stream is measured from the bytes it holds: every time a rate is asked for,
the total length of the stream's segments is sampled, and the rate is the growth since the
oldest sample of the last :attr:`StreamSource.window` seconds (the cockpit, refreshing live,
keeps the samples coming); ``average_bytes_per_second`` is the total over the stream's age.

Example:
    >>> import tempfile
    >>> from xtremehub.config import Settings
    >>> with StreamSource(tempfile.mkdtemp(), Settings()) as source:
    ...     source.manager.create_scope("lab")
    ...     source.scopes()
    True
    ['lab']
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from xtremehub.config import Settings
from xtremehub.errors import AuthenticationFailed, ServerUnavailable
from xtremehub.security.identity import TokenSource
from xtremehub.streams import StreamManager
from xtremehub.web.config import STREAM_SERVER_SCHEMES

__all__ = ["StreamSource"]


class StreamSource:
    """A stream manager opened lazily from a URL or data directory, with rate sampling.

    Args:
        location: ``tcp://`` server URL, or a data directory (None: ``<home>/streams``).
        settings: storage settings of the embedded store's LTS.
        manager: an open manager to use instead (the caller closes it).
        token: the service's token (a provider, asked at every connection) for a stream server
            that requires one.
        window: seconds of samples a write rate is computed over.
        clock: time source (tests).
    """

    def __init__(
        self,
        location: str | None,
        settings: Settings,
        *,
        manager: StreamManager | None = None,
        window: float = 60.0,
        clock: Callable[[], float] = time.time,
        token: TokenSource | None = None,
    ) -> None:
        self.location = location or str(settings.home / "streams")
        self.token = token
        self.settings = settings
        self.window = window
        self._clock = clock
        self._manager = manager
        self._owned = manager is None
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def __enter__(self) -> StreamSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def manager(self) -> StreamManager:
        with self._lock:
            if self._manager is None:
                if self.location.startswith(STREAM_SERVER_SCHEMES):
                    self._manager = self._connect()
                else:
                    self._manager = StreamManager.embedded(self.location, settings=self.settings)
            return self._manager

    def _connect(self) -> StreamManager:
        """The stream server, with the service token; its refusal is the server's problem (503),
        not the caller's: the caller's own token was valid."""
        try:
            return StreamManager(self.location, token=self.token)
        except AuthenticationFailed as exc:
            hint = "" if self.token is not None else ": give the web server a credential ([web] streams_client_id)"
            why = f"refused the web server's credential{hint}"
            refused = ServerUnavailable(f"stream server {self.location} {why} ({exc})")
            refused.public_detail = f"the stream server {why}"  # type: ignore[attr-defined]
            raise refused from None

    def close(self) -> None:
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None and self._owned:
            manager.close()

    # -- listing ---------------------------------------------------------------------------
    def scopes(self) -> list[str]:
        return sorted(self.manager.list_scopes())

    def streams(self, scope: str) -> list[str]:
        return sorted(self.manager.list_streams(scope))

    def segments(self, scope: str, stream: str) -> list[dict[str, Any]]:
        """Every segment of the stream (active and sealed predecessors), oldest first."""
        store = self.manager.store
        out = []
        for name in store.list_segments(f"{scope}/{stream}/"):
            info = store.info(name)
            out.append(
                {
                    "name": info.name,
                    "start_offset": info.start_offset,
                    "length": info.length,
                    "sealed": info.sealed,
                    "tiered_length": info.tiered_length,
                }
            )
        return sorted(out, key=lambda s: _segment_order(str(s["name"])))

    def describe(self, scope: str, stream: str) -> dict[str, Any]:
        """Policies, state, active segments with their key ranges, head and tail, every segment."""
        manager = self.manager
        info = manager.get_stream(scope, stream)
        head = manager.get_head_cut(scope, stream).offsets
        tail = manager.get_tail_cut(scope, stream).offsets
        scaling, retention = info.config.scaling, info.config.retention
        return {
            "scope": scope,
            "stream": stream,
            "sealed": info.sealed,
            "epoch": info.epoch,
            "created": info.created,
            "scaling": {"kind": scaling.kind, "min_segments": scaling.min_segments, "target_rate": scaling.target_rate},
            "retention": {"kind": retention.kind, "seconds": retention.seconds, "bytes": retention.bytes},
            "active_segments": [
                {
                    "name": s.name,
                    "number": s.number,
                    "epoch": s.epoch,
                    "key_low": s.key_low,
                    "key_high": s.key_high,
                    "head": head.get(s.name, 0),
                    "tail": tail.get(s.name, 0),
                }
                for s in info.active_segments
            ],
            "segments": self.segments(scope, stream),
        }

    # -- rates, lag, backlog ---------------------------------------------------------------
    def write_rate(self, scope: str, stream: str) -> dict[str, Any]:
        """Bytes held, the recent write rate (None until two samples) and the lifetime average."""
        info = self.manager.get_stream(scope, stream)  # StreamNotFound first
        total = sum(int(s["length"]) for s in self.segments(scope, stream))
        now = self._clock()
        with self._lock:
            samples = self._samples.setdefault((scope, stream), deque())
            while samples and now - samples[0][0] > self.window:
                samples.popleft()
            samples.append((now, total))
            first_t, first_b = samples[0]
        rate = (total - first_b) / (now - first_t) if now - first_t > 1e-3 else None
        age = max(now - info.created, 1e-3)
        return {
            "scope": scope,
            "stream": stream,
            "bytes": total,
            "bytes_per_second": rate,
            "window_seconds": now - first_t,
            "average_bytes_per_second": total / age,
            "sampled_at": now,
        }

    def reader_groups(self, scope: str) -> list[str]:
        return sorted(self.manager.list_reader_groups(scope))

    def lag(self, scope: str, group: str) -> dict[str, Any]:
        """Unread bytes of a reader group: per segment (length - position) and per stream."""
        state = self.manager.controller.get_reader_group(scope, group)
        store = self.manager.store
        segments = []
        per_stream: dict[str, int] = {}
        for seg in state.segments:
            length = store.info(seg.segment).length
            behind = max(0, length - seg.offset) if seg.state != "completed" else 0
            qualified = f"{seg.scope}/{seg.stream}"
            per_stream[qualified] = per_stream.get(qualified, 0) + behind
            segments.append(
                {
                    "segment": seg.segment,
                    "stream": qualified,
                    "offset": seg.offset,
                    "length": length,
                    "lag_bytes": behind,
                    "owner": seg.owner,
                    "state": seg.state,
                }
            )
        return {
            "scope": scope,
            "group": group,
            "streams": list(state.config.streams),
            "readers": list(state.readers),
            "lag_bytes": sum(per_stream.values()),
            "per_stream": per_stream,
            "segments": segments,
        }

    def backlog(self, scope: str | None = None, stream: str | None = None) -> dict[str, Any]:
        """Bytes not yet moved to long-term storage: store-wide, and per stream when named."""
        stats = self.manager.store.stats()
        out: dict[str, Any] = {
            "untiered_bytes": stats.untiered_bytes,
            "wal_bytes": stats.wal_bytes,
            "cache_bytes": stats.cache_bytes,
            "spill_bytes": stats.spill_bytes,
            "lts_available": stats.lts_available,
            "throttled": stats.throttled,
        }
        if scope is not None and stream is not None:
            self.manager.get_stream(scope, stream)  # StreamNotFound first
            segs = self.segments(scope, stream)
            out["stream"] = f"{scope}/{stream}"
            out["stream_untiered_bytes"] = sum(max(0, int(s["length"]) - int(s["tiered_length"])) for s in segs)
        return out


def _segment_order(name: str) -> tuple[int, str]:
    tail = name.rsplit("/", 1)[-1]
    digits = "".join(ch for ch in tail.split(".")[0] if ch.isdigit())
    return (int(digits) if digits else 0, name)
