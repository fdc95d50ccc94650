"""Search counts at scale: kept by the database, cached per generation, bounded with a flag, filtered
by a listing condition; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from xtremehub.catalog import DatasetPatch, SearchQuery, open_catalog
from xtremehub.catalog.store import SqlCatalog, planner
from xtremehub.catalog.store.engine import make_engine
from xtremehub.config import Settings
from xtremehub.security.residual import AllOf, AnyOf, AttrIs, Const, IdIn, Not, TagIs, evaluate

OWNERS = ("ann", "bob", "cy")


def _fill(cat: SqlCatalog, n: int = 30) -> None:
    for i in range(n):
        cat.register(
            f"s3://counts/d{i:03d}.fq",
            actor=OWNERS[i % 3],
            title=f"run {i} {'lung' if i % 2 else 'liver'}",
            tags=[f"t{i % 4}", *(["rare"] if i % 10 == 0 else [])],
            licence=("CC0-1.0", "CC-BY-4.0", None)[i % 3],
            format="fastq" if i % 5 else "vcf",
            facts={"reads": i},
            source_version="e1",
        )


def _exact(cat: SqlCatalog, query: SearchQuery, keep: Callable[..., bool] = lambda d: True) -> tuple[int, dict]:
    """Total and facet counts by reading every match (what the store must agree with)."""
    items = []
    offset = 0
    while True:
        page = cat.search(SearchQuery(text=query.text, filters=query.filters, limit=1000, offset=offset))
        items += page.items
        offset += 1000
        if len(page.items) < 1000:
            break
    kept = [d for d in items if keep(d)]
    counts: dict[str, Counter[str]] = {f: Counter() for f in ("format", "owner", "tag", "licence", "kind")}
    for d in kept:
        for facet, values in (("format", [d.format]), ("owner", [d.owner]), ("tag", d.tags),
                              ("licence", [d.licence]), ("kind", [d.kind])):  # fmt: skip
            counts[facet].update(v for v in values if v is not None)
    return len(kept), {f: dict(c) for f, c in counts.items()}


def test_empty_query_counts_are_kept_by_every_write(fresh_catalog: SqlCatalog) -> None:
    cat = fresh_catalog
    _fill(cat)
    ds = cat.find_by_url("s3://counts/d001.fq")
    assert ds is not None
    cat.update(ds.id, DatasetPatch(tags=("t9", "new"), licence="MIT"), actor="bob", if_match=ds.etag)
    again = cat.register(ds.url, actor=ds.owner, format="vcf", facts={"reads": 2}, source_version="e2")
    gone = cat.find_by_url("s3://counts/d002.fq")
    assert gone is not None
    cat.delete(gone.id, actor="cy", if_match=gone.etag)
    page = cat.search(SearchQuery())
    total, facets = _exact(cat, SearchQuery(text="run"))  # every dataset matches "run": counted row by row
    assert page.total == total == 29
    assert {f: dict(v) for f, v in page.facets.items()} == facets
    assert page.facets["tag"]["new"] == 1
    assert page.facets["licence"]["MIT"] == 1
    assert again.format == "vcf"
    assert page.facets["format"]["vcf"] == facets["format"]["vcf"]
    assert not page.total_is_lower_bound
    assert not page.facets_are_lower_bounds


def test_a_write_between_two_identical_searches_changes_the_counts(
    fresh_catalog: SqlCatalog, catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    cat = fresh_catalog
    _fill(cat, 12)
    for query in (SearchQuery(text="lung"), SearchQuery(filters={"owner": ("ann",)}), SearchQuery()):
        before = cat.search(query)
        assert cat.search(query) == before  # the second one from the cache
        cat.register(f"s3://counts/more-{len(query.text)}-{len(query.filters)}.fq", actor="ann",
                     title="lung more", tags=["fresh"], facts={}, source_version="x")  # fmt: skip
        after = cat.search(query)
        assert after.total == before.total + 1
        assert after.facets["tag"].get("fresh", 0) == before.facets["tag"].get("fresh", 0) + 1
    # a writer with its own engine and cache (as another process): the generation is in the database
    query = SearchQuery(text="lung")
    before = cat.search(query)
    writer = SqlCatalog(make_engine(cat._engine.url.render_as_string(hide_password=False)), settings=cat._settings)
    try:
        ds = writer.find_by_url("s3://counts/d001.fq")
        assert ds is not None
        writer.update(ds.id, DatasetPatch(tags=("elsewhere",)), actor="bob", if_match=ds.etag)
    finally:
        writer.close()
    after = cat.search(query)
    assert after.facets["tag"].get("elsewhere") == 1
    assert after.total == before.total


def test_total_and_facets_past_their_limits_say_so(fresh_catalog: SqlCatalog) -> None:
    cat = fresh_catalog
    _fill(cat)
    cat.total_limit, cat.facet_limit = 7, 5
    filtered = cat.search(SearchQuery(text="run", filters={"format": ("fastq",)}, limit=3))
    assert filtered.total == 7
    assert filtered.total_is_lower_bound
    assert filtered.facets_are_lower_bounds
    assert sum(filtered.facets["format"].values()) == 5
    assert len(filtered.items) == 3
    text_only = cat.search(SearchQuery(text="run"))  # the full-text index counts exactly
    assert text_only.total == 30
    assert not text_only.total_is_lower_bound
    assert text_only.facets_are_lower_bounds
    few = cat.search(SearchQuery(text="rare"))
    assert few.total == 3
    assert not few.total_is_lower_bound
    assert not few.facets_are_lower_bounds
    everything = cat.search(SearchQuery())  # kept by the database: exact at any size
    assert everything.total == 30
    assert not everything.total_is_lower_bound
    assert not everything.facets_are_lower_bounds
    # the page is right past the limits: newest first, every match reachable
    seen = [d.id for o in range(0, 40, 4) for d in cat.search(SearchQuery(text="run", limit=4, offset=o)).items]
    assert len(seen) == len(set(seen)) == 30


CONDITIONS = [
    Const(True),
    Const(False),
    AttrIs("owner", "ann"),
    Not(TagIs("t1")),
    AnyOf((AttrIs("owner", "bob"), TagIs("rare"))),
    AllOf((AnyOf((TagIs("t0"), TagIs("t2"))), Not(AttrIs("owner", "cy")), AttrIs("kind", "object"))),
    IdIn(frozenset()),
]


@pytest.mark.parametrize("cond", CONDITIONS, ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("text", ["", "lung"])
def test_listing_condition_filters_page_total_and_facets(fresh_catalog: SqlCatalog, cond: object, text: str) -> None:
    cat = fresh_catalog
    _fill(cat, 24)
    if isinstance(cond, IdIn):  # a few named datasets
        cond = IdIn(frozenset(d.id for d in cat.search(SearchQuery(limit=5)).items))

    def keep(d: object) -> bool:
        return evaluate(cond, d.id, {"owner": d.owner, "kind": d.kind, "tags": list(d.tags)})  # type: ignore[arg-type, attr-defined]

    total, facets = _exact(cat, SearchQuery(text=text), keep)
    page = cat.search(SearchQuery(text=text, visible=cond, limit=4))  # type: ignore[arg-type]
    assert page.total == total
    assert {f: dict(v) for f, v in page.facets.items()} == facets
    listed = [
        d for o in range(0, 30, 4) for d in cat.search(SearchQuery(text=text, visible=cond, limit=4, offset=o)).items
    ]  # type: ignore[arg-type]
    assert len(listed) == total == len({d.id for d in listed})
    assert all(keep(d) for d in listed)


@pytest.mark.parametrize(
    ("query", "owners", "tags"),
    [
        (SearchQuery(text="run"), {"ann": 2, "bob": 2, "cy": 1}, {"t0": 2, "t1": 1, "t2": 1, "t3": 1, "rare": 1}),
        (
            SearchQuery(filters={"format": ("fastq",)}),
            {"ann": 2, "bob": 2, "cy": 1},
            {"t1": 1, "t2": 2, "t3": 1, "t0": 1},
        ),
    ],
    ids=["text", "facet"],
)
def test_lower_bound_facets_count_the_first_matches_by_key_on_every_call(
    fresh_catalog: SqlCatalog, query: SearchQuery, owners: dict[str, int], tags: dict[str, int]
) -> None:
    """Past the facet limit the counts are over the first matches in key (registration) order:
    the same numbers on every call, on both backends, whatever was modified since."""
    cat = fresh_catalog
    _fill(cat)
    cat.facet_limit = 5
    first = cat.search(query)
    assert first.facets_are_lower_bounds
    assert first.facets["owner"] == owners
    assert first.facets["tag"] == tags
    late = cat.search(SearchQuery(text="run 29")).items[0]
    cat.update(late.id, DatasetPatch(description="touched"), actor="cy", if_match=late.etag)  # now the newest
    for _ in range(3):
        cat.counts.clear()
        again = cat.search(query)
        assert (again.facets["owner"], again.facets["tag"]) == (owners, tags)


def test_page_plan_follows_the_counted_total_and_settings_last_one_search(fresh_catalog: SqlCatalog) -> None:
    """A broad text match's page walks the ``modified`` index, a narrow one's sorts its matches
    (on PostgreSQL: planner settings chosen by the counted total, SET LOCAL); both give the
    same pages as reading every match, and the settings end with the search's transaction."""
    cat = fresh_catalog
    _fill(cat)
    issued: list[str] = []

    def _seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        issued.append(statement)

    sa.event.listen(cat._engine, "before_cursor_execute", _seen)
    try:
        for text, walks in (("run", True), ("rare", False)):  # 30 of 30 matches, 3 of 30
            assert planner.walks_modified(30 if walks else 3, 4, 30) is walks
            issued.clear()
            pages = [cat.search(SearchQuery(text=text, limit=4, offset=o)).items for o in range(0, 32, 4)]
            listed = [d.id for page in pages for d in page]
            chosen = sum(s in (planner.setting_sql("walk"), planner.setting_sql("sort")) for s in issued)
            every = cat.search(SearchQuery(text=text, limit=1000)).items  # one page: sorted, never walked
            assert listed == [d.id for d in every]
            assert len(every) == (30 if walks else 3)
            if cat._dialect == "postgresql":
                assert planner.setting_sql("walk" if walks else "sort") in issued
                assert planner.setting_sql("count") in issued  # the total and sample from the GIN matches
                assert chosen == len(pages)  # every page's plan chosen, for its word
    finally:
        sa.event.remove(cat._engine, "before_cursor_execute", _seen)
    if cat._dialect == "postgresql":  # SET LOCAL: a pooled connection is back to the defaults
        with cat._engine.connect() as conn:
            shown = [conn.exec_driver_sql(f"SHOW {name}").scalar_one() for name in
                     ("enable_seqscan", "enable_bitmapscan", "enable_indexscan", "plan_cache_mode")]  # fmt: skip
        assert shown == ["on", "on", "on", "auto"]
    # a text query with a listing condition past the total limit: capped, as on every backend
    cat.total_limit = 5
    secured = cat.search(SearchQuery(text="run", visible=Not(TagIs("t1"))))
    assert (secured.total, secured.total_is_lower_bound) == (5, True)
    exact = cat.search(SearchQuery(text="run"))  # text only: exact past the limit
    assert (exact.total, exact.total_is_lower_bound) == (30, False)


