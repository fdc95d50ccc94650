"""Full-text search with facet filters and counts, the same results on SQLite and PostgreSQL.

Each dataset keeps a ``search_doc``: the lower-cased words of its title, description, tags,
URL, format, owner, licence and extracted facts (keys and values). A query's text is cut into
words the same way and every word must match (AND). Only words reach the database, quoted
(FTS5) or joined with ``&`` (``to_tsquery``), and bound as parameters: quotes, ``%``, ``*``,
``NEAR``, ``OR``, ``--`` and the like in the query are ordinary characters, never operators.

Facets (format, owner, tag, licence, kind): values within one facet OR, facets AND; the counts
are over the matches (every filter applied). What a search costs stays bounded however many
datasets match (as in mature search engines):

* the page is the first ``limit`` keys in ``(modified, pk)`` order, then those rows only: a
  broad match walks the ``modified`` index and stops after the page (no sort of every match);
* the total is exact up to :data:`TOTAL_LIMIT` matches (Elasticsearch's ``track_total_hits``);
  beyond it the page says ``total_is_lower_bound``. A text-only query counts its full-text
  matches exactly (the index knows them), whatever their number;
* the facet counts are over the first :data:`FACET_LIMIT` matches in key (registration)
  order, the same sample on every call and on both backends; beyond, the page says
  ``facets_are_lower_bounds`` (each count is at least what is shown);
* the empty query reads the counts the database keeps on every write (``facet_counts``), exact;
* counts are cached per catalog *generation* (:mod:`.counts`): any write moves it, so a cached
  count is never older than the catalog the search reads.

``visible`` (a :data:`~xtremehub.security.residual.Condition`, from the caller's policies)
restricts the matches, the total and the counts to datasets the caller may read.

On PostgreSQL every statement matches, orders and counts on ``dataset_search`` (migration
0004): one row per dataset with only keys, facet values, tags (``text[]``) and the vector, kept
by a trigger, so counting and sampling matches read ~35 rows a page instead of ~5 and no JSON
(the vector is stored out of line since migration 0008: the GIN match never reads it again);
the page's ``datasets`` rows are then read by key. On SQLite counting and sampling read the
listing index ``ix_datasets_listing_tags`` (migration 0007: the facet values and the tags' JSON),
a text query's FTS5 matches joined to it in key order, so a listing condition's tag tests never
seek ``dataset_tags`` per row.
A query with text reads its GIN matches once for its total and facet sample, and its page
walks the ``modified`` index or sorts the matches as the counted total says (:mod:`.planner`).

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
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from xtremehub.catalog.model import FACETS, SearchQuery
from xtremehub.catalog.store import limits
from xtremehub.catalog.store.schema import (
    FTS_TABLE,
    SQLITE_LISTING_INDEX,
    dataset_search,
    dataset_search_tags,
    dataset_tags,
    datasets,
    facet_counts,
)
from xtremehub.errors import InvalidMetadata
from xtremehub.security import residual
from xtremehub.security.residual import Condition

__all__ = [
    "FACET_LIMIT",
    "MAX_DOC",
    "TOTAL_LIMIT",
    "Plan",
    "count_statement",
    "counts_total",
    "facet_statement",
    "fts_count_statement",
    "items_statement",
    "plan",
    "search_doc",
    "stored_counts_statement",
    "words",
]

#: Characters of a dataset's search document kept (facts beyond it are not searchable).
MAX_DOC = 100_000
MAX_QUERY_WORDS = 32
#: Totals are exact up to this many matches (then a lower bound), as ``track_total_hits``.
TOTAL_LIMIT = 10_000
#: Facet counts are over at most this many matches (then lower bounds).
FACET_LIMIT = 2_000
_WORD = re.compile(r"[^\W_]+")
_FACET_COLUMNS = ("format", "owner", "licence", "kind")
_FTS = sa.table(FTS_TABLE, sa.column("rowid"), sa.column("rank"))
_LISTING = SQLITE_LISTING_INDEX
_MODIFIED = "ix_datasets_modified"


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


@dataclass(frozen=True)
class Plan:
    """A checked query: what its statements need (``shape``), and their bound parameters.

    ``key`` identifies its counts (not its page): the cache key with the catalog generation.
    """

    text: bool
    facets: frozenset[str]
    visible: Condition | None
    params: Mapping[str, Any]
    key: tuple[Any, ...]

    @property
    def shape(self) -> tuple[bool, frozenset[str], Condition | None]:
        return self.text, self.facets, self.visible

    @property
    def everything(self) -> bool:
        """No text, no filter, nothing hidden: the counts are the stored ones."""
        return not self.text and not self.facets and self.visible is None


def plan(query: SearchQuery, dialect: str) -> Plan:
    """Check ``query`` and bind its parameters for ``dialect``."""
    found, filters = _check(query)
    params: dict[str, Any] = {"q_limit": query.limit, "q_offset": query.offset}
    if found:
        # Words hold letters and digits only: each is one quoted FTS5 string / one tsquery lexeme.
        params["q_text"] = " ".join(f'"{w}"' for w in found) if dialect == "sqlite" else " & ".join(found)
    for facet, values in filters.items():
        params[f"f_{facet}"] = list(values)
    visible = query.visible
    if visible == residual.Const(True):
        visible = None  # everything is visible: the same as no restriction (and the same counts)
    key = (tuple(found), tuple(sorted((f, tuple(sorted(v))) for f, v in filters.items())), visible)
    return Plan(bool(found), frozenset(filters), visible, params, key)


def _table(dialect: str) -> sa.Table:
    """What search reads: ``datasets`` on SQLite, the narrow ``dataset_search`` on PostgreSQL."""
    return dataset_search if dialect == "postgresql" else datasets


def visible_sql(cond: Condition, dialect: str = "sqlite") -> Any:
    """``cond`` (over a dataset's id, owner, kind and tags) as a SQL condition on the table
    search reads (``datasets`` on SQLite, ``dataset_search`` on PostgreSQL).

    A tag test reads the row's own tags, never a set of all datasets with a tag (which
    PostgreSQL would hash whole, ~85,000 entries for 40 tags, to show a page of 20): on SQLite
    the row's ``tags`` JSON array as the listing index ``ix_datasets_listing_tags`` holds it
    (``json_each``, migration 0007: no seek of ``dataset_tags`` per row and tag test); on
    PostgreSQL the row's ``tag_ids`` array (``&&`` against the names' ids, looked up once per
    statement; GIN-indexed). Both hold the same tags as ``dataset_tags``.

    Example:
        >>> ann_not_x = residual.AllOf((residual.AttrIs("owner", "ann"), residual.Not(residual.IdIn(frozenset("x")))))
        >>> print(visible_sql(ann_not_x))  # doctest: +NORMALIZE_WHITESPACE
        datasets.owner = :owner_1 AND (datasets.pk NOT IN (SELECT named.pk FROM datasets AS named
        WHERE named.id IN (__[POSTCOMPILE_id_1])))
    """
    table = _table(dialect)
    if isinstance(cond, residual.Const):
        return sa.true() if cond.value else sa.false()
    if isinstance(cond, residual.IdIn):
        return _id_in(cond.ids, dialect) if cond.ids else sa.false()
    if isinstance(cond, residual.AttrIs):
        return table.c[cond.attr] == cond.value
    if isinstance(cond, residual.TagIs):
        return _has_tag((cond.tag,), dialect)
    if isinstance(cond, residual.Not):
        return sa.not_(visible_sql(cond.item, dialect))
    if isinstance(cond, residual.AllOf):
        return sa.and_(*(visible_sql(c, dialect) for c in cond.items))
    # one test of the dataset's tags for all the tags an 'or' names (containsAny), not one each
    tags = tuple(c.tag for c in cond.items if isinstance(c, residual.TagIs))
    rest = [visible_sql(c, dialect) for c in cond.items if not isinstance(c, residual.TagIs)]
    return sa.or_(*rest, *([_has_tag(tags, dialect)] if tags else []))


def _id_in(ids: frozenset[str], dialect: str) -> Any:
    """The dataset's id is one of ``ids``. SQLite: its key is among the keys of ``ids`` (found
    once, by the unique index on ``id``), so the test reads only the key the listing index
    holds, never the wide row (``id`` is not in that index); PostgreSQL: the side table's ``id``."""
    if dialect == "postgresql":
        return dataset_search.c.id.in_(sorted(ids))
    named = datasets.alias("named")
    return datasets.c.pk.in_(sa.select(named.c.pk).where(named.c.id.in_(sorted(ids))))


