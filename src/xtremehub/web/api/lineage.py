"""Lineage: the jobs and datasets upstream and/or downstream of a dataset, to a depth.

Authorised as ``read`` on the root dataset; the graph lists only the datasets the caller may
read (the others stay as ``dataset:<id>`` node ids in the edges, without their records).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from xtremehub.catalog.model import LineageGraph
from xtremehub.security.authz import Action
from xtremehub.web.api._common import PROBLEM_RESPONSES, context
from xtremehub.web.api.datasets import DatasetId, dataset_for
from xtremehub.web.auth import CallerDep
from xtremehub.web.dataset_rules import dataset_attributes
from xtremehub.web.schemas import LineageOut, lineage_out

__all__ = ["router"]

router = APIRouter(prefix="/datasets", tags=["lineage"], responses=PROBLEM_RESPONSES)


@router.get("/{dataset_id}/lineage", response_model=LineageOut, summary="Upstream and/or downstream of a dataset")
def lineage(
    dataset_id: DatasetId,
    request: Request,
    who: CallerDep,
    direction: Literal["up", "down", "both"] = "both",
    depth: Annotated[int, Query(ge=1, le=20)] = 5,
) -> LineageOut:
    """``up``: what it was made from; ``down``: what was made from it; edges ``dataset -> job -> dataset``."""
    dataset_for(request, who, dataset_id, Action.READ)
    graph = context(request).catalog.lineage(dataset_id, direction=direction, depth=depth)
    visible = tuple(
        d for d in graph.datasets if d.id == dataset_id or who.can(Action.READ, "dataset", d.id, dataset_attributes(d))
    )
    return lineage_out(LineageGraph(graph.root, visible, graph.jobs, graph.edges))
