"""Job pages: every job the telemetry knows, and one job's plots, telemetry and failures.

- ``GET /cockpit/jobs`` the list (function, backend, calls, failures, wall time, peak RSS).
- ``GET /cockpit/jobs/{job_id}`` the summary, the timeline and duration histogram
  (:func:`~xtremehub.compute.plots.plot_telemetry`), the per-call telemetry table, and the
  failures: the failed calls, with the remote tracebacks the catalog's job record keeps
  (``telemetry["failures"]``: ``call_id``, ``error_type``, ``traceback``) when it has them.
- ``GET /cockpit/jobs/{job_id}/timeline.png`` and ``.../histogram.png`` the plots.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from xtremehub.errors import CatalogError, DatasetNotFound
from xtremehub.security.authz import Action
from xtremehub.web.cockpit.render import page
from xtremehub.web.cockpit.session import Viewer, ViewerDep

__all__ = ["recorded_failures", "router"]

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

_MAX_ROWS = 2000


def _source(request: Request, who: Viewer) -> Any:
    source = request.app.state.xhub.jobs()
    who.must(Action.READ, "object", source.location)
    return source


def recorded_failures(telemetry: Mapping[str, Any]) -> list[dict[str, str]]:
    """The failures a job record's telemetry summary carries, as ``call_id``/``error_type``/``traceback``.

    Example:
        >>> recorded_failures({"failures": [{"call_id": 3, "error_type": "ValueError", "traceback": "Tr..."}]})
        [{'call_id': '3', 'error_type': 'ValueError', 'traceback': 'Tr...'}]
        >>> recorded_failures({"calls": 4})
        []
    """
    items = telemetry.get("failures")
    if not isinstance(items, list):
        return []
    out = []
    for item in items[:100]:
        if isinstance(item, Mapping):
            out.append(
                {
                    "call_id": str(item.get("call_id", "")),
                    "error_type": str(item.get("error_type", "")),
                    "traceback": str(item.get("traceback") or item.get("remote_traceback") or "")[:20000],
                }
            )
    return out


@router.get("/cockpit/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, who: ViewerDep) -> HTMLResponse:
    source = _source(request, who)
    jobs = list(reversed(source.list_jobs()))  # newest first
    return page(request, "jobs.html", jobs=jobs, location=source.location)


@router.get("/cockpit/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, who: ViewerDep, job_id: str) -> HTMLResponse:
    source = _source(request, who)
    try:
        rows = source.rows(job_id)
    except DatasetNotFound as exc:
        return page(request, "error.html", status_code=404, title="No such job", message=str(exc))
    stats = source.summary(job_id)
    record = None
    try:
        record = who.catalog.get_job(job_id)
    except (CatalogError, KeyError):
        record = None
    failures = recorded_failures(record.telemetry) if record is not None else []
    failed_calls = [r for r in rows if r.status != "success"]
    return page(
        request,
        "job.html",
        job_id=job_id,
        function=source.function(job_id),
        stats=stats,
        rows=rows[:_MAX_ROWS],
        more=max(0, len(rows) - _MAX_ROWS),
        failed_calls=failed_calls,
        failures=failures,
        record=record,
    )


@router.get("/cockpit/jobs/{job_id}/{which}.png", response_model=None)
def job_plot(request: Request, who: ViewerDep, job_id: str, which: Literal["timeline", "histogram"]) -> Response:
    source = _source(request, who)
    try:
        timeline, histogram = source.plots(job_id)
    except DatasetNotFound as exc:
        return Response(str(exc), status_code=404, media_type="text/plain")
    return Response(timeline if which == "timeline" else histogram, media_type="image/png")
