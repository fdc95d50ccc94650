"""Full-text search with facet filters and counts, the same results on SQLite and PostgreSQL.

Each dataset keeps a ``search_doc``: the lower-cased words of its title, description, tags,
URL, format, owner, licence and extracted facts (keys and values). A query's text is cut into
words the same way and every word must match (AND). Only words reach the database, quoted
(FTS5) or joined with ``&`` (``to_tsquery``), and bound as parameters: quotes, ``%``, ``*``,
``NEAR``, ``OR``, ``--`` and the like in the query are ordinary characters, never operators.

Facets (format, owner, tag, licence, kind): values within one facet OR, facets AND; the counts
are over all matches (every filter applied), in one query with the total.

Example:
    >>> words("Lungs CT: s3://lab/Reads.fastq.gz -- OR 1=1; DROP")
    ['lungs', 'ct', 's3', 'lab', 'reads', 'fastq', 'gz', 'or', '1', '1', 'drop']
    >>> search_doc(title="Run 7", description="", tags=("wgs",), url="s3://b/r.fq", facts={"reads": 12})
    'run 7 wgs s3 b r fq reads 12'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from xtremehub.catalog.model import FACETS, SearchQuery
from xtremehub.catalog.store import limits
from xtremehub.catalog.store.schema import FTS_TABLE, dataset_tags, datasets
from xtremehub.errors import InvalidMetadata

__all__ = ["MAX_DOC", "facet_statement", "items_statement", "parameters", "search_doc", "words"]

#: Characters of a dataset's search document kept (facts beyond it are not searchable).
MAX_DOC = 100_000
MAX_QUERY_WORDS = 32
_WORD = re.compile(r"[^\W_]+")
_FACET_COLUMNS = {"format": datasets.c.format, "owner": datasets.c.owner, "licence": datasets.c.licence}
_FACET_COLUMNS["kind"] = datasets.c.kind
_FTS = sa.table(FTS_TABLE, sa.column("rowid"), sa.column("rank"))


def words(text: str) -> list[str]:
    """The lower-cased words (letters and digits) of ``text``."""
    return _WORD.findall(text.lower())


def _fact_words(value: Any, out: list[str], budget: int) -> int:
    if budget <= 0:
        return budget
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.append(str(key))
            budget = _fact_words(item, out, budget - len(str(key)))
    elif isinstance(value, list | tuple):
        for item in value:
            budget = _fact_words(item, out, budget)
    elif value is not None and not isinstance(value, bool):
        text = str(value)
        out.append(text)
        budget -= len(text)
    return budget


def search_doc(
    *,
    title: str,
    description: str,
    tags: Iterable[str],
    url: str,
    facts: Mapping[str, Any],
    extra: Iterable[str | None] = (),
) -> str:
    """The text the full-text index holds for one dataset (at most :data:`MAX_DOC` characters)."""
    parts: list[str] = [title, description, *tags, url, *(e for e in extra if e)]
    _fact_words(facts, parts, MAX_DOC)
    doc = " ".join(words(" ".join(parts)))
    return doc if len(doc) <= MAX_DOC else doc[:MAX_DOC].rsplit(" ", 1)[0]


def _check(query: SearchQuery) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    text = limits.text("text", query.text, limits.MAX_SEARCH)
    if not 1 <= query.limit <= limits.MAX_LIMIT:
        raise InvalidMetadata("limit", f"must be in [1, {limits.MAX_LIMIT}], not {query.limit}")
    if query.offset < 0:
        raise InvalidMetadata("offset", f"must be >= 0, not {query.offset}")
    filters: dict[str, tuple[str, ...]] = {}
    for facet, given in query.filters.items():
        if facet not in FACETS:
            raise InvalidMetadata(f"filters.{facet}", f"unknown facet; known: {', '.join(FACETS)}")
        values = (given,) if isinstance(given, str) else tuple(given)
        if len(values) > 100:
            raise InvalidMetadata(f"filters.{facet}", f"{len(values)} values, at most 100 allowed")
        filters[facet] = tuple(limits.text(f"filters.{facet}", v, limits.MAX_SHORT) for v in values)
    found = words(text)
    if len(found) > MAX_QUERY_WORDS:
        raise InvalidMetadata("text", f"{len(found)} words, at most {MAX_QUERY_WORDS} allowed")
    return found, {k: v for k, v in filters.items() if v}


def _conditions(text: bool, facets: frozenset[str], dialect: str) -> list[Any]:
    """WHERE conditions with bound parameters ``q_text`` and ``f_<facet>`` (expanding lists)."""
    conds: list[Any] = []
    if text:
        if dialect == "sqlite":
            match = sa.literal_column(FTS_TABLE).op("MATCH")(sa.bindparam("q_text", type_=sa.String))
            conds.append(datasets.c.pk.in_(sa.select(_FTS.c.rowid).where(match)))
        else:
            query = sa.func.to_tsquery(sa.literal_column("'simple'"), sa.bindparam("q_text", type_=sa.String))
            conds.append(_tsvector().op("@@")(query))
    for facet in sorted(facets):
        values: Any = sa.bindparam(f"f_{facet}", expanding=True)
        if facet == "tag":
            conds.append(datasets.c.pk.in_(sa.select(dataset_tags.c.dataset_pk).where(dataset_tags.c.tag.in_(values))))
        else:
            conds.append(_FACET_COLUMNS[facet].in_(values))
    return conds


def _tsvector() -> Any:
    # Spelled exactly as the GIN expression index is, so that PostgreSQL uses it.
    return sa.func.to_tsvector(sa.literal_column("'simple'"), datasets.c.search_doc)


def parameters(query: SearchQuery, dialect: str) -> tuple[tuple[bool, frozenset[str]], dict[str, Any]]:
    """The checked query's shape (which statements it needs) and its bound parameters."""
    found, filters = _check(query)
    params: dict[str, Any] = {"q_limit": query.limit, "q_offset": query.offset}
    if found:
        # Words hold letters and digits only: each is one quoted FTS5 string / one tsquery lexeme.
        params["q_text"] = " ".join(f'"{w}"' for w in found) if dialect == "sqlite" else " & ".join(found)
    for facet, values in filters.items():
        params[f"f_{facet}"] = list(values)
    return (bool(found), frozenset(filters)), params


@functools.lru_cache(maxsize=256)
def items_statement(text: bool, facets: frozenset[str], dialect: str) -> Any:
    """SELECT of one page of matching datasets (newest modified first), built once per shape."""
    stmt = sa.select(datasets).where(*_conditions(text, facets, dialect))
    stmt = stmt.order_by(datasets.c.modified.desc(), datasets.c.pk.desc())
    return stmt.limit(sa.bindparam("q_limit", type_=sa.Integer)).offset(sa.bindparam("q_offset", type_=sa.Integer))


@functools.lru_cache(maxsize=256)
def facet_statement(text: bool, facets: frozenset[str], dialect: str) -> Any:
    """One SELECT of (facet, value, count) rows over all matches, with ('', None, total).

    With neither text nor filters each count is a GROUP BY over its own index (no scan of the
    rows); otherwise over the matches, computed once (a materialised CTE).
    """
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
    # Tags of the matches from their JSON list (a scan of the matches only, not of every tag row).
    elements = sa.func.json_each if dialect == "sqlite" else sa.func.json_array_elements_text
    each = elements(matched.c.tags).table_valued("value").alias("each_tag")
    parts.append(
        sa.select(sa.literal("tag"), each.c.value, sa.func.count())
        .select_from(matched.join(each, sa.true()))
        .group_by(each.c.value)
    )
    return sa.union_all(*parts)
