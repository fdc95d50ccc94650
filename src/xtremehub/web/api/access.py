"""Access requests (the data-space contract flow, simplified): request, list, approve, reject.

Anyone who may discover datasets (``read`` on ``Dataset::"*"``) may ask for access to one for
a stated purpose. The dataset's owner, or whoever the policy lets ``admin`` it, approves or
rejects with ``If-Match`` (the request's etag): a decision on a request someone else decided
meanwhile is 412. An approval becomes a usage policy in the policy engine (the catalog writes
it). A caller sees the requests they made and those on datasets they own or administer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from xtremehub.catalog.model import DataAccessRequest
from xtremehub.errors import DatasetNotFound
from xtremehub.security.authz import Action
from xtremehub.web.api._common import PROBLEM_RESPONSES, IfMatch, context, require_if_match, set_etag
from xtremehub.web.api.datasets import DatasetId, dataset_for
from xtremehub.web.auth import Caller, CallerDep
from xtremehub.web.dataset_rules import check_approval, dataset_attributes
from xtremehub.web.schemas import LINE, AccessDecisionIn, AccessRequestIn, AccessRequestOut, access_out

__all__ = ["router"]

router = APIRouter(tags=["access requests"], responses=PROBLEM_RESPONSES)

RequestId = Annotated[str, Path(min_length=1, max_length=64, pattern=LINE)]
Status = Literal["pending", "approved", "rejected", "revoked", "expired"]


def _may_decide(request: Request, who: Caller, dataset_id: str) -> bool:
    try:
        ds = context(request).catalog.get(dataset_id)
    except DatasetNotFound:
        return who.can(Action.ADMIN, "dataset", dataset_id)
    return ds.owner == who.subject or who.can(Action.ADMIN, "dataset", ds.id, dataset_attributes(ds))


def _visible(request: Request, who: Caller, req: DataAccessRequest) -> bool:
    return req.requester == who.subject or _may_decide(request, who, req.dataset_id)


@router.post(
    "/datasets/{dataset_id}/access-requests",
    response_model=AccessRequestOut,
    status_code=201,
    summary="Ask for access to a dataset for a purpose",
)
def create(
    dataset_id: DatasetId, body: AccessRequestIn, request: Request, response: Response, who: CallerDep
) -> AccessRequestOut:
    who.may(Action.READ, "dataset", "*")
    context(request).catalog.get(dataset_id)  # 404 for an unknown dataset
    req = context(request).catalog.request_access(
        dataset_id, actor=who.subject, purpose=body.purpose, expires=body.expires
    )
    set_etag(response, req.etag)
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/api/v1/access-requests/{req.id}"
    return access_out(req)


@router.get("/access-requests", response_model=list[AccessRequestOut], summary="Access requests you may see")
def list_requests(
    request: Request,
    who: CallerDep,
    dataset_id: Annotated[str | None, Query(max_length=64, pattern=LINE)] = None,
    requester: Annotated[str | None, Query(max_length=256, pattern=LINE)] = None,
    status: Status | None = None,
) -> list[AccessRequestOut]:
    found = context(request).catalog.access_requests(dataset_id=dataset_id, requester=requester, status=status)
    return [access_out(r) for r in found if _visible(request, who, r)]


def _one(request: Request, who: Caller, request_id: str) -> DataAccessRequest:
    found = next((r for r in context(request).catalog.access_requests() if r.id == request_id), None)
    if found is None or not _visible(request, who, found):
        raise DatasetNotFound(request_id, "access request")
    return found


@router.get("/access-requests/{request_id}", response_model=AccessRequestOut, summary="One access request")
def get_request(request_id: RequestId, request: Request, response: Response, who: CallerDep) -> AccessRequestOut:
    req = _one(request, who, request_id)
    set_etag(response, req.etag)
    return access_out(req)


def _decide(
    request: Request, response: Response, who: Caller, request_id: str, approve: bool, reason: str, if_match: str | None
) -> AccessRequestOut:
    etag = require_if_match(if_match)
    req = _one(request, who, request_id)
    roles = set(who.identity.roles)
    if not _may_decide(request, who, req.dataset_id):
        dataset_for(request, who, req.dataset_id, Action.ADMIN)  # raises the policy's Forbidden
        roles.add("admin")  # the policy lets this caller administer the dataset
    if approve:
        ds = context(request).catalog.get(req.dataset_id)
        check_approval(who.gate, who.identity, ds, req.requester, purpose=req.purpose)
    decided = context(request).catalog.decide(
        request_id, approve=approve, actor=who.subject, if_match=etag, reason=reason, roles=sorted(roles)
    )
    set_etag(response, decided.etag)
    return access_out(decided)


_DECISION_RESPONSES: dict[int | str, dict[str, object]] = {
    412: {"description": "stale If-Match: decided or changed meanwhile"},
    428: {"description": "If-Match missing"},
}


@router.post(
    "/access-requests/{request_id}/{decision}",
    response_model=AccessRequestOut,
    summary="Approve (writes a usage policy) or reject; owner or admin; If-Match required",
    responses=_DECISION_RESPONSES,
)
def decide(
    request_id: RequestId,
    decision: Literal["approve", "reject"],
    request: Request,
    response: Response,
    who: CallerDep,
    body: AccessDecisionIn | None = None,
    if_match: IfMatch = None,
) -> AccessRequestOut:
    reason = body.reason if body else ""
    return _decide(request, response, who, request_id, decision == "approve", reason, if_match)
