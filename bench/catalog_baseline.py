"""The catalog search as it was before the bounded, cached counts (main at 3578bf6), for
``bench/catalog.py`` to run in the same process, on the same databases, as the baseline.

Every search: the page (``LIMIT``/``OFFSET`` over the full rows), then the total and the five
facet counts computed exactly over every match (tags from the JSON column of each match). With
security on, :func:`visible_search` pages through every match (each page recomputing those
counts) and asks the policy engine about each match. One change: on PostgreSQL its text match
reads the stored vector of migration 0003 (the expression index it used is gone with 0003).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from xtremehub.catalog.model import FACETS, Dataset, SearchPage, SearchQuery
from xtremehub.catalog.store import rows
from xtremehub.catalog.store.schema import FTS_TABLE, dataset_search, dataset_tags, datasets
from xtremehub.catalog.store.search import plan

__all__ = ["search", "visible_search"]

_FACET_COLUMNS = {"format": datasets.c.format, "owner": datasets.c.owner, "licence": datasets.c.licence}
_FACET_COLUMNS["kind"] = datasets.c.kind
_FTS = sa.table(FTS_TABLE, sa.column("rowid"), sa.column("rank"))


def _conditions(text: bool, facets: frozenset[str], dialect: str) -> list[Any]:
    conds: list[Any] = []
    if text:
        if dialect == "sqlite":
            match = sa.literal_column(FTS_TABLE).op("MATCH")(sa.bindparam("q_text", type_=sa.String))
            conds.append(datasets.c.pk.in_(sa.select(_FTS.c.rowid).where(match)))
        else:
            query = sa.func.to_tsquery(sa.literal_column("'simple'"), sa.bindparam("q_text", type_=sa.String))
            # 0003 replaced the expression index by a stored vector, 0004 moved it to the side
            # table: the same vector, indexed, matched by key
            matched = sa.select(dataset_search.c.pk).where(dataset_search.c.search_tsv.op("@@")(query))
            conds.append(datasets.c.pk.in_(matched))
    for facet in sorted(facets):
        values: Any = sa.bindparam(f"f_{facet}", expanding=True)
        if facet == "tag":
            conds.append(datasets.c.pk.in_(sa.select(dataset_tags.c.dataset_pk).where(dataset_tags.c.tag.in_(values))))
        else:
            conds.append(_FACET_COLUMNS[facet].in_(values))
    return conds


@functools.lru_cache(maxsize=64)
def _items(text: bool, facets: frozenset[str], dialect: str) -> Any:
    stmt = sa.select(datasets).where(*_conditions(text, facets, dialect))
    stmt = stmt.order_by(datasets.c.modified.desc(), datasets.c.pk.desc())
    return stmt.limit(sa.bindparam("q_limit", type_=sa.Integer)).offset(sa.bindparam("q_offset", type_=sa.Integer))


@functools.lru_cache(maxsize=64)
def _facets(text: bool, facets: frozenset[str], dialect: str) -> Any:
    tag = dataset_tags.c.tag
    if not text and not facets:
        parts: list[Any] = [sa.select(sa.literal(""), sa.null(), sa.func.count()).select_from(datasets)]
        for facet, column in _FACET_COLUMNS.items():
            parts.append(sa.select(sa.literal(facet), sa.cast(column, sa.String), sa.func.count()).group_by(column))
        parts.append(sa.select(sa.literal("tag"), tag, sa.func.count()).group_by(tag))
        return sa.union_all(*parts)
    matched = (
        sa.select(datasets.c.pk, datasets.c.tags, *_FACET_COLUMNS.values())
        .where(*_conditions(text, facets, dialect))
        .cte("matched")
        .prefix_with("MATERIALIZED")
    )
    parts = [sa.select(sa.literal(""), sa.null(), sa.func.count()).select_from(matched)]
    for facet in _FACET_COLUMNS:
        col = matched.c[facet]
        parts.append(sa.select(sa.literal(facet), sa.cast(col, sa.String), sa.func.count()).group_by(col))
    elements = sa.func.json_each if dialect == "sqlite" else sa.func.json_array_elements_text
    each = elements(matched.c.tags).table_valued("value").alias("each_tag")
    parts.append(
        sa.select(sa.literal("tag"), each.c.value, sa.func.count())
        .select_from(matched.join(each, sa.true()))
        .group_by(each.c.value)
    )
    return sa.union_all(*parts)


def search(engine: Any, query: SearchQuery) -> SearchPage:
    """The old ``SqlCatalog.search`` on ``engine``."""
    dialect = engine.dialect.name
    found = plan(query, dialect)
    shape = (found.text, found.facets, dialect)
    with engine.connect() as conn:
        items = tuple(rows.dataset(r) for r in conn.execute(_items(*shape), found.params))
        counted = conn.execute(_facets(*shape), found.params).all()
    total = 0
    facets: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
    for facet, value, count in counted:
        if facet == "":
            total = int(count)
        elif value is not None:
            facets[facet][str(value)] = int(count)
    top = {f: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))[:50]) for f, v in facets.items()}
    return SearchPage(items=items, total=total, limit=query.limit, offset=query.offset, facets=top)


def visible_search(
    search: Callable[[SearchQuery], SearchPage], query: SearchQuery, may_read: Callable[[Dataset], bool]
) -> SearchPage:
    """The old ``web.dataset_rules.visible_search`` with security on (every match decided)."""
    visible: list[Dataset] = []
    offset = 0
    while True:
        chunk = search(replace(query, limit=1000, offset=offset))
        visible += [d for d in chunk.items if may_read(d)]
        offset += len(chunk.items)
        if not chunk.items or offset >= chunk.total:
            break
    counts: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
    for d in visible:
        for facet, values in (("format", (d.format,)), ("owner", (d.owner,)), ("tag", d.tags),
                              ("licence", (d.licence,)), ("kind", (d.kind,))):  # fmt: skip
            for value in values:
                if value is not None:
                    counts[facet][value] = counts[facet].get(value, 0) + 1
    items = tuple(visible[query.offset : query.offset + query.limit])
    return SearchPage(items=items, total=len(visible), limit=query.limit, offset=query.offset, facets=counts)
