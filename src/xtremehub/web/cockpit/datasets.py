"""Dataset pages: search with facets and pagination, a dataset's detail, its preview picture.

Routes (all HTML but the preview):

- ``GET /cockpit/datasets?q=&format=&owner=&tag=&licence=&kind=&page=`` the search page;
  with an ``HX-Request`` header only the results fragment (the search box updates it live).
- ``GET /cockpit/datasets/{id}`` title, description, tags, extracted facts, versions,
  lineage (SVG), the preview, and the access-request form.
- ``GET /cockpit/datasets/{id}/preview.png[?mz=]`` the preview picture (PNG).
- ``GET /cockpit/datasets/{id}/preview.html`` the CSV head table (an HTML fragment).
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from xtremehub.catalog.model import FACETS, Dataset, LineageGraph, SearchQuery
from xtremehub.errors import CatalogError, CatalogUnavailable, DatasetNotFound, PreviewUnavailable
from xtremehub.security.authz import Action
from xtremehub.web.cockpit.render import flatten_facts, page
from xtremehub.web.cockpit.session import Viewer, ViewerDep
from xtremehub.web.dataset_rules import data_resource, dataset_attributes, dataset_resource, visible_search
from xtremehub.web.previews import PreviewConfig, csv_head_html, lineage_svg, preview_kind, preview_png
from xtremehub.web.urls import checked_url

__all__ = ["PAGE_SIZE", "router"]

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
_MAX_Q = 500


class _PreviewCache:
    """The last pictures drawn, by (dataset, record etag, version, m/z): a preview is drawn once."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[tuple[Any, ...], bytes | str] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: tuple[Any, ...]) -> bytes | str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: bytes | str) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_CACHE = _PreviewCache()


def _filters(request: Request) -> dict[str, tuple[str, ...]]:
    return {f: tuple(v[:200] for v in request.query_params.getlist(f)[:20] if v) for f in FACETS}


def _link(q: str, filters: dict[str, tuple[str, ...]], page_no: int = 1, toggle: tuple[str, str] | None = None) -> str:
    """The search URL with ``toggle`` (facet, value) switched on or off."""
    chosen = {k: list(v) for k, v in filters.items()}
    if toggle is not None:
        values = chosen.setdefault(toggle[0], [])
        if toggle[1] in values:
            values.remove(toggle[1])
        else:
            values.append(toggle[1])
    pairs = [("q", q)] if q else []
    pairs += [(k, v) for k in FACETS for v in chosen.get(k, [])]
    if page_no > 1:
        pairs.append(("page", str(page_no)))
    return "/cockpit/datasets" + ("?" + urllib.parse.urlencode(pairs) if pairs else "")


