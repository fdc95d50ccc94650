"""Stream pages: scopes, streams, segments, write rate, reader-group lag, LTS backlog; live.

- ``GET /cockpit/streams`` the overview; its body (``/cockpit/streams/live``) is fetched again
  every 2 seconds by htmx, so rates, lag and backlog refresh without reloading the page.
- ``GET /cockpit/streams/{scope}/{stream}`` one stream: policies, active segments with key
  ranges, every segment (oldest first), the write-rate plot (refreshing too).
- ``GET /cockpit/streams/{scope}/{stream}/rate.png`` the write rate over the samples this
  cockpit took (each page refresh is one sample).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from xtremehub.errors import ServerUnavailable, StreamError, XHubError
from xtremehub.security.authz import Action
from xtremehub.web.cockpit.render import page
from xtremehub.web.cockpit.session import Viewer, ViewerDep
from xtremehub.web.previews import write_rate_png

__all__ = ["RateHistory", "router"]

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


class RateHistory:
    """The last ``size`` write-rate samples of each stream (time, bytes per second).

    Example:
        >>> h = RateHistory(size=2)
        >>> h.add("s/t", 1.0, 10.0); h.add("s/t", 2.0, None); h.add("s/t", 3.0, 30.0); h.add("s/t", 4.0, 40.0)
        >>> h.samples("s/t")
        ([3.0, 4.0], [30.0, 40.0])
    """

    def __init__(self, size: int = 120) -> None:
        self._data: dict[str, deque[tuple[float, float]]] = {}
        self._lock = threading.Lock()
        self._size = size

    def add(self, name: str, t: float, rate: float | None) -> None:
        if rate is None:
            return
        with self._lock:
            self._data.setdefault(name, deque(maxlen=self._size)).append((t, float(rate)))

    def samples(self, name: str) -> tuple[list[float], list[float]]:
        with self._lock:
            points = list(self._data.get(name, ()))
        return [p[0] for p in points], [p[1] for p in points]


_HISTORY = RateHistory()


def _source(request: Request) -> Any:
    return request.app.state.xhub.streams()


def _overview(request: Request, who: Viewer) -> dict[str, Any]:
    """Every scope the viewer may read: its streams (bytes, rate, segments) and reader groups (lag)."""
    try:
        source = _source(request)
        scopes = source.scopes()
    except (XHubError, OSError) as exc:  # its address is in the log, not on the page
        log.warning("stream store: %s: %s", type(exc).__name__, exc)
        return {"error": "the stream store cannot be reached right now", "scopes": [], "backlog": None}
    out = []
    for scope in scopes:
        if not who.can(Action.READ, "scope", scope):
            continue
        streams = []
        for name in source.streams(scope):
            try:
                rate = source.write_rate(scope, name)
                segments = source.segments(scope, name)
            except StreamError as exc:  # deleted meanwhile
                log.info("stream %s/%s: %s", scope, name, exc)
                continue
            _HISTORY.add(f"{scope}/{name}", float(rate["sampled_at"]), rate["bytes_per_second"])
            streams.append(
                {
                    "name": name,
                    "bytes": rate["bytes"],
                    "rate": rate["bytes_per_second"],
                    "average": rate["average_bytes_per_second"],
                    "segments": len(segments),
                    "sealed": sum(1 for s in segments if s["sealed"]),
                }
            )
        groups = []
        for group in source.reader_groups(scope):
            try:
                lag = source.lag(scope, group)
            except StreamError as exc:
                log.info("reader group %s/%s: %s", scope, group, exc)
                continue
            groups.append(
                {"name": group, "lag": lag["lag_bytes"], "readers": len(lag["readers"]), "streams": lag["streams"]}
            )
        out.append({"name": scope, "streams": streams, "groups": groups})
    return {"error": "", "scopes": out, "backlog": source.backlog(), "sampled": time.strftime("%H:%M:%S")}


@router.get("/cockpit/streams", response_class=HTMLResponse)
def streams_page(request: Request, who: ViewerDep) -> HTMLResponse:
    return page(request, "streams.html", **_overview(request, who))


@router.get("/cockpit/streams/live", response_class=HTMLResponse)
def streams_live(request: Request, who: ViewerDep) -> HTMLResponse:
    return page(request, "_streams_live.html", **_overview(request, who))


@router.get("/cockpit/streams/{scope}/{stream}", response_class=HTMLResponse)
def stream_page(request: Request, who: ViewerDep, scope: str, stream: str) -> HTMLResponse:
    who.must(Action.READ, "stream", f"{scope}/{stream}")
    source = _source(request)
    try:
        described = source.describe(scope, stream)
        rate = source.write_rate(scope, stream)
        backlog = source.backlog(scope, stream)
    except ServerUnavailable as exc:
        log.warning("stream store: %s", exc)
        return page(
            request, "error.html", status_code=503, title="Streams unavailable",
            message="The stream server cannot be reached right now. Try again in a moment.",
        )  # fmt: skip
    except StreamError as exc:
        return page(request, "error.html", status_code=404, title="No such stream", message=str(exc))
    _HISTORY.add(f"{scope}/{stream}", float(rate["sampled_at"]), rate["bytes_per_second"])
    return page(request, "stream.html", s=described, rate=rate, backlog=backlog, qualified=f"{scope}/{stream}")


@router.get("/cockpit/streams/{scope}/{stream}/rate.png", response_model=None)
def stream_rate(request: Request, who: ViewerDep, scope: str, stream: str) -> Response:
    who.must(Action.READ, "stream", f"{scope}/{stream}")
    try:
        rate = _source(request).write_rate(scope, stream)
    except StreamError as exc:
        return Response(str(exc), status_code=404, media_type="text/plain")
    _HISTORY.add(f"{scope}/{stream}", float(rate["sampled_at"]), rate["bytes_per_second"])
    times, rates = _HISTORY.samples(f"{scope}/{stream}")
    png = write_rate_png(times, rates, title=f"{scope}/{stream} write rate", unit="bytes/s")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
