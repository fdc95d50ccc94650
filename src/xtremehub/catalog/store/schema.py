"""The catalog's one schema (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Alembic migrations (``migrations/versions``) create exactly these tables; a test checks that
``alembic check`` finds no difference. Full-text search lives beside the tables: an FTS5
virtual table ``dataset_fts`` on SQLite; on PostgreSQL a stored generated ``tsvector`` column
``dataset_search`` (migration 0004): per dataset its key, facet values, tags (``text[]``) and
``search_tsv`` (``strip(to_tsvector('simple', search_doc))``: no word positions, migration
0005; stored out of line since migration 0008, see its ``toast_pad``) and ``tag_ids`` (the tags'
ids in the dictionary ``dataset_search_tags``, migration 0006), kept by a trigger, with GIN
indexes (both made by the migrations, both outside this metadata).

Example:
    >>> sorted(metadata.tables)[:4]
    ['access_requests', 'catalog_state', 'dataset_tags', 'dataset_versions']
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR

__all__ = [
    "FTS_TABLE",
    "PG_FTS_INDEX",
    "PG_SEARCH_TABLE",
    "PG_TAG_TABLE",
    "PG_TSV_COLUMN",
    "SQLITE_LISTING_INDEX",
    "access_requests",
    "catalog_state",
    "dataset_search",
    "dataset_search_tags",
    "dataset_tags",
    "dataset_versions",
    "datasets",
    "facet_counts",
    "job_inputs",
    "job_outputs",
    "jobs",
    "metadata",
]

#: SQLite FTS5 table over ``datasets.search_doc`` (rowid = ``datasets.pk``).
FTS_TABLE = "dataset_fts"
#: PostgreSQL: ``datasets.search_tsv``, ``to_tsvector('simple', search_doc)`` stored (generated).
PG_TSV_COLUMN = "search_tsv"
#: PostgreSQL GIN index over :data:`PG_TSV_COLUMN` (migration 0003, dropped by 0004).
PG_FTS_INDEX = "ix_datasets_search_tsv"
#: PostgreSQL: the narrow side table search reads (migration 0004, kept by a trigger on ``datasets``).
PG_SEARCH_TABLE = "dataset_search"
#: PostgreSQL: the tag dictionary whose ids ``dataset_search.tag_ids`` holds (migration 0006).
PG_TAG_TABLE = "dataset_search_tags"
#: SQLite: ``ix_datasets_listing`` with the row's ``tags`` (JSON) as its last column, what search
#: counts, samples and tests listing conditions on (migration 0007, outside :data:`metadata`).
SQLITE_LISTING_INDEX = "ix_datasets_listing_tags"

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_TS = sa.DateTime(timezone=True)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False, unique=True),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("owner", sa.String(256), nullable=False, index=True),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("licence", sa.String(256), nullable=True, index=True),
    sa.Column("format", sa.String(64), nullable=True, index=True),
    sa.Column("created", _TS, nullable=False),
    sa.Column("modified", _TS, nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("facts", sa.JSON, nullable=False),
    sa.Column("health", sa.JSON, nullable=True),
    sa.Column("search_doc", sa.Text, nullable=False),
)
sa.Index("ix_datasets_kind", datasets.c.kind)
sa.Index("ix_datasets_modified", datasets.c.modified)
#: Narrow copy of what search orders and counts by, read instead of the wide rows (migration 0002).
sa.Index(
    "ix_datasets_listing",
    datasets.c.pk,
    datasets.c.modified,
    datasets.c.kind,
    datasets.c.owner,
    datasets.c.format,
    datasets.c.licence,
)

dataset_tags = sa.Table(
    "dataset_tags",
    metadata,
    sa.Column("dataset_pk", sa.Integer, sa.ForeignKey("datasets.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Index("ix_dataset_tags_tag", "tag"),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("dataset_pk", sa.Integer, sa.ForeignKey("datasets.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("source_version", sa.String(512), nullable=False),
    sa.Column("created", _TS, nullable=False),
    sa.Column("distributions", sa.JSON, nullable=False),
    sa.Column("facts", sa.JSON, nullable=False),
    sa.UniqueConstraint("dataset_pk", "source_version"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(128), primary_key=True),
    sa.Column("function", sa.String(512), nullable=False),
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("started", _TS, nullable=False),
    sa.Column("finished", _TS, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("code_measurement", sa.String(128), nullable=True),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("telemetry", sa.JSON, nullable=False),
)

job_inputs = sa.Table(
    "job_inputs",
    metadata,
    sa.Column("job_id", sa.String(128), sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("dataset_pk", sa.Integer, sa.ForeignKey("datasets.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("slices", sa.JSON, nullable=False),
    sa.Index("ix_job_inputs_dataset_pk", "dataset_pk"),
)

job_outputs = sa.Table(
    "job_outputs",
    metadata,
    sa.Column("job_id", sa.String(128), sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("dataset_pk", sa.Integer, sa.ForeignKey("datasets.pk", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_job_outputs_dataset_pk", "dataset_pk"),
)

access_requests = sa.Table(
    "access_requests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("dataset_pk", sa.Integer, sa.ForeignKey("datasets.pk", ondelete="CASCADE"), nullable=False),
    sa.Column("requester", sa.String(256), nullable=False, index=True),
    sa.Column("purpose", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created", _TS, nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("expires", _TS, nullable=True),
    sa.Column("decided_by", sa.String(256), nullable=True),
    sa.Column("decided_at", _TS, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("policy_id", sa.String(128), nullable=True),
    sa.Index("ix_access_requests_dataset_pk", "dataset_pk"),
)

#: One row (``id`` 1): the catalog's generation, incremented by the database (triggers of
#: migration 0002) in every transaction that changes ``datasets`` or ``dataset_tags``.
catalog_state = sa.Table(
    "catalog_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
)

#: How many datasets have each facet value (``('', '')``: how many datasets), kept by triggers.
facet_counts = sa.Table(
    "facet_counts",
    metadata,
    sa.Column("facet", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(256), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

#: PostgreSQL only (migration 0004, outside :data:`metadata`): what search filters, orders and
#: counts by, one narrow row per dataset, written by a trigger on ``datasets`` (never by the store).
dataset_search = sa.Table(
    PG_SEARCH_TABLE,
    sa.MetaData(),
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("format", sa.String(64), nullable=True),
    sa.Column("licence", sa.String(256), nullable=True),
    sa.Column("modified", _TS, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False),
    sa.Column("tag_ids", ARRAY(sa.Integer), nullable=False),  # the ids of ``tags`` (migration 0006)
    sa.Column(PG_TSV_COLUMN, TSVECTOR, nullable=False),  # out of line (TOAST) since migration 0008
    # 2,100 spaces written with every new vector (a default): long enough for PostgreSQL to toast
    # the row, whose vector it then moves out of line; stored compressed in the row (migration 0008)
    sa.Column("toast_pad", sa.Text, nullable=False),
)

#: PostgreSQL only (migration 0006, outside :data:`metadata`): each tag name once, with its id;
#: the trigger adds a dataset's new tags.
dataset_search_tags = sa.Table(
    PG_TAG_TABLE,
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tag", sa.Text, nullable=False, unique=True),
)
