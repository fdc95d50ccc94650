"""Job pages: every job the telemetry or the catalog knows, and one job's plots, telemetry and failures.

- ``GET /cockpit/jobs`` the list (function, backend, calls, failures, wall time, peak RSS).
- ``GET /cockpit/jobs/{job_id}`` the summary, the timeline and duration histogram
  (:func:`~xtremehub.compute.plots.plot_telemetry`), the per-call telemetry table, and the
  failures: the failed calls, each with the message and remote traceback the catalog's job
  record keeps (:mod:`xtremehub.compute.failures`). A job only the catalog knows shows its
  record's summary and failures, without plots or telemetry rows.
- ``GET /cockpit/jobs/{job_id}/timeline.png`` and ``.../histogram.png`` the plots.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from xtremehub.errors import DatasetNotFound
from xtremehub.security.authz import Action
from xtremehub.web.cockpit.render import page
from xtremehub.web.cockpit.session import Viewer, ViewerDep

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

_MAX_ROWS = 2000
_MAX_FAILURES = 200


def _source(request: Request, who: Viewer) -> Any:
    source = request.app.state.xhub.jobs()
    who.must(Action.READ, "object", source.location)
    return source


@router.get("/cockpit/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, who: ViewerDep) -> HTMLResponse:
    source = _source(request, who)
    jobs = list(reversed(source.list_jobs()))  # newest first
    return page(request, "jobs.html", jobs=jobs, location=source.location)


@router.get("/cockpit/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, who: ViewerDep, job_id: str) -> HTMLResponse:
    source = _source(request, who)
    try:
        job = source.job(job_id)
    except DatasetNotFound as exc:
        return page(request, "error.html", status_code=404, title="No such job", message=str(exc))
    return page(
        request,
        "job.html",
        job_id=job_id,
        function=job.function,
        stats=job.stats,
        rows=job.rows[:_MAX_ROWS],
        more=max(0, len(job.rows) - _MAX_ROWS),
        failures=job.failures[:_MAX_FAILURES],
        failures_omitted=job.failures_omitted + max(0, len(job.failures) - _MAX_FAILURES),
        record=job.record,
    )


@router.get("/cockpit/jobs/{job_id}/{which}.png", response_model=None)
def job_plot(request: Request, who: ViewerDep, job_id: str, which: Literal["timeline", "histogram"]) -> Response:
    source = _source(request, who)
    try:
        timeline, histogram = source.plots(job_id)
    except DatasetNotFound as exc:
        return Response(str(exc), status_code=404, media_type="text/plain")
    return Response(timeline if which == "timeline" else histogram, media_type="image/png")
