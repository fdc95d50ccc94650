"""PostgreSQL search on a narrow side table: ``dataset_search`` (keys, facets, tags, the vector).

Until 0003, PostgreSQL matched and counted on ``datasets``: ~5 rows per 8 kB page (the stored
``search_tsv`` alone is ~700 bytes a row, next to the description, facts and search document).
Counting the ~17,000 datasets one common word matches visited a heap page per match (a GIN index
answers no index-only scan), and so did the facet counts over their first 2,000.

Now ``dataset_search`` holds, per dataset, only what search filters, orders and counts by: the
key, id, kind, owner, format, licence, modified, the tags as ``text[]`` (GIN: the tag filter and
the listing condition of a secured search test the row's own array) and the vector: ~9 rows
share a heap page instead of ~5, and none carries the description, facts or search document.

A row trigger on ``datasets`` keeps it (insert, any update; a delete cascades), so every writer,
also a bulk load with plain INSERTs, keeps it right, as the stored column did. The stored
``datasets.search_tsv`` and its GIN index go (one vector and one GIN index to maintain per write).
SQLite keeps its FTS5 table (nothing changes there).

Tried and dropped: the vector out of line in TOAST (``toast_tuple_target = 128`` plus a
compressible 2 kB filler, since PostgreSQL toasts only rows over ~2 kB): ~42 rows a page and a
2.5x faster count, but a page query that walks the ``modified`` index tests ``@@`` on each row
and so read the vector from TOAST per row (one word p95 ~1 s at 100,000 datasets).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = "pk, id, kind, owner, format, licence, modified, tags, search_tsv"
_FROM_ROW = (
    "{r}.pk, {r}.id, {r}.kind, {r}.owner, {r}.format, {r}.licence, {r}.modified, "
    "ARRAY(SELECT json_array_elements_text({r}.tags)), to_tsvector('simple', {r}.search_doc)"
)
_SYNC = f"""
CREATE FUNCTION dataset_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO dataset_search ({_COLUMNS}) VALUES ({_FROM_ROW.format(r="NEW")});
    ELSE
        UPDATE dataset_search SET
            id = NEW.id, kind = NEW.kind, owner = NEW.owner, format = NEW.format,
            licence = NEW.licence, modified = NEW.modified,
            tags = ARRAY(SELECT json_array_elements_text(NEW.tags)),
            search_tsv = CASE WHEN NEW.search_doc IS DISTINCT FROM OLD.search_doc
                              THEN to_tsvector('simple', NEW.search_doc) ELSE search_tsv END
        WHERE pk = NEW.pk;
    END IF;
    RETURN NULL;
END $$
"""  # noqa: S608 - constants only


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE dataset_search ("
        " pk integer PRIMARY KEY REFERENCES datasets (pk) ON DELETE CASCADE,"
        " id varchar(64) NOT NULL, kind varchar(16) NOT NULL, owner varchar(256) NOT NULL,"
        " format varchar(64), licence varchar(256), modified timestamptz NOT NULL,"
        " tags text[] NOT NULL, search_tsv tsvector NOT NULL"
        ")"
    )
    op.execute(f"INSERT INTO dataset_search ({_COLUMNS}) SELECT {_FROM_ROW.format(r='d')} FROM datasets d")  # noqa: S608
    op.execute("CREATE INDEX ix_dataset_search_tsv ON dataset_search USING gin (search_tsv)")
    op.execute("CREATE INDEX ix_dataset_search_tags ON dataset_search USING gin (tags)")
    op.execute("CREATE INDEX ix_dataset_search_modified ON dataset_search (modified, pk)")
    for facet in ("owner", "format", "licence", "kind"):
        op.execute(f"CREATE INDEX ix_dataset_search_{facet} ON dataset_search ({facet})")
    op.execute(_SYNC)
    op.execute(
        "CREATE TRIGGER datasets_search_sync AFTER INSERT OR UPDATE ON datasets "
        "FOR EACH ROW EXECUTE FUNCTION dataset_search_sync()"
    )
    op.execute("ANALYZE dataset_search")
    op.execute("ALTER TABLE datasets DROP COLUMN search_tsv")  # its GIN index goes with it


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE datasets ADD COLUMN search_tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', search_doc)) STORED"
    )
    op.execute("CREATE INDEX ix_datasets_search_tsv ON datasets USING gin (search_tsv)")
    op.execute("DROP TRIGGER datasets_search_sync ON datasets")
    op.execute("DROP FUNCTION dataset_search_sync()")
    op.execute("DROP TABLE dataset_search")
