"""Search at scale: the catalog generation and facet counts kept by the database on every write.

``catalog_state`` holds one row whose ``generation`` every change to ``datasets`` or
``dataset_tags`` increments (in the same transaction), so a cache of search counts keyed by
it never serves counts of an older catalog, in any process. ``facet_counts`` holds, for each
facet value (and ``('', '')`` for the number of datasets), how many datasets have it: the
counts of the empty query, read instead of counted. Both are kept by triggers (row triggers
on SQLite, statement triggers with transition tables on PostgreSQL), so that every writer,
also a bulk load with plain INSERTs, keeps them right.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Generations never repeat, also across a downgrade and re-upgrade or a restored copy of the
# database (a server's count cache keys on them): each bump moves to at least the current time in
# microseconds since the epoch, and the first one is seeded from the clock.
_SQLITE_BUMP = (
    "UPDATE catalog_state SET generation = "
    "max(generation + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));"
)
_PG_BUMP = (
    "UPDATE catalog_state SET generation = "
    "GREATEST(generation + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);"
)
_UPSERT = "ON CONFLICT (facet, value) DO UPDATE SET count = facet_counts.count + excluded.count"


def _sqlite_delta(row: str, sign: int) -> str:
    """Upsert the facet values of the trigger's ``row`` (``new``/``old``) by ``sign``."""
    values = " UNION ALL ".join(
        f"SELECT '{f}' AS f, {v} AS v" for f, v in (("", "''"), ("kind", f"{row}.kind"), ("owner", f"{row}.owner"),
                                                   ("format", f"{row}.format"), ("licence", f"{row}.licence"))
    )  # fmt: skip
    return (
        f"INSERT INTO facet_counts (facet, value, count) SELECT f, v, {sign} "  # noqa: S608 - constants only
        f"FROM ({values}) WHERE v IS NOT NULL {_UPSERT};"
    )


def _sqlite_tag(row: str, sign: int) -> str:
    return f"INSERT INTO facet_counts (facet, value, count) SELECT 'tag', {row}.tag, {sign} WHERE true {_UPSERT};"


_SQLITE_TRIGGERS = {
    "datasets_counts_insert": f"AFTER INSERT ON datasets BEGIN {_sqlite_delta('new', 1)} {_SQLITE_BUMP} END",
    "datasets_counts_delete": f"AFTER DELETE ON datasets BEGIN {_sqlite_delta('old', -1)} {_SQLITE_BUMP} END",
    "datasets_counts_update": (
        f"AFTER UPDATE ON datasets BEGIN {_sqlite_delta('old', -1)} {_sqlite_delta('new', 1)} {_SQLITE_BUMP} END"
    ),
    "dataset_tags_counts_insert": f"AFTER INSERT ON dataset_tags BEGIN {_sqlite_tag('new', 1)} {_SQLITE_BUMP} END",
    "dataset_tags_counts_delete": f"AFTER DELETE ON dataset_tags BEGIN {_sqlite_tag('old', -1)} {_SQLITE_BUMP} END",
}


def _pg_delta(rows: str, sign: str) -> str:
    return (
        "INSERT INTO facet_counts (facet, value, count) "  # noqa: S608 - constants only
        f"SELECT x.f, x.v, {sign} count(*) FROM {rows} r CROSS JOIN LATERAL (VALUES ('', ''), "
        "('kind', r.kind), ('owner', r.owner), ('format', r.format), ('licence', r.licence)) AS x(f, v) "
        f"WHERE x.v IS NOT NULL GROUP BY x.f, x.v {_UPSERT};"
    )


def _pg_tags(rows: str, sign: str) -> str:
    return (
        f"INSERT INTO facet_counts (facet, value, count) SELECT 'tag', r.tag, {sign} count(*) FROM {rows} r "  # noqa: S608
        f"GROUP BY r.tag {_UPSERT};"
    )


def _pg_function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} {_PG_BUMP} RETURN NULL; END $$"
    )


_PG_FUNCTIONS = {
    "xhub_datasets_inserted": _pg_delta("new_rows", ""),
    "xhub_datasets_deleted": _pg_delta("old_rows", "-"),
    "xhub_datasets_updated": _pg_delta("old_rows", "-") + " " + _pg_delta("new_rows", ""),
    "xhub_dataset_tags_inserted": _pg_tags("new_rows", ""),
    "xhub_dataset_tags_deleted": _pg_tags("old_rows", "-"),
}
_PG_TRIGGERS = {  # trigger: (table, event, transition tables, function)
    "datasets_counts_insert": ("datasets", "INSERT", "NEW TABLE AS new_rows", "xhub_datasets_inserted"),
    "datasets_counts_delete": ("datasets", "DELETE", "OLD TABLE AS old_rows", "xhub_datasets_deleted"),
    "datasets_counts_update": (
        "datasets", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", "xhub_datasets_updated",
    ),
    "dataset_tags_counts_insert": ("dataset_tags", "INSERT", "NEW TABLE AS new_rows", "xhub_dataset_tags_inserted"),
    "dataset_tags_counts_delete": ("dataset_tags", "DELETE", "OLD TABLE AS old_rows", "xhub_dataset_tags_deleted"),
}  # fmt: skip

_FILL = (
    "INSERT INTO facet_counts (facet, value, count) SELECT f, v, count(*) FROM ("
    "SELECT '' AS f, '' AS v FROM datasets UNION ALL SELECT 'kind', kind FROM datasets "
    "UNION ALL SELECT 'owner', owner FROM datasets "
    "UNION ALL SELECT 'format', format FROM datasets WHERE format IS NOT NULL "
    "UNION ALL SELECT 'licence', licence FROM datasets WHERE licence IS NOT NULL "
    "UNION ALL SELECT 'tag', tag FROM dataset_tags) AS a GROUP BY f, v"
)


def upgrade() -> None:
    op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_state"),
    )
    op.create_table(
        "facet_counts",
        sa.Column("facet", sa.String(16), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("facet", "value", name="pk_facet_counts"),
    )
    op.create_index("ix_datasets_listing", "datasets", ["pk", "modified", "kind", "owner", "format", "licence"])
    state = sa.table("catalog_state", sa.column("id", sa.Integer), sa.column("generation", sa.BigInteger))
    op.execute(state.insert().values(id=1, generation=time.time_ns() // 1000))
    op.execute(_FILL)
    if op.get_bind().dialect.name == "sqlite":
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, body in _PG_FUNCTIONS.items():
            op.execute(_pg_function(name, body))
        for name, (table, event, transition, function) in _PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    else:
        for name, (table, *_rest) in _PG_TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name} ON {table}")
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_datasets_listing", "datasets")
    op.drop_table("facet_counts")
    op.drop_table("catalog_state")
