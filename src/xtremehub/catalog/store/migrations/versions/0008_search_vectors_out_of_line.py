"""PostgreSQL: the search vectors out of line (TOAST), so the rows search reads are narrow.

Counting and sampling the matches of a text query visits the ``dataset_search`` row of every
match the GIN index names (a bitmap heap scan; GIN answers no index-only scan). The rows were
~660 bytes, ~490 of them the stripped vector that a plain ``&`` query never reads again (the
GIN match is exact, no recheck): one 8 kB heap page per ~1.7 matches of a common word (5,932
pages for the ~9,900 matches of one word at 100,000 datasets, ~2/3 of its facet statement).

PostgreSQL moves values out of a row (to the table's TOAST relation) only when the row, as
written, is over ``TOAST_TUPLE_THRESHOLD`` (~2 kB, a compile-time constant):
``toast_tuple_target`` and ``STORAGE EXTERNAL`` alone change nothing for ~660-byte rows (the
table keeps its 8,449 pages). So each row is written with ``toast_pad``: 2,100 spaces (column
default), stored ``MAIN``: it makes every written row long enough to be toasted, and the toaster
then (``toast_tuple_target = 512``) moves the vector (``STORAGE EXTERNAL``: uncompressed, out of
line) and compresses the pad in place (~35 bytes). The other variable-length columns are
``MAIN`` so that the toaster leaves them in the row (a row still over 512 bytes after that
compresses them in place; only a row over ~8 kB moves them out). The rows become ~230 bytes
(2,925 pages instead of 8,449 at 100,000 datasets).

What reads the vector now reads it from TOAST: a page that walks the ``modified`` index tests
``@@`` on each row it passes (the planner walks only when the counted total makes that a few
hundred rows, :mod:`xtremehub.catalog.store.planner`); a lossy bitmap (far more matches than
``work_mem`` holds) rechecks its pages' rows.

The trigger function writes the pad again whenever a row's vector changes (an ``UPDATE`` keeps
a row's pad as stored, compressed, too short to make the toaster run on its own); an update that
keeps the search document keeps the vector's TOAST pointer.

Upgrade rewrites the side table (a copy, ``TRUNCATE``, the rows inserted again: 7-8 s at 100,000
datasets, the indexes filled as it goes, the GIN indexes' pending lists then merged). Downgrade:
0006's trigger function (0007 changes SQLite only) and column settings, the pad dropped and the
rows written again with their vectors in line.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = "pk, id, kind, owner, format, licence, modified, tags, tag_ids, search_tsv"
_GIN_INDEXES = ("ix_dataset_search_tsv", "ix_dataset_search_tags", "ix_dataset_search_tag_ids")
_IN_LINE = ("id", "kind", "owner", "format", "licence", "tags", "tag_ids")
#: Long enough that a row with an empty vector is over TOAST_TUPLE_THRESHOLD (2,032 bytes).
PAD = "repeat(' ', 2100)"

_IDS = (
    "ARRAY(SELECT n.id FROM unnest({names}) WITH ORDINALITY AS e(tag, i)"
    " JOIN dataset_search_tags n ON n.tag = e.tag ORDER BY e.i)"
)


def _sync(pad: bool) -> str:
    """0006's trigger function; ``pad``: a changed vector is written with a fresh pad."""
    repad = f"toast_pad = CASE WHEN vector_changed THEN {PAD} ELSE toast_pad END," if pad else ""
    return f"""
CREATE OR REPLACE FUNCTION dataset_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    names text[] := ARRAY(SELECT json_array_elements_text(NEW.tags));
    ids integer[];  -- NULL: the tags did not change
    changed boolean := TG_OP = 'INSERT';
    vector_changed boolean := false;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        changed := NEW.tags::text IS DISTINCT FROM OLD.tags::text;
        vector_changed := NEW.search_doc IS DISTINCT FROM OLD.search_doc;
    END IF;
    IF changed THEN
        INSERT INTO dataset_search_tags (tag)
            SELECT DISTINCT t FROM unnest(names) AS t
            WHERE t IS NOT NULL AND NOT EXISTS (SELECT FROM dataset_search_tags n WHERE n.tag = t)
            ON CONFLICT (tag) DO NOTHING;
        ids := {_IDS.format(names="names")};
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO dataset_search (pk, id, kind, owner, format, licence, modified, tags, tag_ids, search_tsv)
        VALUES (NEW.pk, NEW.id, NEW.kind, NEW.owner, NEW.format, NEW.licence, NEW.modified,
                names, ids, strip(to_tsvector('simple', NEW.search_doc)));
    ELSE
        UPDATE dataset_search SET
            id = NEW.id, kind = NEW.kind, owner = NEW.owner, format = NEW.format,
            licence = NEW.licence, modified = NEW.modified,
            tags = names, tag_ids = COALESCE(ids, tag_ids), {repad}
            search_tsv = CASE WHEN vector_changed
                              THEN strip(to_tsvector('simple', NEW.search_doc)) ELSE search_tsv END
        WHERE pk = NEW.pk;
    END IF;
    RETURN NULL;
END $$
"""  # noqa: S608 - constants only


def _rewrite() -> None:
    """Write every side-table row again (as the table's settings now say), in key order."""
    op.execute(f"CREATE TEMPORARY TABLE dataset_search_copy AS SELECT {_COLUMNS} FROM dataset_search")  # noqa: S608
    op.execute("TRUNCATE dataset_search")
    op.execute(f"INSERT INTO dataset_search ({_COLUMNS}) SELECT {_COLUMNS} FROM dataset_search_copy ORDER BY pk")  # noqa: S608
    op.execute("DROP TABLE dataset_search_copy")
    for index in _GIN_INDEXES:  # into the index proper (the inserts queued them in its pending list)
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")
    op.execute("ANALYZE dataset_search")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE dataset_search ADD COLUMN toast_pad text NOT NULL DEFAULT {PAD}")
    settings = [f"ALTER COLUMN {c} SET STORAGE MAIN" for c in (*_IN_LINE, "toast_pad")]
    op.execute(f"ALTER TABLE dataset_search {', '.join(settings)}, ALTER COLUMN search_tsv SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE dataset_search SET (toast_tuple_target = 512)")
    op.execute(_sync(pad=True))
    _rewrite()


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_sync(pad=False))
    op.execute("ALTER TABLE dataset_search DROP COLUMN toast_pad")
    settings = [f"ALTER COLUMN {c} SET STORAGE EXTENDED" for c in (*_IN_LINE, "search_tsv")]
    op.execute(f"ALTER TABLE dataset_search {', '.join(settings)}")
    op.execute("ALTER TABLE dataset_search RESET (toast_tuple_target)")
    _rewrite()
