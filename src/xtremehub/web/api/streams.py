"""Streams: scopes, streams, a stream's description and segments, write rate, reader-group lag
and the LTS backlog, from :class:`~xtremehub.web.streams.StreamSource`.

Authorisation: listing scopes and the store-wide backlog is ``read`` on ``Scope::"*"``; a
scope's streams and reader groups ``read`` on the scope; a stream's details ``read`` on
``Stream::"<scope>/<stream>"`` (as the stream server authorises them).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from xtremehub.security.authz import Action
from xtremehub.web.api._common import PROBLEM_RESPONSES, context
from xtremehub.web.auth import CallerDep

__all__ = ["router"]

router = APIRouter(prefix="/streams", tags=["streams"], responses=PROBLEM_RESPONSES)

Name = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class SegmentOut(BaseModel):
    name: str
    start_offset: int
    length: int
    sealed: bool
    tiered_length: int


class ActiveSegmentOut(BaseModel):
    name: str
    number: int
    epoch: int
    key_low: float
    key_high: float
    head: int
    tail: int


class StreamOut(BaseModel):
    scope: str
    stream: str
    sealed: bool
    epoch: int
    created: float
    scaling: dict[str, Any]
    retention: dict[str, Any]
    active_segments: list[ActiveSegmentOut]
    segments: list[SegmentOut]


class RateOut(BaseModel):
    scope: str
    stream: str
    bytes: int
    bytes_per_second: float | None
    window_seconds: float
    average_bytes_per_second: float
    sampled_at: float


class LagSegmentOut(BaseModel):
    segment: str
    stream: str
    offset: int
    length: int
    lag_bytes: int
    owner: str | None
    state: str


class LagOut(BaseModel):
    scope: str
    group: str
    streams: list[str]
    readers: list[str]
    lag_bytes: int
    per_stream: dict[str, int]
    segments: list[LagSegmentOut]


class BacklogOut(BaseModel):
    untiered_bytes: int
    wal_bytes: int
    cache_bytes: int
    spill_bytes: int
    lts_available: bool
    throttled: bool
    stream: str | None = None
    stream_untiered_bytes: int | None = None


@router.get("/scopes", response_model=list[str], summary="Scopes")
def scopes(request: Request, who: CallerDep) -> list[str]:
    who.may(Action.READ, "scope", "*")
    return list(context(request).streams().scopes())


@router.get("/backlog", response_model=BacklogOut, summary="Bytes not yet in long-term storage (store-wide)")
def backlog(request: Request, who: CallerDep) -> BacklogOut:
    who.may(Action.READ, "scope", "*")
    return BacklogOut(**context(request).streams().backlog())


@router.get("/scopes/{scope}", response_model=list[str], summary="A scope's streams")
def streams(scope: Name, request: Request, who: CallerDep) -> list[str]:
    who.may(Action.READ, "scope", scope)
    return list(context(request).streams().streams(scope))


@router.get("/scopes/{scope}/streams/{stream}", response_model=StreamOut, summary="Policies, segments, head and tail")
def describe(scope: Name, stream: Name, request: Request, who: CallerDep) -> StreamOut:
    who.may(Action.READ, "stream", f"{scope}/{stream}")
    return StreamOut(**context(request).streams().describe(scope, stream))


@router.get("/scopes/{scope}/streams/{stream}/rate", response_model=RateOut, summary="Write rate (bytes/s)")
def rate(scope: Name, stream: Name, request: Request, who: CallerDep) -> RateOut:
    """Growth over the samples of the last minute (None until two samples), and the lifetime average."""
    who.may(Action.READ, "stream", f"{scope}/{stream}")
    return RateOut(**context(request).streams().write_rate(scope, stream))


@router.get("/scopes/{scope}/streams/{stream}/backlog", response_model=BacklogOut, summary="A stream's LTS backlog")
def stream_backlog(scope: Name, stream: Name, request: Request, who: CallerDep) -> BacklogOut:
    who.may(Action.READ, "stream", f"{scope}/{stream}")
    return BacklogOut(**context(request).streams().backlog(scope, stream))


@router.get("/scopes/{scope}/reader-groups", response_model=list[str], summary="A scope's reader groups")
def reader_groups(scope: Name, request: Request, who: CallerDep) -> list[str]:
    who.may(Action.READ, "scope", scope)
    return list(context(request).streams().reader_groups(scope))


@router.get(
    "/scopes/{scope}/reader-groups/{group}/lag", response_model=LagOut, summary="Unread bytes of a reader group"
)
def lag(scope: Name, group: Name, request: Request, who: CallerDep) -> LagOut:
    who.may(Action.READ, "scope", scope)
    return LagOut(**context(request).streams().lag(scope, group))
