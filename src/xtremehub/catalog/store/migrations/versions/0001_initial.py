"""The first catalog schema: datasets, tags, versions, jobs and lineage, access requests, full text.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)

_FTS_ADD = "INSERT INTO dataset_fts(rowid, search_doc) VALUES (new.pk, new.search_doc);"
_FTS_DEL = "INSERT INTO dataset_fts(dataset_fts, rowid, search_doc) VALUES ('delete', old.pk, old.search_doc);"
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER datasets_fts_insert AFTER INSERT ON datasets BEGIN {_FTS_ADD} END",
    f"CREATE TRIGGER datasets_fts_delete AFTER DELETE ON datasets BEGIN {_FTS_DEL} END",
    f"CREATE TRIGGER datasets_fts_update AFTER UPDATE OF search_doc ON datasets BEGIN {_FTS_DEL} {_FTS_ADD} END",
)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("licence", sa.String(256), nullable=True),
        sa.Column("format", sa.String(64), nullable=True),
        sa.Column("created", _TS, nullable=False),
        sa.Column("modified", _TS, nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.Column("health", sa.JSON, nullable=True),
        sa.Column("search_doc", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_datasets"),
        sa.UniqueConstraint("id", name="uq_datasets_id"),
        sa.UniqueConstraint("url", name="uq_datasets_url"),
    )
    op.create_index("ix_datasets_owner", "datasets", ["owner"])
    op.create_index("ix_datasets_licence", "datasets", ["licence"])
    op.create_index("ix_datasets_format", "datasets", ["format"])
    op.create_index("ix_datasets_kind", "datasets", ["kind"])
    op.create_index("ix_datasets_modified", "datasets", ["modified"])
    op.create_table(
        "dataset_tags",
        sa.Column("dataset_pk", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_pk"], ["datasets.pk"], name="fk_dataset_tags_dataset_pk_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_pk", "tag", name="pk_dataset_tags"),
    )
    op.create_index("ix_dataset_tags_tag", "dataset_tags", ["tag"])
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_pk", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("source_version", sa.String(512), nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.Column("distributions", sa.JSON, nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_pk"], ["datasets.pk"], name="fk_dataset_versions_dataset_pk_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_pk", "number", name="pk_dataset_versions"),
        sa.UniqueConstraint("dataset_pk", "source_version", name="uq_dataset_versions_dataset_pk_source_version"),
    )
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("function", sa.String(512), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("started", _TS, nullable=False),
        sa.Column("finished", _TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("code_measurement", sa.String(128), nullable=True),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("telemetry", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
    )
    op.create_table(
        "job_inputs",
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("dataset_pk", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.job_id"], name="fk_job_inputs_job_id_jobs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["dataset_pk"], ["datasets.pk"], name="fk_job_inputs_dataset_pk_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "dataset_pk", "version", name="pk_job_inputs"),
    )
    op.create_index("ix_job_inputs_dataset_pk", "job_inputs", ["dataset_pk"])
    op.create_table(
        "job_outputs",
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("dataset_pk", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.job_id"], name="fk_job_outputs_job_id_jobs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["dataset_pk"], ["datasets.pk"], name="fk_job_outputs_dataset_pk_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "dataset_pk", name="pk_job_outputs"),
    )
    op.create_index("ix_job_outputs_dataset_pk", "job_outputs", ["dataset_pk"])
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_pk", sa.Integer, nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("purpose", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("expires", _TS, nullable=True),
        sa.Column("decided_by", sa.String(256), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("policy_id", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_pk"], ["datasets.pk"], name="fk_access_requests_dataset_pk_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_requests"),
    )
    op.create_index("ix_access_requests_requester", "access_requests", ["requester"])
    op.create_index("ix_access_requests_status", "access_requests", ["status"])
    op.create_index("ix_access_requests_dataset_pk", "access_requests", ["dataset_pk"])
    if op.get_bind().dialect.name == "sqlite":
        # An external-content FTS5 index over datasets.search_doc, kept in step by triggers.
        op.execute(
            "CREATE VIRTUAL TABLE dataset_fts USING fts5("
            "search_doc, content='datasets', content_rowid='pk', tokenize='unicode61')"
        )
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute("CREATE INDEX ix_datasets_search_doc_fts ON datasets USING gin (to_tsvector('simple', search_doc))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("datasets_fts_insert", "datasets_fts_delete", "datasets_fts_update"):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE dataset_fts")
    else:
        op.execute("DROP INDEX ix_datasets_search_doc_fts")
    for table in ("access_requests", "job_outputs", "job_inputs", "jobs", "dataset_versions", "dataset_tags"):
        op.drop_table(table)
    op.drop_table("datasets")
