"""Access requests: ask for a dataset for a stated purpose; its owner (or an admin) approves or rejects.

- ``POST /cockpit/datasets/{id}/access`` (``purpose``, optional ``days``) files a request.
- ``GET /cockpit/access`` lists the requests the viewer made and those waiting for their decision.
- ``POST /cockpit/access/{request id}`` (``decision`` = approve | reject, ``etag``, ``reason``)
  decides one; a stale ``etag`` (someone decided meanwhile) is refused, never overwritten.

An approval becomes a usage policy in the security policy engine (the catalog does that); an
approval needs the approver to read the data (object, prefix or stream) and to release the
dataset's key themselves, for the request's purpose, and only an admin approves their
own request (:func:`~xtremehub.web.dataset_rules.check_approval`, as the API). Forms are
protected from cross-site posting by the ``SameSite=Strict`` session cookie and, with security
off too, by :class:`~xtremehub.web.origin.SameOrigin`.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from xtremehub.catalog.model import DataAccessRequest
from xtremehub.errors import CatalogError, CatalogUnavailable, Forbidden
from xtremehub.security.authz import Action
from xtremehub.web.cockpit.render import page
from xtremehub.web.cockpit.session import ViewerDep
from xtremehub.web.dataset_rules import check_approval

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.post("/cockpit/datasets/{dataset_id}/access", response_model=None)
def request_access(
    request: Request,
    who: ViewerDep,
    dataset_id: str,
    purpose: Annotated[str, Form(min_length=3, max_length=2000)],
    days: Annotated[int, Form(ge=1, le=3650)] = 90,
) -> Response:
    try:
        who.must(Action.READ, "dataset", "*")  # as the API asks: who may discover datasets
        who.catalog.request_access(
            dataset_id, actor=who.subject, purpose=purpose, expires=datetime.now(UTC) + timedelta(days=days)
        )
    except CatalogUnavailable:
        raise  # a 503 page
    except CatalogError as exc:
        return page(request, "error.html", status_code=400, title="Request refused", message=str(exc))
    return RedirectResponse(f"/cockpit/datasets/{urllib.parse.quote(dataset_id, safe='')}?requested=1", status_code=303)


def _decidable(who: ViewerDep, req: DataAccessRequest, owners: dict[str, str]) -> bool:
    return req.status == "pending" and ("admin" in who.identity.roles or owners.get(req.dataset_id) == who.subject)


@router.get("/cockpit/access", response_class=HTMLResponse)
def access_page(request: Request, who: ViewerDep, status: str = "") -> HTMLResponse:
    wanted = status if status in ("pending", "approved", "rejected", "revoked", "expired") else None
    everything = list(who.catalog.access_requests(status=wanted))
    owners: dict[str, str] = {}
    titles: dict[str, str] = {}
    for r in everything:
        if r.dataset_id not in owners:
            try:
                d = who.catalog.get(r.dataset_id)
                owners[r.dataset_id], titles[r.dataset_id] = d.owner, d.title
            except CatalogUnavailable:
                raise
            except CatalogError:
                owners[r.dataset_id], titles[r.dataset_id] = "", r.dataset_id
    admin = "admin" in who.identity.roles
    shown = [r for r in everything if admin or r.requester == who.subject or owners.get(r.dataset_id) == who.subject]
    rows = [(r, titles.get(r.dataset_id, r.dataset_id), _decidable(who, r, owners)) for r in shown]
    rows.sort(key=lambda row: (row[0].status != "pending", -row[0].created.timestamp()))
    return page(
        request, "access.html", rows=rows, status=wanted or "", message=request.query_params.get("msg", "")[:200]
    )


@router.post("/cockpit/access/{request_id}", response_model=None)
def decide(
    request: Request,
    who: ViewerDep,
    request_id: str,
    decision: Annotated[Literal["approve", "reject"], Form()],
    etag: Annotated[str, Form(max_length=200)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        if decision == "approve":
            req = who.catalog.get_access_request(request_id)
            ds = who.catalog.get(req.dataset_id)
            check_approval(who.context.gate, who.identity, ds, req.requester, purpose=req.purpose)
        decided = who.catalog.decide(
            request_id,
            approve=decision == "approve",
            actor=who.subject,
            if_match=etag,
            reason=reason,
            roles=sorted(who.identity.roles),
        )
    except CatalogUnavailable:
        raise
    except (CatalogError, Forbidden) as exc:
        return page(
            request,
            "error.html",
            status_code=409 if "etag" in str(exc).lower() else 400,
            title="Not decided",
            message=str(exc),
        )
    msg = urllib.parse.urlencode({"msg": f"request {decided.id} {decided.status}"})
    return RedirectResponse(f"/cockpit/access?{msg}", status_code=303)