def _has_tag(tags: tuple[str, ...], dialect: str) -> Any:
    """The dataset carries one of ``tags``, tested on the row (see :func:`visible_sql`)."""
    if dialect == "postgresql":
        return _has_tag_id(dataset_search_tags.c.tag.in_(sorted(tags)))
    each = sa.func.json_each(datasets.c.tags).table_valued("value")
    found = each.c.value == tags[0] if len(tags) == 1 else each.c.value.in_(sorted(tags))
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(found).correlate(datasets))


def _has_tag_id(named: Any) -> Any:
    """PostgreSQL: the row's ``tag_ids`` (GIN) overlap the ids of the tags ``named`` selects from
    the dictionary (an InitPlan: looked up once per statement; integers compared per row)."""
    ids = sa.select(dataset_search_tags.c.id).where(named).scalar_subquery()
    return dataset_search.c.tag_ids.overlap(sa.func.array(ids, type_=ARRAY(sa.Integer)))


def _conditions(
    text: bool, facets: frozenset[str], visible: Condition | None, dialect: str, joined: bool = False
) -> list[Any]:
    """WHERE conditions with bound parameters ``q_text`` and ``f_<facet>`` (expanding lists).
    ``joined`` (SQLite): the statement reads ``dataset_fts`` joined to ``datasets`` (:func:`_select`),
    so the text is matched on the join, not as a set of keys."""
    conds: list[Any] = []
    table = _table(dialect)
    if text:
        if dialect == "sqlite":
            match = sa.literal_column(FTS_TABLE).op("MATCH")(sa.bindparam("q_text", type_=sa.String))
            conds.append(match if joined else datasets.c.pk.in_(sa.select(_FTS.c.rowid).where(match)))
        else:
            conds.append(_matches())
    for facet in sorted(facets):
        values: Any = sa.bindparam(f"f_{facet}", expanding=True)
        if facet == "tag" and dialect == "postgresql":  # the row's own tags (GIN), no sub-plan
            conds.append(_has_tag_id(dataset_search_tags.c.tag == sa.any_(sa.bindparam("f_tag", type_=ARRAY(sa.Text)))))
        elif facet == "tag":
            conds.append(datasets.c.pk.in_(sa.select(dataset_tags.c.dataset_pk).where(dataset_tags.c.tag.in_(values))))
        else:
            conds.append(table.c[facet].in_(values))
    if visible is not None:
        conds.append(visible_sql(visible, dialect))
    return conds


