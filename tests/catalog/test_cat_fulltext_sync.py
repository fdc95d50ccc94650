"""The full-text index follows every write: register, new version, update, delete, and a bulk
INSERT that bypasses the store (PostgreSQL: the side table ``dataset_search`` of migration 0004,
kept by a trigger; SQLite: the FTS5 table), and migrations 0003 and 0004 fill and remove what
they add on a populated catalog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from xtremehub.catalog import DatasetPatch, SearchQuery, open_catalog
from xtremehub.catalog.store import SqlCatalog
from xtremehub.catalog.store.engine import alembic_config, migrate
from xtremehub.catalog.store.schema import datasets


def _hits(cat: SqlCatalog, text: str) -> list[str]:
    return [d.id for d in cat.search(SearchQuery(text=text)).items]


_STALE = (
    "SELECT count(*) FROM datasets d FULL JOIN dataset_search s ON s.pk = d.pk WHERE d.pk IS NULL OR s.pk IS NULL"
    " OR (s.id, s.kind, s.owner, s.modified) IS DISTINCT FROM (d.id, d.kind, d.owner, d.modified)"
    " OR (s.format, s.licence) IS DISTINCT FROM (d.format, d.licence)"
    " OR s.tags IS DISTINCT FROM ARRAY(SELECT json_array_elements_text(d.tags))"
    " OR s.search_tsv IS DISTINCT FROM strip(to_tsvector('simple', d.search_doc))"
)


def _vectors_in_step(cat: SqlCatalog) -> None:
    """PostgreSQL: every dataset has one side row (and no other row has one), with the dataset's
    keys, facet values, tags and the vector of its search document."""
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