def test_a_total_limit_below_the_facet_limit_leaves_the_facet_sample_whole(fresh_catalog: SqlCatalog) -> None:
    """The matches a capped total reads also feed the facet sample: a total limit below the facet
    limit must not shrink the sample (facets stay exact, and the same on both backends)."""
    cat = fresh_catalog
    _fill(cat)
    cat.total_limit, cat.facet_limit = 5, 2000
    query = SearchQuery(text="run", filters={"format": ("fastq",)})
    page = cat.search(query)
    assert (page.total, page.total_is_lower_bound) == (5, True)
    assert not page.facets_are_lower_bounds
    total, facets = _exact(cat, query, lambda d: d.format == "fastq")
    assert total == 24
    assert page.facets["tag"] == facets["tag"]
    assert page.facets["owner"] == facets["owner"]


def test_sqlite_listing_condition_naming_ids_reads_only_the_listing_index(tmp_path: Path) -> None:
    """SQLite: a listing condition naming dataset ids (Cedar's ``resource == Dataset::"..."``) is
    tested on the key the listing index holds (the named keys are found once by the unique
    ``id`` index), so counting and sampling text matches never reads a wide ``datasets`` row."""
    from xtremehub.catalog.store.search import count_statement, facet_statement

    cat = open_catalog(f"sqlite:///{tmp_path / 'c.db'}", settings=Settings(home=tmp_path))
    _fill(cat, 12)
    named = cat.search(SearchQuery(limit=2)).items
    cond = AnyOf((TagIs("rare"), IdIn(frozenset(d.id for d in named)), AttrIs("owner", "ann")))
    plans: list[str] = []

    def explain(conn: object, cursor: object, statement: str, params: object, context: object, many: bool) -> tuple:
        return "EXPLAIN QUERY PLAN " + statement, params

    params = {"q_text": '"run"', "q_count_limit": 10_001, "q_facet_limit": 2_000}
    sa.event.listen(cat._engine, "before_cursor_execute", explain, retval=True)
    try:
        with cat._engine.connect() as conn:
            for statement in (
                facet_statement(True, frozenset(), cond, "sqlite"),
                count_statement(True, frozenset(), cond, "sqlite"),
            ):
                plans += [str(row[3]) for row in conn.execute(statement, params)]
    finally:
        sa.event.remove(cat._engine, "before_cursor_execute", explain)
    reads = [p for p in plans if p.startswith(("SEARCH datasets", "SCAN datasets"))]
    assert reads, plans
    assert all("COVERING INDEX ix_datasets_listing" in p for p in reads), plans
    assert any(p.startswith("SEARCH named USING COVERING INDEX") for p in plans), plans
    # and the same datasets as the condition decides
    page = cat.search(SearchQuery(text="run", visible=cond, limit=50))
    expected = {
        d.id
        for d in cat.search(SearchQuery(text="run", limit=50)).items
        if d.id in {n.id for n in named} or d.owner == "ann" or "rare" in d.tags
    }
    assert {d.id for d in page.items} == expected
    assert page.total == len(expected)
    cat.close()


