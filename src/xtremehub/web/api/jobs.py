"""Jobs: the list, one job's summary, its telemetry rows, and its timeline and histogram plots.

Jobs come from :class:`~xtremehub.web.jobs.JobsSource` (the optimizer's telemetry store, the
telemetry directory and the catalog's job records). Every job endpoint is authorised as ``read``
on the ``object`` holding the telemetry (the telemetry directory as a prefix, or the store's
file). A job only the catalog knows has no telemetry rows and no plots (404).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from xtremehub.catalog.model import JobRecord
from xtremehub.compute.failures import OMITTED_KEY, TELEMETRY_KEY
from xtremehub.compute.summary import JobStats
from xtremehub.optimizer.store import JobRow
from xtremehub.security.authz import Action
from xtremehub.web.api._common import PROBLEM_RESPONSES, context
from xtremehub.web.auth import Caller, CallerDep
from xtremehub.web.jobs import JobsSource
from xtremehub.web.schemas import LINE, JobRecordOut, job_out

__all__ = ["router"]

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)

JobId = Annotated[str, Path(min_length=1, max_length=200, pattern=LINE)]


class FailureOut(BaseModel):
    """A failed call; ``message`` and ``remote_traceback`` as the catalog's record keeps them ('' when
    it has none): the traceback's end, ``traceback_omitted`` characters left out of its start."""

    call_id: int
    worker: str
    error_type: str
    attempts: int
    message: str = ""
    remote_traceback: str = ""
    traceback_omitted: int = 0


class JobSummaryOut(BaseModel):
    """The executor's aggregates, the failed calls, and the catalog's lineage record if any.

    ``failures_omitted``: failed calls not listed (a job known only to the catalog keeps the first 20).
    The record's ``telemetry`` here leaves out what ``failures`` and ``failures_omitted`` show
    (the summary's ``failed_calls`` and ``failed_calls_omitted``); a record elsewhere (lineage)
    keeps them.
    """

    job_id: str
    function: str
    stats: JobStats
    failures: list[FailureOut]
    failures_omitted: int = 0
    record: JobRecordOut | None = None


class TelemetryRowOut(BaseModel):
    schema_version: str
    job_id: str
    call_id: int
    backend: str
    worker: str
    host: str
    status: str
    error_type: str
    submit: float | None
    start: float | None
    end: float | None
    duration: float | None
    cpu_user: float
    cpu_system: float
    peak_rss: int
    bytes_read: int
    bytes_written: int
    attempts: int
    result_size: int


def _jobs(request: Request, who: Caller) -> Any:
    source = context(request).jobs()
    location = source.location
    who.may(Action.READ, "prefix" if location.endswith("/") else "object", location)
    return source


@router.get("", response_model=list[JobRow], summary="Jobs with telemetry, then those only the catalog knows")
def list_jobs(
    request: Request,
    response: Response,
    who: CallerDep,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[JobRow]:
    """Without ``limit`` and ``offset``: every job with telemetry, then the catalog's latest 1,000
    it alone knows (oldest first). With them, one page of the same order over all of the
    catalog's jobs: ``X-Total-Count`` says how many jobs there are, and a ``Link`` header
    (``rel="next"``) gives the next page's URL, if there is one (as ``next`` in a dataset search)."""
    source: JobsSource = _jobs(request, who)
    if limit is None and offset == 0:
        return list(source.list_jobs())
    limit = limit or 1000
    rows, total = source.page(limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    if offset + limit < total:
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "limit")]
        params += [("limit", str(limit)), ("offset", str(offset + limit))]
        response.headers["Link"] = f'<{request.url.path}?{urllib.parse.urlencode(params)}>; rel="next"'
    return rows


@router.get("/{job_id}", response_model=JobSummaryOut, summary="One job's summary, failures and lineage record")
def job_summary(job_id: JobId, request: Request, who: CallerDep) -> JobSummaryOut:
    job = _jobs(request, who).job(job_id)
    return JobSummaryOut(
        job_id=job_id,
        function=job.function,
        stats=job.stats,
        failures=[FailureOut(**f.to_json()) for f in job.failures],
        failures_omitted=job.failures_omitted,
        record=_record_out(job.record) if job.record is not None else None,
    )


def _record_out(record: JobRecord) -> JobRecordOut:
    """The job's record without the failed calls in its telemetry summary (listed once, above it)."""
    out = job_out(record)
    telemetry = {k: v for k, v in out.telemetry.items() if k not in (TELEMETRY_KEY, OMITTED_KEY)}
    return out.model_copy(update={"telemetry": telemetry})


@router.get("/{job_id}/telemetry", response_model=list[TelemetryRowOut], summary="One record per call")
def telemetry(job_id: JobId, request: Request, who: CallerDep) -> list[TelemetryRowOut]:
    rows = _jobs(request, who).job(job_id).rows
    out = []
    for r in rows:
        data = dataclasses.asdict(r)
        data["schema_version"] = data.pop("schema")
        out.append(TelemetryRowOut(**data, duration=r.duration))
    return out


@router.get(
    "/{job_id}/plots/{kind}.png",
    response_class=Response,
    summary="Timeline or duration histogram of a job (PNG)",
    responses={200: {"content": {"image/png": {}}, "description": "a PNG image"}},
)
def plot(job_id: JobId, kind: Literal["timeline", "histogram"], request: Request, who: CallerDep) -> Response:
    timeline, histogram = _jobs(request, who).plots(job_id)
    return Response(
        timeline if kind == "timeline" else histogram,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=10"},
    )
