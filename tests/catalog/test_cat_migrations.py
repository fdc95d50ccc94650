"""The schema comes from Alembic migrations shipped in the package: upgrade from empty, no drift, downgrade."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from xtremehub.catalog import SearchQuery, open_catalog
from xtremehub.catalog.store import SqlCatalog
from xtremehub.catalog.store.engine import alembic_config, migrate
from xtremehub.catalog.store.schema import metadata

TABLES = set(metadata.tables)
SEARCH_COUNTS = {"catalog_state", "facet_counts"}  # what revision 0002 adds


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) & (TABLES | {"alembic_version"})


def test_upgrade_from_empty_check_and_downgrade(catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path) -> None:
    with catalog_factory(tmp_path) as made:  # opened (and so migrated) once: take its URL, start empty
        url = made._engine.url
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert _tables(engine) <= {"alembic_version"}
        migrate(engine)  # what open_catalog does
        assert _tables(engine) == TABLES | {"alembic_version"}
        with engine.begin() as conn:
            cfg = alembic_config(conn)
            heads = ScriptDirectory.from_config(cfg).get_heads()
            assert len(heads) == 1  # one line of migrations
            assert MigrationContext.configure(conn).get_current_revision() == heads[0]
            command.check(cfg)  # raises when the models and the migrated database differ
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")  # 0004: PostgreSQL's search side table goes
        assert "dataset_search" not in sa.inspect(engine).get_table_names()
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")  # 0003: PostgreSQL's stored tsvector goes
        assert _tables(engine) == TABLES | {"alembic_version"}
        assert "search_tsv" not in {c["name"] for c in sa.inspect(engine).get_columns("datasets")}
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        assert _tables(engine) == TABLES - SEARCH_COUNTS | {"alembic_version"}
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert _tables(engine) <= {"alembic_version"}
    finally:
        engine.dispose()
    with open_catalog(url.render_as_string(hide_password=False), settings=made._settings) as again:
        again.register("s3://lab/x.fq", actor="alice", facts={"reads": 1}, source_version="e1")
        assert again.search(SearchQuery(text="reads")).total == 1  # full text works after re-upgrade


def test_the_generation_never_repeats_across_a_downgrade_and_re_upgrade(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path
) -> None:
    """Search counts are cached per generation: a re-created counter must not meet old numbers."""
    read = sa.text("SELECT generation FROM catalog_state WHERE id = 1")
    with catalog_factory(tmp_path) as cat:
        url, settings = cat._engine.url, cat._settings
        cat.register("s3://lab/g.fq", actor="alice", facts={"reads": 1}, source_version="e1")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            before = conn.execute(read).scalar_one()
            command.downgrade(alembic_config(conn), "0001")  # catalog_state goes
        migrate(engine)
        with engine.begin() as conn:
            reseeded = conn.execute(read).scalar_one()
    finally:
        engine.dispose()
    assert reseeded > before
    with open_catalog(url.render_as_string(hide_password=False), settings=settings) as again:
        again.register("s3://lab/h.fq", actor="alice", facts={"reads": 2}, source_version="e1")
        assert again.search(SearchQuery()).total == 2  # the kept counts were rebuilt from the tables
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(read).scalar_one() > reseeded
    finally:
        engine.dispose()
