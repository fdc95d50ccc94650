"""SQLite: the listing index with each dataset's tags, so a listing condition tests a row's tags
on the index entry it already reads instead of a seek of ``dataset_tags`` per row.

A secured search's listing condition names tags (the caller's policies: ``containsAny`` of 40
tags, an embargo tag's ``contains``). On SQLite each such test was an ``EXISTS`` seek of
``dataset_tags`` by the dataset's key, once per tag test per row tested: counting and sampling
the ~10,000 matches of one common word tested ~16,000 tags that way (~10 of ~24 ms of CPU for
the statement, bench/README.md, "Catalog"). ``ix_datasets_listing_tags`` is the listing index
(key, modified, kind, owner, format, licence) with the row's ``tags`` (its JSON array, the same
tags ``dataset_tags`` holds: the store writes both in one transaction), and the condition reads
them with ``json_each`` on the entry (:func:`xtremehub.catalog.store.search.visible_sql`).

In a catalog whose indexes have statistics (``ANALYZE`` was run) the new index gets its own
(one read of it), else SQLite's planner would prefer the old listing index, which has them,
and read each row's tags from the wide row. SQLite only (PostgreSQL tests
``dataset_search.tag_ids``, 0006). Outside the schema's metadata,
as the full-text tables are (``migrations/env.py`` leaves it out of ``alembic check``).
Downgrade drops it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_INDEX = "ix_datasets_listing_tags"  # = schema.SQLITE_LISTING_INDEX (a migration keeps its own copy)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute(f"CREATE INDEX {_INDEX} ON datasets (pk, modified, kind, owner, format, licence, tags)")
    analyzed = bind.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar()
    if analyzed:  # the other indexes have statistics: without its own the planner would pass it over
        op.execute(f"ANALYZE {_INDEX}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"DROP INDEX {_INDEX}")
