"""The full-text index follows every write: register, new version, update, delete, and a bulk
INSERT that bypasses the store (PostgreSQL: the side table ``dataset_search`` of migration 0004,
kept by a trigger, with the tags' ids of 0006 and the vectors out of line since 0008; SQLite: the
FTS5 table), and migrations 0003 to 0008 fill and remove what they add on a populated catalog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from xtremehub.catalog import DatasetPatch, SearchQuery, open_catalog
from xtremehub.catalog.store import SqlCatalog
from xtremehub.catalog.store.engine import alembic_config, migrate
from xtremehub.catalog.store.schema import dataset_tags, datasets
from xtremehub.security import residual


def _hits(cat: SqlCatalog, text: str) -> list[str]:
    return [d.id for d in cat.search(SearchQuery(text=text)).items]


_STALE = (
    "SELECT count(*) FROM datasets d FULL JOIN dataset_search s ON s.pk = d.pk WHERE d.pk IS NULL OR s.pk IS NULL"
    " OR (s.id, s.kind, s.owner, s.modified) IS DISTINCT FROM (d.id, d.kind, d.owner, d.modified)"
    " OR (s.format, s.licence) IS DISTINCT FROM (d.format, d.licence)"
    " OR s.tags IS DISTINCT FROM ARRAY(SELECT json_array_elements_text(d.tags))"
    " OR s.search_tsv IS DISTINCT FROM strip(to_tsvector('simple', d.search_doc))"
    " OR cardinality(s.tag_ids) <> cardinality(s.tags) OR s.tag_ids IS DISTINCT FROM ARRAY("
    "SELECT n.id FROM unnest(s.tags) WITH ORDINALITY AS e(tag, i) JOIN dataset_search_tags n ON n.tag = e.tag"
    " ORDER BY e.i)"
)


def _vectors_in_step(cat: SqlCatalog) -> None:
    """PostgreSQL: every dataset has one side row (and no other row has one), with the dataset's
    keys, facet values, tags, the ids of its tags (every one named in the dictionary, in the
    tags' order) and the vector of its search document."""
    if cat._dialect != "postgresql":
        return
    with cat._engine.connect() as conn:
        assert conn.exec_driver_sql(_STALE).scalar_one() == 0


def test_the_index_follows_register_update_and_delete(fresh_catalog: SqlCatalog) -> None:
    cat = fresh_catalog
    ds = cat.register("s3://ft/a.fq", actor="ann", title="zebrafish brain", facts={"reads": 1}, source_version="e1")
    other = cat.register("s3://ft/b.fq", actor="ann", title="mouse liver", facts={"reads": 2}, source_version="e1")
    _vectors_in_step(cat)
    assert _hits(cat, "zebrafish") == [ds.id]
    ds = cat.register(ds.url, actor="ann", facts={"reads": 5, "instrument": "orbitrap"}, source_version="e2")
    assert _hits(cat, "orbitrap") == [ds.id]  # the new version's facts are searchable
    ds = cat.update(ds.id, DatasetPatch(title="medaka gut", tags=("fish",)), actor="ann", if_match=ds.etag)
    _vectors_in_step(cat)
    assert _hits(cat, "zebrafish") == []
    assert _hits(cat, "medaka fish") == [ds.id]
    cat.delete(ds.id, actor="ann", if_match=ds.etag)
    _vectors_in_step(cat)
    assert _hits(cat, "medaka") == []
    assert _hits(cat, "mouse liver") == [other.id]


def test_a_bulk_insert_outside_the_store_is_searchable(fresh_catalog: SqlCatalog) -> None:
    cat = fresh_catalog
    seed = cat.register("s3://ft/seed.fq", actor="ann", facts={"reads": 1}, source_version="e1")
    with cat._engine.connect() as conn:
        row = dict(conn.execute(sa.select(datasets).where(datasets.c.id == seed.id)).one()._mapping)
    rows = []
    for i in range(3):
        rows.append(
            {**row, "pk": row["pk"] + 1 + i, "id": f"bulk{i}", "url": f"s3://ft/bulk{i}", "search_doc": f"bulk word{i}"}
        )
    with cat._engine.begin() as conn:
        conn.execute(sa.insert(datasets), rows)
    _vectors_in_step(cat)
    assert _hits(cat, "word1") == ["bulk1"]
    assert cat.search(SearchQuery(text="bulk")).total == 3


def test_migration_0003_up_and_down_on_a_populated_catalog(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    with catalog_factory(tmp_path) as cat:
        url, settings = cat._engine.url, cat._settings
        ds = cat.register("s3://ft/c.fq", actor="ann", title="axolotl limb", facts={"reads": 1}, source_version="e1")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("datasets")}
        assert "search_tsv" not in columns
        if engine.dialect.name == "postgresql":  # 0002's expression index is back and answers
            assert "ix_datasets_search_doc_fts" in {i["name"] for i in sa.inspect(engine).get_indexes("datasets")}
            with engine.connect() as conn:
                found = conn.exec_driver_sql(
                    "SELECT id FROM datasets WHERE to_tsvector('simple', search_doc) @@ to_tsquery('simple', 'axolotl')"
                ).scalars()
                assert list(found) == [ds.id]
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0003")
        if engine.dialect.name == "postgresql":
            indexes = {i["name"] for i in sa.inspect(engine).get_indexes("datasets")}
            assert "search_tsv" in {c["name"] for c in sa.inspect(engine).get_columns("datasets")}
            assert "ix_datasets_search_tsv" in indexes
            assert "ix_datasets_search_doc_fts" not in indexes
        migrate(engine)  # 0004: the vector moves to the side table, filled from the rows there
        if engine.dialect.name == "postgresql":
            assert "search_tsv" not in {c["name"] for c in sa.inspect(engine).get_columns("datasets")}
            assert "dataset_search" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        _vectors_in_step(again)  # filled for the rows that existed before the column
        assert _hits(again, "axolotl limb") == [ds.id]


def test_migration_0004_up_and_down_on_a_populated_catalog(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    with catalog_factory(tmp_path) as cat:
        url, settings = cat._engine.url, cat._settings
        ds = cat.register(
            "s3://ft/d.fq", actor="ann", title="tardigrade gut", tags=("t1", "t2"), facts={"n": 1}, source_version="e1"
        )
        cat.register("s3://ft/e.fq", actor="bob", title="tardigrade", facts={"reads": 3}, source_version="e1")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        assert "dataset_search" not in sa.inspect(engine).get_table_names()
        if engine.dialect.name == "postgresql":  # 0003's stored column is back, filled, and answers
            with engine.connect() as conn:
                found = conn.exec_driver_sql(
                    "SELECT id FROM datasets WHERE search_tsv @@ to_tsquery('simple', 'tardigrade & gut')"
                ).scalars()
                assert list(found) == [ds.id]
        with engine.begin() as conn:  # a write while the side table is gone: the upgrade copies it
            conn.execute(sa.update(datasets).where(datasets.c.id == ds.id).values(search_doc="tardigrade gut moss"))
        migrate(engine)
    finally:
        engine.dispose()
    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        _vectors_in_step(again)
        assert _hits(again, "tardigrade moss") == [ds.id]
        page = again.search(SearchQuery(text="tardigrade", filters={"tag": ("t2",)}))
        assert [d.id for d in page.items] == [ds.id]
        assert page.facets["tag"] == {"t1": 1, "t2": 1}


def test_migration_0005_strips_positions_and_downgrade_restores_them(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    """PostgreSQL's vectors carry no word positions after 0005 (search never reads them), and
    every write keeps them so; downgrading to 0004 recomputes them with positions."""
    with catalog_factory(tmp_path) as cat:
        url, settings = cat._engine.url, cat._settings
        ds = cat.register("s3://ft/f.fq", actor="ann", title="rotifer rotifer gut", facts={}, source_version="e1")
    engine = sa.create_engine(url)
    positions = "SELECT count(*) FROM dataset_search WHERE search_tsv IS DISTINCT FROM strip(search_tsv)"
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                assert conn.exec_driver_sql(positions).scalar_one() == 0
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004")
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                assert conn.exec_driver_sql(positions).scalar_one() == 1  # recomputed with positions
                same = (
                    "SELECT s.search_tsv = to_tsvector('simple', d.search_doc)"
                    " FROM dataset_search s JOIN datasets d USING (pk)"
                )
                assert conn.exec_driver_sql(same).scalar_one()
        with engine.begin() as conn:  # a write under 0004's trigger (positions), then upgrade again
            conn.execute(sa.update(datasets).where(datasets.c.id == ds.id).values(search_doc="rotifer gut moss"))
        migrate(engine)
    finally:
        engine.dispose()
    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        _vectors_in_step(again)  # stripped, in step with the rows
        assert _hits(again, "rotifer moss") == [ds.id]
        updated = again.update(ds.id, DatasetPatch(title="bdelloid"), actor="ann", if_match=again.get(ds.id).etag)
        _vectors_in_step(again)  # the trigger strips what it writes
        assert _hits(again, "bdelloid") == [updated.id]


def _tag_names(cat: SqlCatalog) -> list[str]:
    with cat._engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT tag FROM dataset_search_tags ORDER BY id").scalars())


def _tagged(cat: SqlCatalog, *tags: str) -> list[str]:
    return sorted(d.id for d in cat.search(SearchQuery(filters={"tag": tags}, limit=100)).items)


def test_tag_ids_follow_new_changed_and_removed_tags(fresh_catalog: SqlCatalog) -> None:
    """PostgreSQL's ``tag_ids`` (0006) hold the ids of each row's tags through every write, new
    tags join the dictionary once, and the tag filter and a listing condition test the ids."""
    cat = fresh_catalog
    a = cat.register("s3://ft/ta.fq", actor="ann", tags=("reef", "coral"), facts={"n": 1}, source_version="e1")
    b = cat.register("s3://ft/tb.fq", actor="bob", tags=("coral",), facts={"n": 2}, source_version="e1")
    c = cat.register("s3://ft/tc.fq", actor="bob", facts={"n": 3}, source_version="e1")
    _vectors_in_step(cat)
    assert _tagged(cat, "coral") == sorted([a.id, b.id])
    a = cat.update(a.id, DatasetPatch(tags=("kelp", "reef", "kelp2")), actor="ann", if_match=a.etag)
    c = cat.update(c.id, DatasetPatch(title="untagged, renamed"), actor="bob", if_match=c.etag)  # tags untouched
    b = cat.register(b.url, actor="bob", facts={"n": 5}, source_version="e2")  # a new version, same tags
    _vectors_in_step(cat)
    assert _tagged(cat, "coral") == [b.id]
    assert _tagged(cat, "kelp", "coral") == sorted([a.id, b.id])
    assert _tagged(cat, "unknown") == []
    cat.update(b.id, DatasetPatch(tags=()), actor="bob", if_match=b.etag)
    cat.delete(a.id, actor="ann", if_match=a.etag)
    _vectors_in_step(cat)
    assert _tagged(cat, "coral") == []
    assert _tagged(cat, "kelp") == []
    visible = residual.AnyOf((residual.TagIs("reef"), residual.IdIn(frozenset({c.id}))))
    assert [d.id for d in cat.search(SearchQuery(visible=visible)).items] == [c.id]
    if cat._dialect == "postgresql":  # each name once (the first dataset's two, then the update's new two)
        assert _tag_names(cat) == ["coral", "reef", "kelp", "kelp2"]


def test_migration_0006_up_and_down_on_a_populated_catalog(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    with catalog_factory(tmp_path) as cat:
        url, settings = cat._engine.url, cat._settings
        ds = cat.register(
            "s3://ft/g.fq", actor="ann", title="nudibranch", tags=("sea", "slug"), facts={}, source_version="e1"
        )
        other = cat.register(
            "s3://ft/h.fq", actor="bob", title="nudibranch", tags=("sea",), facts={}, source_version="e1"
        )
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0005")
        assert "dataset_search_tags" not in sa.inspect(engine).get_table_names()
        if engine.dialect.name == "postgresql":
            assert "tag_ids" not in {c["name"] for c in sa.inspect(engine).get_columns("dataset_search")}
        with engine.begin() as conn:  # writes under 0005's trigger: a changed tag and a new dataset
            conn.execute(sa.update(datasets).where(datasets.c.id == other.id).values(tags=["sea", "anemone"]))
            pk = conn.execute(sa.select(datasets.c.pk).where(datasets.c.id == other.id)).scalar_one()
            conn.execute(sa.insert(dataset_tags).values(dataset_pk=pk, tag="anemone"))  # as the store writes both
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                tags = conn.exec_driver_sql(f"SELECT tags FROM dataset_search WHERE id = '{other.id}'").scalar_one()
                assert tags == ["sea", "anemone"]  # 0005's trigger keeps the side table without ids
        migrate(engine)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                names = conn.exec_driver_sql("SELECT tag FROM dataset_search_tags ORDER BY id").scalars()
                assert list(names) == ["anemone", "sea", "slug"]  # filled by name
    finally:
        engine.dispose()
    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        _vectors_in_step(again)
        assert _tagged(again, "anemone") == [other.id]
        assert _tagged(again, "slug", "anemone") == sorted([ds.id, other.id])
        page = again.search(SearchQuery(text="nudibranch", filters={"tag": ("sea",)}))
        assert page.total == 2
        assert page.facets["tag"] == {"sea": 2, "slug": 1, "anemone": 1}
        again.register("s3://ft/i.fq", actor="cy", tags=("whelk",), facts={}, source_version="e1")
        _vectors_in_step(again)  # the trigger of 0006 again: a new tag joins the dictionary
        assert len(_tagged(again, "whelk")) == 1


def test_migration_0007_up_and_down_keeps_secured_search_results(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    """0007 (SQLite: the listing index with each row's tags) on a populated catalog: down drops
    it, up makes it again (with statistics when the catalog has them) and every secured search
    (text and not, tags with quotes and accents) finds what it found before."""
    odd = 'é"q, x'  # a tag whose JSON text is escaped: json_each must decode it to compare
    with catalog_factory(tmp_path) as cat:
        url, settings = cat._engine.url, cat._settings
        for i in range(12):
            cat.register(
                f"s3://ft/m{i}.fq",
                actor=("ann", "bob")[i % 2],
                title=f"mussel {i}",
                tags=(f"t{i % 3}", *([odd] if i % 4 == 0 else [])),
                facts={},
                source_version="e1",
            )
    conds = (
        residual.AnyOf((residual.TagIs(odd), residual.AttrIs("owner", "bob"))),
        residual.AllOf(
            (residual.AnyOf((residual.TagIs("t0"), residual.TagIs("t1"))), residual.Not(residual.TagIs(odd)))
        ),
    )
    queries = [SearchQuery(text=t, visible=c, limit=50) for c in conds for t in ("", "mussel")]

    def results(cat: SqlCatalog) -> list[tuple[list[str], int, dict[str, dict[str, int]]]]:
        cat.counts.clear()
        pages = [cat.search(q) for q in queries]
        return [([d.id for d in p.items], p.total, {f: dict(v) for f, v in p.facets.items()}) for p in pages]

    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        before = results(again)
    assert [r[1] for r in before] == [9, 9, 6, 6]  # odd tag or bob: 3 + 6; t0 or t1 (8) less 2 odd
    sqlite = url.get_backend_name() == "sqlite"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        assert "ix_datasets_listing_tags" not in {i["name"] for i in sa.inspect(engine).get_indexes("datasets")}
        if sqlite:
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        migrate(engine)
        if sqlite:
            assert "ix_datasets_listing_tags" in {i["name"] for i in sa.inspect(engine).get_indexes("datasets")}
            with engine.connect() as conn:
                stat = "SELECT count(*) FROM sqlite_stat1 WHERE idx = 'ix_datasets_listing_tags'"
                assert conn.exec_driver_sql(stat).scalar_one() == 1
    finally:
        engine.dispose()
    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        assert results(again) == before


def _out_of_line(engine: sa.Engine) -> tuple[int, int]:
    """PostgreSQL: (side-table rows, distinct values in its TOAST relation): the vectors out of
    line when both are equal (each row's vector a value of its own there, nothing else is)."""
    with engine.connect() as conn:
        toast = conn.exec_driver_sql(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'dataset_search'::regclass"
        ).scalar_one()
        rows = conn.exec_driver_sql("SELECT count(*) FROM dataset_search").scalar_one()
        values = conn.exec_driver_sql(f"SELECT count(DISTINCT chunk_id) FROM {toast}").scalar_one()
    return rows, values


def test_migration_0008_moves_the_vectors_out_of_line_and_back(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    """PostgreSQL's vectors are stored out of line after 0008 (the rows search counts and samples
    are narrow), for the rows it rewrites and for every later insert and update of a search
    document; an update that keeps the document keeps the vector; search finds the same; down
    to 0007 the vectors are back in line and the pad column gone; up again out of line."""
    with catalog_factory(tmp_path) as cat:
        url, settings = cat._engine.url, cat._settings
        ds = cat.register("s3://ft/j.fq", actor="ann", title="tardigrade moss", facts={}, source_version="e1")
        cat.register("s3://ft/k.fq", actor="bob", title="tardigrade lichen", facts={}, source_version="e1")
    pg = url.get_backend_name() == "postgresql"
    engine = sa.create_engine(url)
    try:
        if pg:
            assert _out_of_line(engine) == (2, 2)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
        if pg:
            assert _out_of_line(engine) == (2, 0)
            assert "toast_pad" not in {c["name"] for c in sa.inspect(engine).get_columns("dataset_search")}
        with engine.begin() as conn:  # a write under 0007's trigger (the vector in line)
            conn.execute(sa.update(datasets).where(datasets.c.id == ds.id).values(search_doc="tardigrade moss rain"))
        migrate(engine)
        if pg:
            assert _out_of_line(engine) == (2, 2)
    finally:
        engine.dispose()
    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        _vectors_in_step(again)
        assert _hits(again, "tardigrade rain") == [ds.id]
        again.register("s3://ft/l.fq", actor="cy", title="tardigrade sand", facts={}, source_version="e1")
        ds = again.update(ds.id, DatasetPatch(title="water bear"), actor="ann", if_match=again.get(ds.id).etag)
        again.update(ds.id, DatasetPatch(licence="CC-BY-4.0"), actor="ann", if_match=ds.etag)  # same document
        _vectors_in_step(again)
        if pg:
            assert _out_of_line(again._engine) == (3, 3)  # the old vector of the updated row is dead
        assert _hits(again, "water bear") == [ds.id]
        assert again.search(SearchQuery(text="tardigrade")).total == 2
