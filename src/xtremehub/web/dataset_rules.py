"""Who may see a dataset and its data: the decisions the REST API and the cockpit share.

A dataset is judged as the resource ``Dataset::"<id>"`` with its ``owner``, ``kind`` and
``tags`` as attributes (:func:`dataset_attributes`), everywhere: a GET, a search result, a
lineage node, a cockpit page. Its *data* (the object, prefix or stream its URL names) is a
separate resource (:func:`data_resource`): reading the metadata never lets the server read
the data with its own credentials on the caller's behalf.

Search results hold only datasets the same decision as a GET allows (:func:`visible_search`):
the caller's policies, partially evaluated into one condition over a dataset's id, owner,
kind and tags, filter the catalog's query, so that the total and the facet counts are over
the datasets the caller may see (they do not reveal hidden ones) at the cost of one search;
the policy engine still decides every dataset of the returned page.

Example:
    >>> data_resource("prefix", "s3://lab/run9/"), data_resource("stream", "xhub-stream://h:1/s")
    (('object', 's3://lab/run9/'), ('stream', 'h:1/s'))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from xtremehub.catalog.model import FACETS, Dataset, SearchPage, SearchQuery
from xtremehub.catalog.store.access import granted_data
from xtremehub.catalog.store.limits import MAX_LIMIT
from xtremehub.catalog.streams import is_stream_url
from xtremehub.errors import Forbidden
from xtremehub.security.authz import Action, Resource
from xtremehub.security.residual import Condition, conditions_text

if TYPE_CHECKING:
    from xtremehub.security.identity import Identity
    from xtremehub.web.auth import Gate

__all__ = [
    "MAX_FACET_VALUES",
    "check_approval",
    "data_resource",
    "dataset_attributes",
    "dataset_resource",
    "grants_data",
    "visible_search",
]

log = logging.getLogger(__name__)

#: Values kept per facet (the most frequent), as the catalog's own search does.
MAX_FACET_VALUES = 50


def dataset_attributes(ds: Dataset) -> dict[str, object]:
    """The attributes a dataset is judged by: ``owner``, ``kind`` and ``tags``."""
    return {"owner": ds.owner, "kind": ds.kind, "tags": list(ds.tags)}


def dataset_resource(ds: Dataset) -> Resource:
    """The resource ``ds`` is judged as: ``dataset`` named by its id, with :func:`dataset_attributes`."""
    return Resource("dataset", ds.id, dataset_attributes(ds))


def data_resource(kind: str, url: str) -> tuple[str, str]:
    """The resource (kind, name) whose ``read`` a dataset of ``kind`` at ``url`` needs: decided by
    the URL (an ``xhub-stream://`` URL is a stream, anything else an object), never by the
    ``kind`` a caller claims."""
    if is_stream_url(url):
        return "stream", url.split("://", 1)[-1].strip("/")
    return "object", url


def grants_data(ds: Dataset) -> bool:
    """Whether approving access to ``ds`` also grants its data (the usage policy's second rule:
    its object, prefix or stream, :func:`~xtremehub.catalog.store.access.granted_data`)."""
    return granted_data(ds.kind, ds.url) is not None


def check_approval(gate: Gate, identity: Identity, ds: Dataset, requester: str, *, purpose: str | None) -> None:
    """Refuse (:class:`~xtremehub.errors.Forbidden`) an approval that grants more than the approver has.

    An approver who is not an ``admin`` (the identity's role) may not approve their own request
    (whatever the dataset: an approval covers what is inside it, its key too), and must be able to
    use what the approval grants, for the request's ``purpose``: ``read`` (or ``admin``) the
    dataset's data (its object, prefix or stream) and release its key (``read`` on
    ``Resource("key", ds.key_name)``, what the key service asks; ``admin`` of a key changes its key
    policy, it releases nothing), for every kind of dataset. An ``admin`` approves without these
    checks.
    """
    if "admin" in identity.roles:
        return
    if requester == identity.subject:
        # every approval covers what is inside the dataset (its key too): never one's own
        raise Forbidden(f"{identity.subject} may not approve their own request for {ds.id}")

    def usable(resource: Resource) -> bool:
        return gate.allowed(identity, Action.READ, resource, purpose=purpose) or gate.allowed(
            identity, Action.ADMIN, resource, purpose=purpose
        )

    granted = granted_data(ds.kind, ds.url)
    if granted is not None and not usable(Resource(*granted)):
        raise Forbidden(f"{identity.subject} may not grant {ds.url}: they may not read it themselves")
    if not gate.allowed(identity, Action.READ, Resource("key", ds.key_name), purpose=purpose):  # its release
        raise Forbidden(
            f"{identity.subject} may not grant the key of {ds.id}: they may not release it themselves"
            + (f" (for {purpose!r})" if purpose else "")
        )


def visible_search(
    search: Callable[[SearchQuery], SearchPage],
    query: SearchQuery,
    may_read: Callable[[Sequence[Dataset]], Sequence[bool]] | None,
    readable: Condition | None = None,
) -> SearchPage:
    """The page of ``query`` holding only datasets ``may_read`` allows, and counts over those.

    ``may_read`` decides a sequence of datasets at once (one answer each, in order: the policy
    engine deciding a page in one batch, :meth:`Gate.allowed_each`); None (security off: the
    single local user sees everything): the catalog's page as it is. ``readable`` (the caller's
    policies as a condition, :meth:`Gate.readable`): the catalog filters by it, so the page, the
    total and the facet counts are over readable datasets only and cost what an unfiltered
    search does; ``may_read`` still decides each dataset of the page, and one it denies is left
    out (never shown). Without a condition (policies a condition cannot express): every match is
    decided, in chunks of the catalog's largest page (whose counts the catalog caches, not
    recomputed per chunk), and the counts are made here.
    """
    if may_read is None:
        return search(query)
    if readable is not None:
        page = search(replace(query, visible=readable))
        items = _allowed(page.items, may_read)
        if len(items) != len(page.items):
            log.warning(
                "the policy engine denied %d datasets its listing condition allowed: %s",
                len(page.items) - len(items),
                conditions_text(readable),
            )
        return replace(page, items=items)
    visible: list[Dataset] = []
    offset = 0
    while True:
        chunk = search(replace(query, limit=MAX_LIMIT, offset=offset))
        visible += _allowed(chunk.items, may_read)
        offset += len(chunk.items)
        if not chunk.items or len(chunk.items) < MAX_LIMIT:
            break
    counts: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
    for d in visible:
        for facet, values in (
            ("format", (d.format,)),
            ("owner", (d.owner,)),
            ("tag", d.tags),
            ("licence", (d.licence,)),
            ("kind", (d.kind,)),
        ):
            for value in values:
                if value is not None:
                    counts[facet][value] = counts[facet].get(value, 0) + 1
    facets = {
        facet: dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FACET_VALUES])
        for facet, values in counts.items()
    }
    items = tuple(visible[query.offset : query.offset + query.limit])
    return SearchPage(items=items, total=len(visible), limit=query.limit, offset=query.offset, facets=facets)


def _allowed(
    datasets: Sequence[Dataset], may_read: Callable[[Sequence[Dataset]], Sequence[bool]]
) -> tuple[Dataset, ...]:
    """The datasets ``may_read`` allows, in order (none asked about when there are none)."""
    if not datasets:
        return ()
    return tuple(d for d, allowed in zip(datasets, may_read(datasets), strict=True) if allowed)