@router.get("/cockpit/datasets", response_class=HTMLResponse)
def datasets(
    request: Request,
    who: ViewerDep,
    q: Annotated[str, Query(max_length=_MAX_Q)] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    filters = _filters(request)
    error = ""
    try:
        query = SearchQuery(
            text=q, filters={k: v for k, v in filters.items() if v}, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE
        )
        readable = who.readable("dataset") if who.context.gate.secured else None
        result = visible_search(who.catalog.search, query, _page_reader(who), readable)
        items, total, facets = list(result.items), result.total, result.facets
        total_lower, facets_lower = result.total_is_lower_bound, result.facets_are_lower_bounds
    except CatalogUnavailable:
        raise  # a 503 page, not "0 datasets"
    except CatalogError as exc:  # a search the catalog refuses (too long, bad filter): say why
        error, items, total, facets = str(exc), [], 0, {}
        total_lower = facets_lower = False
    pages = max(1, -(-total // PAGE_SIZE))
    facet_links = {
        name: [
            (value, count, value in filters.get(name, ()), _link(q, filters, toggle=(name, value)))
            for value, count in counts.items()
        ]
        for name, counts in facets.items()
    }
    context: dict[str, Any] = {
        "q": q,
        "items": items,
        "total": total,
        "total_lower": total_lower,
        "facets_lower": facets_lower,
        "page_no": page_no,
        "pages": pages,
        "facets": facet_links,
        "error": error,
        "prev_link": _link(q, filters, page_no - 1) if page_no > 1 else "",
        "next_link": _link(q, filters, page_no + 1) if page_no < pages else "",
        "filters": filters,
    }
    if request.headers.get("hx-request"):
        return page(request, "_results.html", **context)
    return page(request, "datasets.html", **context)


def _reader(who: Viewer) -> Callable[[Dataset], bool] | None:
    """Whether the viewer may read a dataset (None: security off, the local user reads all)."""
    if not who.context.gate.secured:
        return None
    return lambda d: who.can(Action.READ, "dataset", d.id, **dataset_attributes(d))


def _page_reader(who: Viewer) -> Callable[[Sequence[Dataset]], list[bool]] | None:
    """Which datasets of a page the viewer may read, decided together (None: security off)."""
    if not who.context.gate.secured:
        return None
    return lambda page: who.can_each(Action.READ, [dataset_resource(d) for d in page])


def _dataset(who: Viewer, dataset_id: str) -> Dataset:
    dataset: Dataset = who.catalog.get(dataset_id)
    who.must(Action.READ, "dataset", dataset.id, **dataset_attributes(dataset))
    return dataset


def _data(who: Viewer, dataset_id: str) -> Dataset:
    """The dataset, once the viewer may read its data too (as ``/api/v1/objects/preview`` checks)."""
    dataset = _dataset(who, dataset_id)
    url = dataset.url if dataset.kind == "stream" else checked_url(dataset.url)
    who.must(Action.READ, *data_resource(dataset.kind, url))
    return dataset


def _may_decide(who: Viewer, dataset: Dataset) -> bool:
    return (
        dataset.owner == who.subject
        or "admin" in who.identity.roles
        or who.can(Action.ADMIN, "dataset", dataset.id, **dataset_attributes(dataset))
    )


@router.get("/cockpit/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(request: Request, who: ViewerDep, dataset_id: str) -> HTMLResponse:
    try:
        dataset = _dataset(who, dataset_id)
    except DatasetNotFound as exc:
        return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
    versions = list(who.catalog.versions(dataset.id))
    try:
        graph = who.catalog.lineage(dataset.id, direction="both", depth=3)
        readable = _reader(who)
        if readable is not None:  # the nodes the viewer may read keep their records, as in the API
            shown = tuple(d for d in graph.datasets if d.id == dataset.id or readable(d))
            graph = LineageGraph(graph.root, shown, graph.jobs, graph.edges)
        svg = (
            lineage_svg(graph, link=lambda i: f"/cockpit/datasets/{urllib.parse.quote(i, safe='')}")
            if graph.edges
            else ""
        )
    except CatalogUnavailable:
        raise
    except CatalogError as exc:
        log.warning("lineage of %s: %s", dataset.id, exc)
        svg = ""
    requests = list(who.catalog.access_requests(dataset_id=dataset.id))
    if not _may_decide(who, dataset):  # others' requests (who, for what) are theirs and the deciders'
        requests = [r for r in requests if r.requester == who.subject]
    may_preview = who.can(Action.READ, *data_resource(dataset.kind, dataset.url))
    return page(
        request,
        "dataset.html",
        dataset=dataset,
        facts=flatten_facts(dataset.facts),
        versions=versions,
        lineage=svg,
        preview=preview_kind(dataset.format, dataset.url) if may_preview else None,
        requests=requests,
        quoted_id=urllib.parse.quote(dataset.id, safe=""),
    )


def _preview_config(request: Request) -> PreviewConfig:
    return PreviewConfig(settings=request.app.state.xhub.settings)


@router.get("/cockpit/datasets/{dataset_id}/preview.png", response_model=None)
def dataset_preview(
    request: Request, who: ViewerDep, dataset_id: str, mz: Annotated[float | None, Query(gt=0, lt=1e7)] = None
) -> Response:
    try:
        dataset = _data(who, dataset_id)
    except DatasetNotFound as exc:
        return Response(str(exc), status_code=404, media_type="text/plain")
    key = ("png", dataset.id, dataset.etag, dataset.latest_version, mz)
    png = _CACHE.get(key)
    if png is None:
        try:
            png = preview_png(dataset.url, dataset.format, _preview_config(request), mz=mz)
        except PreviewUnavailable as exc:
            return Response(str(exc), status_code=404, media_type="text/plain")
        _CACHE.put(key, png)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


@router.get("/cockpit/datasets/{dataset_id}/preview.html", response_class=HTMLResponse)
def dataset_preview_table(request: Request, who: ViewerDep, dataset_id: str) -> HTMLResponse:
    dataset = _data(who, dataset_id)
    if preview_kind(dataset.format, dataset.url) != "html":
        return HTMLResponse("<p>No table preview for this format.</p>", status_code=404)
    key = ("html", dataset.id, dataset.etag, dataset.latest_version)
    table = _CACHE.get(key)
    if table is None:
        table = csv_head_html(dataset.url, _preview_config(request))  # every cell escaped
        _CACHE.put(key, table)
    return HTMLResponse(str(table))
