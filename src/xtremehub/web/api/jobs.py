"""Jobs: the list, one job's summary, its telemetry rows, and its timeline and histogram plots.

Jobs come from :class:`~xtremehub.web.jobs.JobsSource` (the optimizer's telemetry store and the
telemetry directory). Every job endpoint is authorised as ``read`` on the ``object`` holding
the telemetry (the telemetry directory as a prefix, or the store's file).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from xtremehub.errors import DatasetNotFound
from xtremehub.security.authz import Action
from xtremehub.web.api._common import PROBLEM_RESPONSES, context
from xtremehub.web.auth import Caller, CallerDep
from xtremehub.web.schemas import JobRecordOut, job_out

__all__ = ["router"]

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)

JobId = Annotated[str, Path(min_length=1, max_length=200)]


class JobOut(BaseModel):
    job_id: str
    function: str
    format: str
    backend: str
    calls: int
    failures: int
    input_bytes: int
    wall: float
    total_duration: float
    max_peak_rss: int


class JobStatsOut(BaseModel):
    job_id: str
    tasks: int
    failures: int
    retries: int
    wall_seconds: float
    total_seconds: float
    mean_seconds: float
    cpu_seconds: float
    bytes_read: int
    bytes_written: int
    peak_rss: int
    workers: int


class FailureOut(BaseModel):
    call_id: int
    worker: str
    error_type: str
    attempts: int


class JobSummaryOut(BaseModel):
    """The executor's aggregates, the failed calls, and the catalog's lineage record if any."""

    job_id: str
    function: str
    stats: JobStatsOut
    failures: list[FailureOut]
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


@router.get("", response_model=list[JobOut], summary="Jobs with telemetry, oldest first")
def list_jobs(request: Request, who: CallerDep) -> list[JobOut]:
    return [JobOut(**dataclasses.asdict(j)) for j in _jobs(request, who).list_jobs()]


@router.get("/{job_id}", response_model=JobSummaryOut, summary="One job's summary, failures and lineage record")
def job_summary(job_id: JobId, request: Request, who: CallerDep) -> JobSummaryOut:
    source = _jobs(request, who)
    rows = source.rows(job_id)
    try:
        record: JobRecordOut | None = job_out(context(request).catalog.get_job(job_id))
    except DatasetNotFound:
        record = None
    from xtremehub.compute.summary import JobStats

    return JobSummaryOut(
        job_id=job_id,
        function=source.function(job_id),
        stats=JobStatsOut(**dataclasses.asdict(JobStats.of(job_id, rows))),
        failures=[
            FailureOut(call_id=r.call_id, worker=r.worker, error_type=r.error_type, attempts=r.attempts)
            for r in rows
            if r.status != "success"
        ],
        record=record,
    )


@router.get("/{job_id}/telemetry", response_model=list[TelemetryRowOut], summary="One record per call")
def telemetry(job_id: JobId, request: Request, who: CallerDep) -> list[TelemetryRowOut]:
    rows = _jobs(request, who).rows(job_id)
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
