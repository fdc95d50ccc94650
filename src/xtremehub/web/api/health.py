"""``GET /api/v1/health``: liveness, no authentication (for load balancers and ``xhub serve``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from xtremehub import __version__

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    security: bool


@router.get("/health", response_model=Health, summary="Liveness (no token needed)")
def health(request: Request) -> Health:
    """The server answers; whether it requires bearer tokens."""
    return Health(status="ok", version=__version__, security=request.app.state.xhub.gate.secured)