def _matches() -> Any:
    """PostgreSQL: the side table's stored vector (GIN) matches ``q_text`` (never recomputed per row)."""
    query = sa.func.to_tsquery(sa.literal_column("'simple'"), sa.bindparam("q_text", type_=sa.String))
    return dataset_search.c.search_tsv.op("@@")(query)


@functools.lru_cache(maxsize=256)
def items_statement(
    text: bool, facets: frozenset[str], visible: Condition | None, dialect: str, walk_modified: bool = False
) -> Any:
    """SELECT of one page of matching datasets (newest modified first), built once per shape.

    SQLite: the page's keys are found first (an index-only ordering), then only their rows are
    read; ``walk_modified`` (a broad text match): walk the ``modified`` index newest first and
    keep the matches, instead of sorting every match. PostgreSQL: one ``ORDER BY ... LIMIT``
    over the narrow ``dataset_search`` rows (its planner chooses between walking ``modified``
    and sorting the matches), then the page's ``datasets`` rows by key.
    """
    order = (datasets.c.modified.desc(), datasets.c.pk.desc())
    where = _conditions(text, facets, visible, dialect)
    if dialect != "sqlite":
        found = dataset_search
        keys = sa.select(found.c.pk, found.c.modified).where(*where)
        keys = keys.order_by(found.c.modified.desc(), found.c.pk.desc())
        limit, offset = sa.bindparam("q_limit", type_=sa.Integer), sa.bindparam("q_offset", type_=sa.Integer)
        page = keys.limit(limit).offset(offset).subquery("page")
        joined = sa.select(datasets).join_from(datasets, page, datasets.c.pk == page.c.pk)
        return joined.order_by(page.c.modified.desc(), page.c.pk.desc())
    keys = sa.select(datasets.c.pk).where(*where).order_by(*order)
    if text:
        keys = keys.with_hint(datasets, f"INDEXED BY {_MODIFIED if walk_modified else _LISTING}", "sqlite")
    keys = keys.limit(sa.bindparam("q_limit", type_=sa.Integer)).offset(sa.bindparam("q_offset", type_=sa.Integer))
    return sa.select(datasets).where(datasets.c.pk.in_(keys.scalar_subquery())).order_by(*order)


@functools.lru_cache(maxsize=256)
def count_statement(text: bool, facets: frozenset[str], visible: Condition | None, dialect: str) -> Any:
    """SELECT count(*) of the matches, counting at most ``q_count_limit`` (the total limit + 1)."""
    some = _select((sa.literal(1),), text, facets, visible, dialect)
    some = some.limit(sa.bindparam("q_count_limit", type_=sa.Integer))
    return sa.select(sa.func.count()).select_from(some.subquery())