def test_sqlite_listing_condition_tests_tags_on_the_listing_index(tmp_path: Path) -> None:
    """SQLite: a listing condition's tag tests read the row's tags from the listing index entry
    (``ix_datasets_listing_tags``, migration 0007: ``json_each`` of its ``tags``), never a seek of
    ``dataset_tags`` per row, and text matches drive the count (``dataset_fts`` scanned first, in
    key order, no temporary set of keys); the datasets are those the condition decides, tags
    with quotes and accents included."""
    from xtremehub.catalog.store.search import count_statement

    cat = open_catalog(f"sqlite:///{tmp_path / 'c.db'}", settings=Settings(home=tmp_path))
    _fill(cat, 12)
    odd = 'ü"x, y'
    ds = cat.search(SearchQuery(text="run", limit=3)).items
    for d in ds[:2]:
        cat.update(d.id, DatasetPatch(tags=(*d.tags, odd)), actor=d.owner, if_match=d.etag)
    cond = AllOf((AnyOf((TagIs("t1"), TagIs(odd), AttrIs("owner", "cy"))), Not(TagIs("rare"))))
    plans: list[str] = []

    def explain(conn: object, cursor: object, statement: str, params: object, context: object, many: bool) -> tuple:
        return "EXPLAIN QUERY PLAN " + statement, params

    sa.event.listen(cat._engine, "before_cursor_execute", explain, retval=True)
    try:
        with cat._engine.connect() as conn:
            statement = count_statement(True, frozenset(), cond, "sqlite")
            plans += [str(row[3]) for row in conn.execute(statement, {"q_text": '"run"', "q_count_limit": 10_001})]
    finally:
        sa.event.remove(cat._engine, "before_cursor_execute", explain)
    assert not [p for p in plans if "dataset_tags" in p], plans
    reads = [p for p in plans if p.startswith(("SCAN", "SEARCH"))]
    assert reads[0].startswith("SCAN dataset_fts"), plans  # the matches drive the join
    assert reads[1] == "SEARCH datasets USING COVERING INDEX ix_datasets_listing_tags (pk=?)", plans
    assert not [p for p in plans if p.startswith("LIST SUBQUERY") and "dataset_fts" in p], plans

    def keep(d: object) -> bool:
        return evaluate(cond, d.id, {"owner": d.owner, "kind": d.kind, "tags": list(d.tags)})  # type: ignore[attr-defined]

    everything = cat.search(SearchQuery(text="run", limit=50)).items
    page = cat.search(SearchQuery(text="run", visible=cond, limit=50))
    assert [d.id for d in page.items] == [d.id for d in everything if keep(d)]
    with_odd = sum(odd in d.tags for d in page.items)
    assert with_odd == 1  # the other one carries "rare": hidden
    assert page.total == len(page.items)
    assert page.facets["tag"].get(odd) == with_odd
    cat.close()
