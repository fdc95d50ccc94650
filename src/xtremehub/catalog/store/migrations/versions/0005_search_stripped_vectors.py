"""PostgreSQL search vectors without word positions: ``strip(to_tsvector(...))``.

Search matches words (``&`` of lexemes) and orders by ``modified``: it never ranks and never
matches phrases, so the positions ``to_tsvector`` records for every word are never read, yet
they were ~30% of each ``dataset_search`` row (a vector ~710 bytes, stripped ~490). Counting the
matches of one common word visits a heap page per few matches (a GIN index has no index-only
scan), so a narrower row is a faster count and facet sample: at 100,000 datasets 11,106 -> 8,140
heap pages, the count of one word's ~17,000 matches 25-40% faster (bench/README.md, "Catalog").

The trigger function of 0004 now stores the stripped vector; existing rows are stripped in
place. Downgrade: the function of 0004 again, and every vector recomputed from its dataset's
search document (with positions).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _sync(vector: str) -> str:
    """The trigger function of 0004 with ``vector`` (over ``{doc}``) as the stored vector."""
    new = vector.format(doc="NEW.search_doc")
    return f"""
CREATE OR REPLACE FUNCTION dataset_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO dataset_search (pk, id, kind, owner, format, licence, modified, tags, search_tsv)
        VALUES (NEW.pk, NEW.id, NEW.kind, NEW.owner, NEW.format, NEW.licence, NEW.modified,
                ARRAY(SELECT json_array_elements_text(NEW.tags)), {new});
    ELSE
        UPDATE dataset_search SET
            id = NEW.id, kind = NEW.kind, owner = NEW.owner, format = NEW.format,
            licence = NEW.licence, modified = NEW.modified,
            tags = ARRAY(SELECT json_array_elements_text(NEW.tags)),
            search_tsv = CASE WHEN NEW.search_doc IS DISTINCT FROM OLD.search_doc
                              THEN {new} ELSE search_tsv END
        WHERE pk = NEW.pk;
    END IF;
    RETURN NULL;
END $$
"""  # noqa: S608 - constants only


_STRIPPED = "strip(to_tsvector('simple', {doc}))"
_WITH_POSITIONS = "to_tsvector('simple', {doc})"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_sync(_STRIPPED))
    op.execute("UPDATE dataset_search SET search_tsv = strip(search_tsv)")
    op.execute("ANALYZE dataset_search")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_sync(_WITH_POSITIONS))
    op.execute(
        "UPDATE dataset_search s SET search_tsv = to_tsvector('simple', d.search_doc) FROM datasets d WHERE d.pk = s.pk"
    )
    op.execute("ANALYZE dataset_search")