def _select(
    columns: tuple[Any, ...], text: bool, facets: frozenset[str], visible: Condition | None, dialect: str
) -> Any:
    """SELECT ``columns`` of the matches, for counting and sampling them. SQLite with text: the
    full-text matches drive a join to the narrow listing index (``dataset_fts`` in key order,
    one seek of ``ix_datasets_listing`` per match), instead of collecting the matches' keys into
    a temporary index first and seeking from it (measured ~1.3 of ~6.6 ms of CPU for 10,000
    matches). PostgreSQL: ``dataset_search``; SQLite without text: ``datasets``."""
    if dialect != "sqlite" or not text:
        return sa.select(*columns).select_from(_table(dialect)).where(*_conditions(text, facets, visible, dialect))
    matches = _FTS.join(datasets, datasets.c.pk == _FTS.c.rowid)
    found = sa.select(*columns).select_from(matches).where(*_conditions(text, facets, visible, dialect, joined=True))
    # read the matches' facet values from the narrow index (in key order), not the wide rows
    return found.with_hint(datasets, f"INDEXED BY {_LISTING}", "sqlite")


@functools.lru_cache(maxsize=4)
def fts_count_statement(dialect: str) -> Any:
    """SELECT count(*) of the full-text matches alone (exact: the index holds them)."""
    if dialect == "sqlite":
        match = sa.literal_column(FTS_TABLE).op("MATCH")(sa.bindparam("q_text", type_=sa.String))
        return sa.select(sa.func.count()).select_from(_FTS).where(match)
    return sa.select(sa.func.count()).select_from(dataset_search).where(_matches())


def counts_total(text: bool, facets: frozenset[str], visible: Condition | None, dialect: str) -> bool:
    """Whether :func:`facet_statement` also counts the matches (a row ``('*', None, total)``):
    a query with text but a text-only one on SQLite (whose total FTS5 counts from its index
    alone). Without text, a count (:func:`count_statement`) and a sample apart measured faster
    (the count stops after the total limit in any order; PostgreSQL scans the heap for it)."""
    return text and (dialect == "postgresql" or bool(facets) or visible is not None)


@functools.lru_cache(maxsize=256)
def facet_statement(text: bool, facets: frozenset[str], visible: Condition | None, dialect: str) -> Any:
    """One SELECT of (facet, value, count) rows over the first ``q_facet_limit`` matches in key
    order (the same sample on every call and on both backends), with ``('', None, how many
    matches were counted)``. PostgreSQL counts tags from the sampled rows' own ``tags`` array.

    With :func:`counts_total`, the matches are read once for both the total and the sample:
    ``hits`` are the matches, counted (``('*', None, n)``), and the sample is their first
    ``q_facet_limit`` in key order, instead of a count and a sample each testing the matches
    (each test of a listing condition probes the dataset's tags). PostgreSQL with text:
    ``hits`` are every row the GIN index names (a bitmap scan, one heap visit per match; the
    exact total), the sample sorted in memory. Otherwise ``hits`` are the first
    ``q_count_limit`` matches in key order (the total limit + 1: a capped count).
    """
    table = _table(dialect)
    columns = [table.c.pk, *(table.c[f] for f in _FACET_COLUMNS)]
    pg = dialect == "postgresql"
    found = _select((*columns, *([table.c.tags] if pg else [])), text, facets, visible, dialect)
    key = _FTS.c.rowid if text and not pg else table.c.pk  # SQLite: the order FTS5 gives its matches in
    extra: list[Any] = []
    if counts_total(text, facets, visible, dialect):
        if not (pg and text):
            found = found.order_by(key).limit(sa.bindparam("q_count_limit", type_=sa.Integer))
        hits = found.cte("hits").prefix_with("MATERIALIZED")
        found = sa.select(hits).order_by(hits.c.pk)
        extra.append(sa.select(sa.literal("*"), sa.null(), sa.func.count()).select_from(hits))
    else:
        found = found.order_by(key)
    found = found.limit(sa.bindparam("q_facet_limit", type_=sa.Integer))
    matched = found.cte("matched").prefix_with("MATERIALIZED")
    parts: list[Any] = [*extra, sa.select(sa.literal(""), sa.null(), sa.func.count()).select_from(matched)]
    for facet in _FACET_COLUMNS:
        col = matched.c[facet]
        parts.append(sa.select(sa.literal(facet), sa.cast(col, sa.String), sa.func.count()).group_by(col))
    if pg:
        each: Any = sa.func.unnest(matched.c.tags).table_valued("tag").render_derived(name="each_tag").lateral()
        rows = matched.join(each, sa.true())
        parts.append(sa.select(sa.literal("tag"), each.c.tag, sa.func.count()).select_from(rows).group_by(each.c.tag))
    else:
        tag = dataset_tags.c.tag
        parts.append(
            sa.select(sa.literal("tag"), tag, sa.func.count())
            .where(dataset_tags.c.dataset_pk.in_(sa.select(matched.c.pk)))
            .group_by(tag)
        )
    return sa.union_all(*parts)


def stored_counts_statement() -> Any:
    """SELECT (facet, value, count) of the counts the database keeps (``('', '')``: the total)."""
    return sa.select(facet_counts.c.facet, facet_counts.c.value, facet_counts.c.count).where(facet_counts.c.count > 0)
