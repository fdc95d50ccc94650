"""Datasets: register (by URL, or with explicit fields), get, patch (``If-Match``), delete,
versions, and search with facets and pagination.

Authorisation (resource kind ``dataset``, see ``docs/web_api.md``): searching and registering
act on ``Dataset::"*"`` (read, write), the rest on ``Dataset::"<id>"`` with the dataset's
``owner``, ``kind`` and ``tags`` as attributes (:mod:`xtremehub.web.dataset_rules`); a search
lists only the datasets the caller may read. Registering also reads the data (the ``object``
or ``stream`` resource of its URL, for every kind), since the server reads it with its own
credentials; registering a URL that is already registered writes that dataset.

Registering by URL alone extracts the facts (an ``xhub-stream://<scope>/<stream>`` URL: from the
stream store this server shows, :func:`stream_facts`); registering with ``facts`` still asks the
object's store whether it exists (:func:`must_exist`: 404 when it does not).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field

from xtremehub import storage
from xtremehub.catalog.extract import Extracted
from xtremehub.catalog.model import Dataset, DatasetPatch, SearchQuery
from xtremehub.catalog.streams import StreamStore, dataset_kind, is_stream_url
from xtremehub.config import Settings
from xtremehub.errors import InvalidMetadata, ObjectNotFound, XHubError
from xtremehub.security.authz import Action
from xtremehub.web.api._common import PROBLEM_RESPONSES, IfMatch, context, require_if_match, set_etag
from xtremehub.web.auth import Caller, CallerDep
from xtremehub.web.dataset_rules import data_resource, dataset_attributes, dataset_resource, visible_search
from xtremehub.web.problems import HTTPProblem
from xtremehub.web.schemas import (
    LINE,
    DatasetCreate,
    DatasetOut,
    DatasetPatchIn,
    SearchPageOut,
    VersionOut,
    dataset_out,
    page_out,
    version_out,
)
from xtremehub.web.urls import checked_url

log = logging.getLogger(__name__)

__all__ = ["DatasetId", "dataset_for", "router"]

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=PROBLEM_RESPONSES)

DatasetId = Annotated[str, Path(min_length=1, max_length=64, pattern=LINE, description="the catalog id")]
Facet = Annotated[list[Annotated[str, Field(max_length=256, pattern=LINE)]] | None, Query(max_length=100)]


def dataset_for(request: Request, who: Caller, dataset_id: str, action: Action) -> Dataset:
    """The dataset, once ``who`` may do ``action`` on it (404 before 403: ids are not secret)."""
    ds = context(request).catalog.get(dataset_id)
    who.may(action, "dataset", ds.id, dataset_attributes(ds))
    return ds


@router.get("", response_model=SearchPageOut, summary="Search datasets (full text and facets, paginated)")
def search(
    request: Request,
    who: CallerDep,
    q: Annotated[
        str, Query(max_length=10_000, pattern=LINE, description="full text over titles, descriptions, tags, facts")
    ] = "",
    format: Facet = None,
    owner: Facet = None,
    tag: Facet = None,
    licence: Facet = None,
    kind: Facet = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SearchPageOut:
    """Values within a facet OR, facets AND; ``total`` and ``facets`` count every match the caller
    may read, not just this page."""
    ctx = context(request)
    if len(q) > ctx.config.search_max_length:
        raise InvalidMetadata("q", f"the search text has {len(q)} characters; at most {ctx.config.search_max_length}")
    limit = min(limit, ctx.config.page_max)
    who.may(Action.READ, "dataset", "*")
    filters = {
        name: tuple(values)
        for name, values in (("format", format), ("owner", owner), ("tag", tag), ("licence", licence), ("kind", kind))
        if values
    }
    may_read = (
        (lambda page: who.can_each(Action.READ, [dataset_resource(d) for d in page])) if who.gate.secured else None
    )
    readable = who.readable("dataset") if who.gate.secured else None
    query = SearchQuery(text=q, filters=filters, limit=limit, offset=offset)
    page = visible_search(ctx.catalog.search, query, may_read, readable)
    next_url = None
    if offset + limit < page.total or (page.total_is_lower_bound and len(page.items) == limit):
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "limit")]
        params += [("limit", str(limit)), ("offset", str(offset + limit))]
        next_url = f"{request.url.path}?{urllib.parse.urlencode(params)}"
    return page_out(page, next_url)


@router.post("", response_model=DatasetOut, status_code=201, summary="Register a dataset")
def register(body: DatasetCreate, request: Request, response: Response, who: CallerDep) -> DatasetOut:
    """Register ``url``: alone, its facts are extracted by the connector; with ``facts``, as given.

    Registering a URL that is already registered adds a version when its content changed.
    """
    url = checked_url(body.url)
    kind = dataset_kind(url, body.kind)  # a stream URL is a stream
    if kind == "prefix" and not url.endswith("/"):
        url += "/"  # as the catalog registers (and grants) a prefix
    who.may(Action.WRITE, "dataset", "*")
    who.may(Action.READ, *data_resource(kind, url))  # every kind: the server reads the data
    roles = set(who.identity.roles)
    known = context(request).catalog.find_by_url(url)
    if known is not None:  # a new version of a registered dataset: write on that dataset
        dataset_for(request, who, known.id, Action.WRITE)
        roles.add("admin")  # the policy lets this caller write it
    facts, source_version, title, fmt = body.facts, body.source_version, body.title, body.format
    distributions = tuple(d.to_model() for d in body.distributions)
    if is_stream_url(url) and (facts is None or source_version is None):  # read from the server's stream store
        found = stream_facts(request, url)
        facts = dict(found.facts) if facts is None else facts
        source_version = source_version or found.source_version
        distributions = distributions or found.distributions
        title = title or found.title
        fmt = fmt or found.format
    elif facts is not None and source_version is not None and kind in ("object", "derived"):
        must_exist(url, context(request).settings)  # described, not read: but not a description of nothing
    try:
        ds = context(request).catalog.register(
            url,
            actor=who.subject,
            kind=kind,
            title=title,
            description=body.description,
            tags=tuple(body.tags),
            licence=body.licence,
            format=fmt,
            facts=facts,
            distributions=distributions,
            source_version=source_version,
            health=body.health.to_model() if body.health else None,
            roles=sorted(roles),
        )
    except NotImplementedError as exc:
        raise HTTPProblem(501, f"extracting facts is not available here: {exc}; give 'facts'") from exc
    except ObjectNotFound as exc:
        raise _not_found(url, exc) from exc
    set_etag(response, ds.etag)
    response.headers["Location"] = f"{request.url.path}/{urllib.parse.quote(ds.id, safe='')}"
    return dataset_out(ds)


def must_exist(url: str, settings: Settings) -> None:
    """Refuse (:class:`~xtremehub.errors.ObjectNotFound`, 404) an object its store says does not
    exist. When the server cannot look (no credential for that store, store unreachable, a scheme
    it has no store for, a web URL: the server does not probe the web for a description) the
    description is registered as given: the caller may read the data."""
    if url.lower().removeprefix("enc+").startswith(("http://", "https://")):  # enc+http(s): the web too
        return
    try:
        storage.head(url, settings=settings)
    except ObjectNotFound as exc:
        raise _not_found(url, exc) from exc
    except XHubError as exc:  # refused, unreachable, unknown scheme, no encryption set up, ...
        log.info("registering %s as described: its existence cannot be checked here (%s)", url, type(exc).__name__)


def _not_found(url: str, exc: ObjectNotFound) -> ObjectNotFound:
    """The 404 of a registration, naming the URL as the caller gave it (a store may name a path)."""
    return exc if exc.url == url else ObjectNotFound(url, f"nothing to register ({exc})")


def stream_facts(request: Request, url: str) -> Extracted:
    """The facts of the stream ``url`` from the stream store this server shows (``[web] streams``),
    whose LTS is its own (embedded) or ``[catalog] streams_lts``."""
    ctx = context(request)
    source = ctx.streams()
    store = StreamStore(ctx.settings, manager=lambda: source.manager, lts_url=ctx.settings.catalog.streams_lts)
    return store.extract(url)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="One dataset (ETag: its record's version)")
def get_dataset(dataset_id: DatasetId, request: Request, response: Response, who: CallerDep) -> DatasetOut:
    ds = dataset_for(request, who, dataset_id, Action.READ)
    set_etag(response, ds.etag)
    return dataset_out(ds)


@router.patch(
    "/{dataset_id}",
    response_model=DatasetOut,
    summary="Update title, description, tags, licence or health fields (If-Match required)",
    responses={412: {"description": "stale If-Match"}, 428: {"description": "If-Match missing"}},
)
def patch_dataset(
    dataset_id: DatasetId,
    body: DatasetPatchIn,
    request: Request,
    response: Response,
    who: CallerDep,
    if_match: IfMatch = None,
) -> DatasetOut:
    """A stale ``If-Match`` is 412 (someone else changed it since you read it), never an overwrite."""
    etag = require_if_match(if_match)
    dataset_for(request, who, dataset_id, Action.WRITE)
    patch = DatasetPatch(
        title=body.title,
        description=body.description,
        tags=tuple(body.tags) if body.tags is not None else None,
        licence=body.licence,
        health=body.health.to_model() if body.health else None,
    )
    ds = context(request).catalog.update(dataset_id, patch, actor=who.subject, if_match=etag)
    set_etag(response, ds.etag)
    return dataset_out(ds)


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a dataset's record (If-Match required; the data stays)",
    responses={412: {"description": "stale If-Match"}, 428: {"description": "If-Match missing"}},
)
def delete_dataset(dataset_id: DatasetId, request: Request, who: CallerDep, if_match: IfMatch = None) -> Response:
    etag = require_if_match(if_match)
    dataset_for(request, who, dataset_id, Action.ADMIN)
    context(request).catalog.delete(dataset_id, actor=who.subject, if_match=etag)
    return Response(status_code=204)


@router.get("/{dataset_id}/versions", response_model=list[VersionOut], summary="Content versions, oldest first")
def versions(dataset_id: DatasetId, request: Request, who: CallerDep) -> list[VersionOut]:
    dataset_for(request, who, dataset_id, Action.READ)
    return [version_out(v) for v in context(request).catalog.versions(dataset_id)]
