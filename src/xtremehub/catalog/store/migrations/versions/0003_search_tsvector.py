"""PostgreSQL full text from a stored ``tsvector``: ``datasets.search_tsv`` and its GIN index.

Until 0002, PostgreSQL matched text with a GIN index over the expression
``to_tsvector('simple', search_doc)``. A plan that walks the ``modified`` index (newest first,
stopping after a page) then recomputed ``to_tsvector`` of every row it passed. Now the vector is
a stored generated column (``GENERATED ALWAYS AS ... STORED``): PostgreSQL computes it on every
insert and update of ``search_doc`` (so every writer, also a bulk load, keeps it right), and the
GIN index is over the column. SQLite keeps its FTS5 table (nothing changes there).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OLD_INDEX = "CREATE INDEX ix_datasets_search_doc_fts ON datasets USING gin (to_tsvector('simple', search_doc))"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE datasets ADD COLUMN search_tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', search_doc)) STORED"
    )
    op.execute("CREATE INDEX ix_datasets_search_tsv ON datasets USING gin (search_tsv)")
    op.execute("DROP INDEX ix_datasets_search_doc_fts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_OLD_INDEX)
    op.execute("DROP INDEX ix_datasets_search_tsv")
    op.execute("ALTER TABLE datasets DROP COLUMN search_tsv")
