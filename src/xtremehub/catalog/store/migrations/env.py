"""Alembic environment of the catalog schema: runs on the connection :func:`migrate` hands over."""

from __future__ import annotations

from typing import Any

from alembic import context

from xtremehub.catalog.store.schema import (
    FTS_TABLE,
    PG_FTS_INDEX,
    PG_SEARCH_TABLE,
    PG_TAG_TABLE,
    PG_TSV_COLUMN,
    SQLITE_LISTING_INDEX,
    metadata,
)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Leave the full-text machinery (FTS5 shadow tables, PostgreSQL's search side table and its
    tag dictionary, SQLite's listing index with tags) out of comparisons."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(FTS_TABLE) and name not in ("alembic_version", PG_SEARCH_TABLE, PG_TAG_TABLE)
    if type_ == "index":
        return name not in (PG_FTS_INDEX, SQLITE_LISTING_INDEX)
    if type_ == "column":
        return not (name == PG_TSV_COLUMN and parent_names.get("table_name") == "datasets")
    return True


def run(connection: Any) -> None:
    """Configure Alembic on ``connection`` and run the migrations it was asked for."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_config: Any
try:
    _config = context.config
except AttributeError:  # imported outside an Alembic run (e.g. by doctest collection)
    _config = None
if _config is not None:
    _connection = _config.attributes.get("connection")
    if _connection is None:
        raise RuntimeError("the catalog migrations run through xtremehub.catalog.store.migrate(), not the alembic CLI")
    run(_connection)
