"""The catalog on SQL: datasets, versions, search and lineage (access requests: :mod:`.access`).

:class:`SqlCatalog` implements :class:`~xtremehub.catalog.api.CatalogAPI` over one SQLAlchemy
engine (SQLite or PostgreSQL). Every method is one transaction: it commits whole or leaves
nothing behind. Updates are compare-and-set on the record's etag (``UPDATE ... WHERE etag =``),
so of several concurrent updaters holding the same etag exactly one wins and the others get
:class:`~xtremehub.errors.PreconditionFailed`. A connection that fails (server stopped,
network gone) is :class:`~xtremehub.errors.CatalogUnavailable`; the pool pings connections
before use, so the next call after the server is back works again.

Example:
    >>> from xtremehub.catalog import open_catalog
    >>> cat = open_catalog("sqlite:///:memory:")
    >>> ds = cat.register("s3://lab/run7/reads.fastq.gz", actor="alice", title="Run 7 reads",
    ...                   format="fastq.gz", tags=["wgs"], facts={"reads": 1200}, source_version="e1")
    >>> ds.latest_version, cat.search(SearchQuery(text="run 7")).total
    (1, 1)
    >>> cat.register(ds.url, actor="alice", facts={"reads": 1500}, source_version="e2").latest_version
    2
    >>> cat.close()
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from xtremehub.catalog.model import (
    FACETS,
    Dataset,
    DatasetKind,
    DatasetPatch,
    DatasetVersion,
    Distribution,
    HealthFields,
    InputRef,
    JobRecord,
    LineageEdge,
    LineageGraph,
    SearchPage,
    SearchQuery,
)
from xtremehub.catalog.store import access, limits, planner, rows
from xtremehub.catalog.store.access import policy_file
from xtremehub.catalog.store.counts import CountCache, Counts
from xtremehub.catalog.store.engine import WRITE, catalog_errors
from xtremehub.catalog.store.schema import (
    access_requests,
    catalog_state,
    dataset_tags,
    dataset_versions,
    datasets,
    facet_counts,
    job_inputs,
    job_outputs,
    jobs,
)
from xtremehub.catalog.store.search import (
    FACET_LIMIT,
    TOTAL_LIMIT,
    Plan,
    count_statement,
    counts_total,
    facet_statement,
    fts_count_statement,
    items_statement,
    plan,
    search_doc,
    stored_counts_statement,
)
from xtremehub.catalog.streams import StreamStore, dataset_kind, is_stream_url
from xtremehub.config import Settings
from xtremehub.errors import DatasetNotFound, Forbidden, InvalidMetadata, PreconditionFailed

__all__ = ["SqlCatalog"]

log = logging.getLogger(__name__)

_KINDS = ("object", "prefix", "stream", "derived")
_UPDATE_BY_PK = sa.update(datasets).where(datasets.c.pk == sa.bindparam("b_pk"))
MAX_DEPTH = 50
MAX_FACET_VALUES = 50
_GENERATION = sa.select(catalog_state.c.generation).where(catalog_state.c.id == 1)
_SIZE = sa.select(facet_counts.c.count).where(facet_counts.c.facet == "", facet_counts.c.value == "")
_BUMP = sa.update(catalog_state).where(catalog_state.c.id == 1).values(generation=catalog_state.c.generation + 1)


class SqlCatalog(access.AccessRequests):
    """The catalog on one SQLAlchemy engine; build it with :func:`xtremehub.catalog.open_catalog`."""

    def __init__(
        self,
        engine: Any,
        *,
        settings: Settings,
        policy_store: Any = None,
        audit: Any = None,
        streams: StreamStore | None = None,
        owns_audit: bool = False,
    ) -> None:
        self._engine = engine
        self._own_audit = audit if owns_audit else None  # opened for this catalog: closed with it
        self._settings = settings
        #: Where ``xhub-stream://`` URLs are read when they are registered without facts.
        self.streams = streams or StreamStore(settings)
        self._policy_store = policy_store
        self._policy_listeners = []
        self._audit = audit
        self._dialect: str = engine.dialect.name
        self.url: str = engine.url.render_as_string(hide_password=True)
        #: Search counts per catalog generation (:mod:`xtremehub.catalog.store.counts`).
        self.counts = CountCache()
        #: Totals are exact up to this many matches, facet counts over at most this many.
        self.total_limit = TOTAL_LIMIT
        self.facet_limit = FACET_LIMIT

    def __repr__(self) -> str:
        return f"SqlCatalog({self.url!r})"

    def __enter__(self) -> SqlCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection (and the audit log :func:`open_catalog` opened)."""
        self._engine.dispose()
        if self._own_audit is not None:
            self._own_audit.close()
            self._own_audit = None

    # -- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        with catalog_errors(self.url), self._engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        with catalog_errors(self.url), self._engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            if self._dialect == "postgresql":
                # Take the generation row first: writers queue here (as SQLite's BEGIN IMMEDIATE
                # makes them) instead of deadlocking on the facet counts their triggers update.
                conn.execute(_BUMP)
            yield conn

    def _audited(self, actor: str, action: str, resource: str, **detail: Any) -> None:
        if self._audit is not None:
            self._audit.append("catalog", subject=actor, action=action, resource=resource, detail=detail)

    # -- datasets -------------------------------------------------------------------------------

    def register(
        self,
        url: str,
        *,
        actor: str,
        kind: DatasetKind = "object",
        title: str | None = None,
        description: str = "",
        tags: Sequence[str] = (),
        licence: str | None = None,
        format: str | None = None,
        facts: Mapping[str, Any] | None = None,
        distributions: Sequence[Distribution] = (),
        source_version: str | None = None,
        health: HealthFields | None = None,
        roles: Collection[str] = (),
    ) -> Dataset:
        """Register ``url``, or add a version when its ``source_version`` is new (see the protocol).

        A new version of a registered URL is added by its owner or an admin (``roles`` holding
        ``admin``, or ``[catalog] admins``) only, else :class:`~xtremehub.errors.Forbidden`; a
        ``kind`` other than the registered one is :class:`~xtremehub.errors.InvalidMetadata`.
        """
        url = limits.text("url", url, limits.MAX_URL).strip()
        if not url or "://" not in url:
            raise InvalidMetadata("url", f"{url!r} is not a URL (scheme://...)")
        actor = limits.subject("actor", actor)
        if kind not in _KINDS:
            raise InvalidMetadata("kind", f"must be one of {', '.join(_KINDS)}, not {kind!r}")
        kind = dataset_kind(url, kind)  # a stream URL is a stream
        if kind == "prefix" and not url.endswith("/"):
            url += "/"  # a prefix is listed, and granted (``Prefix::"<url>/"``), with its slash
        from xtremehub.catalog.extract import check_url

        check_url(url)  # always, also when the facts are given (no extraction reads the URL)
        if facts is None or source_version is None:
            from xtremehub.catalog.extract import extract

            if is_stream_url(url):
                found = self.streams.extract(url)
            else:
                found = extract(url, settings=self._settings, format=format)
            facts = found.facts if facts is None else facts
            source_version = source_version or found.source_version
            format = format or found.format
            distributions = distributions or found.distributions
            health = health or found.health
            title = title or found.title or None
        source_version = limits.text("source_version", source_version, limits.MAX_SHORT)
        facts = limits.facts_json("facts", facts)
        title = limits.text("title", title if title is not None else _default_title(url), limits.MAX_TITLE)
        description = limits.text("description", description, limits.MAX_DESCRIPTION, multiline=True)
        tag_list = limits.tags(tags)
        if licence is not None:
            licence = limits.text("licence", licence, limits.MAX_SHORT)
        if format is not None:
            format = limits.text("format", format, 64)
        dists = tuple(distributions)
        for i, dist in enumerate(dists):
            limits.text(f"distributions[{i}].url", dist.url, limits.MAX_URL)
        for attempt in range(3):
            try:
                with self._write() as conn:
                    result, action = self._register_in(
                        conn, url, actor, kind, title, description, tag_list, licence, format, facts, dists,
                        source_version, health, tuple(roles),
                    )  # fmt: skip
                break
            except sa.exc.IntegrityError:  # a concurrent registration of the same URL/version won
                if attempt == 2:
                    raise
        if action != "unchanged":
            self._audited(actor, action, f"dataset:{result.id}", url=url, version=result.latest_version)
        return result

    def _register_in(
        self,
        conn: Any,
        url: str,
        actor: str,
        kind: str,
        title: str,
        description: str,
        tags: tuple[str, ...],
        licence: str | None,
        format: str | None,
        facts: dict[str, Any],
        dists: tuple[Distribution, ...],
        source_version: str,
        health: HealthFields | None,
        roles: tuple[str, ...] = (),
    ) -> tuple[Dataset, str]:
        t = rows.now()
        row = conn.execute(sa.select(datasets).where(datasets.c.url == url)).first()
        if row is None:
            values = {
                "id": rows.new_id("ds"),
                "kind": kind,
                "url": url,
                "title": title,
                "description": description,
                "owner": actor,
                "tags": list(tags),
                "licence": licence,
                "format": format,
                "created": t,
                "modified": t,
                "etag": rows.new_etag(),
                "latest_version": 1,
                "facts": facts,
                "health": rows.health_json(health),
            }
            values["search_doc"] = _doc(values)
            pk = conn.execute(sa.insert(datasets).returning(datasets.c.pk), values).scalar_one()
            if tags:
                conn.execute(sa.insert(dataset_tags), [{"dataset_pk": pk, "tag": tag} for tag in tags])
            dists = dists or (Distribution(url=url, format=format or "unknown"),)
            self._add_version(conn, pk, 1, source_version, t, dists, facts)
            return rows.dataset(conn.execute(sa.select(datasets).where(datasets.c.pk == pk)).one()), "register"
        pk = row.pk
        if row.kind != kind:
            raise InvalidMetadata("kind", f"{url} is registered as {row.kind} ({row.id}), not {kind}")
        seen = conn.execute(
            sa.select(dataset_versions.c.number).where(
                dataset_versions.c.dataset_pk == pk, dataset_versions.c.source_version == source_version
            )
        ).first()
        if seen is not None:
            return rows.dataset(row), "unchanged"
        if not self._may_decide(actor, row.owner, roles):
            raise Forbidden(
                f"{actor} may not add a version to {row.id} ({url}): only its owner {row.owner} or an admin"
            )
        number = row.latest_version + 1
        dists = dists or (Distribution(url=url, format=format or row.format or "unknown"),)
        self._add_version(conn, pk, number, source_version, t, dists, facts)
        values = dict(row._mapping)
        values.update(
            facts=facts,
            format=format or row.format,
            latest_version=number,
            modified=t,
            etag=rows.new_etag(),
            health=rows.health_json(health) if health is not None else row.health,
        )
        values["search_doc"] = _doc(values)
        values["b_pk"] = values.pop("pk")
        conn.execute(_UPDATE_BY_PK, values)
        return rows.dataset(conn.execute(sa.select(datasets).where(datasets.c.pk == pk)).one()), "new-version"

    @staticmethod
    def _add_version(
        conn: Any,
        pk: int,
        number: int,
        source_version: str,
        created: datetime,
        dists: tuple[Distribution, ...],
        facts: dict[str, Any],
    ) -> None:
        conn.execute(
            sa.insert(dataset_versions),
            {
                "dataset_pk": pk,
                "number": number,
                "source_version": source_version,
                "created": created,
                "distributions": rows.distributions_json(dists),
                "facts": facts,
            },
        )

    def get(self, dataset_id: str) -> Dataset:
        """The dataset ``dataset_id``, or :class:`DatasetNotFound`."""
        with self._read() as conn:
            return rows.dataset(self._row(conn, dataset_id))

    def find_by_url(self, url: str) -> Dataset | None:
        """The dataset registered for ``url``, or None."""
        url = limits.text("url", url, limits.MAX_URL)
        with self._read() as conn:
            row = conn.execute(sa.select(datasets).where(datasets.c.url == url)).first()
        return rows.dataset(row) if row is not None else None

    def _row(self, conn: Any, dataset_id: str) -> Any:
        dataset_id = limits.text("dataset_id", dataset_id, limits.MAX_ID)
        row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
        if row is None:
            raise DatasetNotFound(dataset_id)
        return row

    def _pk(self, conn: Any, dataset_id: str) -> int:
        dataset_id = limits.text("dataset_id", dataset_id, limits.MAX_ID)
        pk = conn.execute(sa.select(datasets.c.pk).where(datasets.c.id == dataset_id)).scalar()
        if pk is None:
            raise DatasetNotFound(dataset_id)
        return int(pk)

    def update(self, dataset_id: str, patch: DatasetPatch, *, actor: str, if_match: str) -> Dataset:
        """Change the user-editable fields, if ``if_match`` is still the record's etag."""
        actor = limits.subject("actor", actor)
        changes: dict[str, Any] = {}
        if patch.title is not None:
            changes["title"] = limits.text("title", patch.title, limits.MAX_TITLE)
        if patch.description is not None:
            changes["description"] = limits.text(
                "description", patch.description, limits.MAX_DESCRIPTION, multiline=True
            )
        if patch.tags is not None:
            changes["tags"] = list(limits.tags(patch.tags))
        if patch.licence is not None:
            changes["licence"] = limits.text("licence", patch.licence, limits.MAX_SHORT) or None
        if patch.health is not None:
            changes["health"] = rows.health_json(patch.health)
        with self._write() as conn:
            row = self._row(conn, dataset_id)
            if row.etag != if_match:
                raise PreconditionFailed(dataset_id, if_match, row.etag)
            values = {**dict(row._mapping), **changes, "modified": rows.now(), "etag": rows.new_etag()}
            values["search_doc"] = _doc(values)
            del values["pk"]
            done = conn.execute(
                sa.update(datasets).where(datasets.c.pk == row.pk, datasets.c.etag == if_match).values(**values)
            )
            if done.rowcount != 1:  # another writer committed in between (PostgreSQL re-checks the WHERE)
                current = conn.execute(sa.select(datasets.c.etag).where(datasets.c.pk == row.pk)).scalar()
                raise PreconditionFailed(dataset_id, if_match, current or "")
            if "tags" in changes:
                conn.execute(sa.delete(dataset_tags).where(dataset_tags.c.dataset_pk == row.pk))
                if changes["tags"]:
                    conn.execute(sa.insert(dataset_tags), [{"dataset_pk": row.pk, "tag": t} for t in changes["tags"]])
            result = rows.dataset(conn.execute(sa.select(datasets).where(datasets.c.pk == row.pk)).one())
        self._audited(actor, "update", f"dataset:{dataset_id}", fields=sorted(changes), etag=result.etag)
        return result

    def delete(self, dataset_id: str, *, actor: str, if_match: str) -> None:
        """Remove the dataset with its versions, tags, lineage links and access requests."""
        actor = limits.subject("actor", actor)
        removed: list[str] = []
        try:
            with self._write() as conn:
                row = self._row(conn, dataset_id)
                if row.etag != if_match:
                    raise PreconditionFailed(dataset_id, if_match, row.etag)
                granted = conn.execute(
                    sa.select(access_requests.c.id).where(
                        access_requests.c.dataset_pk == row.pk, access_requests.c.status == "approved"
                    )
                ).all()
                done = conn.execute(sa.delete(datasets).where(datasets.c.pk == row.pk, datasets.c.etag == if_match))
                if done.rowcount != 1:
                    raise PreconditionFailed(dataset_id, if_match, "(changed)")
                if granted:  # the usage policies of its approved requests go with it, as a revoke removes them
                    names = [policy_file(g.id) for g in granted]
                    self._write_policy(dict.fromkeys(names), actor)
                    removed = names
        finally:
            if removed:  # committed or not, the policies are gone: no authorizer keeps them in force
                self._policy_changed(removed)
        self._audited(actor, "delete", f"dataset:{dataset_id}", url=row.url, policies_removed=len(granted))

    def versions(self, dataset_id: str) -> Sequence[DatasetVersion]:
        """Every content version of the dataset, oldest first."""
        with self._read() as conn:
            pk = self._pk(conn, dataset_id)
            found = conn.execute(
                sa.select(dataset_versions)
                .where(dataset_versions.c.dataset_pk == pk)
                .order_by(dataset_versions.c.number)
            ).all()
        return tuple(rows.version(r, dataset_id) for r in found)

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of datasets matching the text, filters and ``visible``, the total and the
        facet counts (bounded and cached, see :mod:`xtremehub.catalog.store.search`)."""
        found = plan(query, self._dialect)
        pg = self._dialect == "postgresql"
        with self._read() as conn:
            if pg:  # the page, the generation and the counts: one snapshot
                conn.execution_options(isolation_level="REPEATABLE READ")
            generation = conn.execute(_GENERATION).scalar_one()
            key = (generation, self.total_limit, self.facet_limit, found.key)
            counts = self.counts.get(key)
            if counts is None:
                counts = self._count(conn, found)
                self.counts.put(key, counts)
            walk = found.text and planner.walks_modified(counts.total, query.offset + query.limit, self._size(conn))
            if pg and found.text:  # plans per word, chosen by the counted total (.planner)
                conn.exec_driver_sql(planner.setting_sql("walk" if walk else "sort"))
            statement = items_statement(*found.shape, self._dialect, walk and not pg)
            items = tuple(rows.dataset(r) for r in conn.execute(statement, found.params))
        return SearchPage(
            items=items,
            total=counts.total,
            limit=query.limit,
            offset=query.offset,
            facets=counts.facets,
            total_is_lower_bound=counts.total_is_lower_bound,
            facets_are_lower_bounds=counts.facets_are_lower_bounds,
        )

    def _size(self, conn: Any) -> int:
        """How many datasets the catalog holds (kept by the database, one indexed row)."""
        return int(conn.execute(_SIZE).scalar() or 0)

    def _count(self, conn: Any, found: Plan) -> Counts:
        if found.everything:  # kept by the database on every write: exact and read, not counted
            counted = conn.execute(stored_counts_statement()).all()
            total, lower = 0, False
        else:
            # the matches read for a capped total also feed the facet sample: never fewer than it takes
            count_limit = max(self.total_limit + 1, self.facet_limit)
            params = {**found.params, "q_facet_limit": self.facet_limit, "q_count_limit": count_limit}
            if self._dialect == "postgresql" and found.text:  # the GIN index's matches, never every vector
                conn.exec_driver_sql(planner.setting_sql("count"))
            counted = conn.execute(facet_statement(*found.shape, self._dialect), params).all()
            text_only = found.text and not found.facets and found.visible is None
            if counts_total(*found.shape, self._dialect):  # the same read of the matches as the sample
                total = next(int(count) for facet, _, count in counted if facet == "*")
            elif text_only:  # SQLite: FTS5 counts from its index
                total = int(conn.execute(fts_count_statement(self._dialect), params).scalar_one())
            else:
                total = int(conn.execute(count_statement(*found.shape, self._dialect), params).scalar_one())
            # a text-only total is exact (the index knows it); any other is exact up to the limit
            total, lower = (self.total_limit, True) if total > self.total_limit and not text_only else (total, False)
        facets: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
        sampled = 0
        for facet, value, count in counted:
            if facet == "*":
                continue
            if facet == "":
                sampled = int(count)
                if found.everything:
                    total = sampled
            elif value is not None:
                facets[facet][str(value)] = int(count)
        top = {
            facet: dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FACET_VALUES])
            for facet, values in facets.items()
        }
        return Counts(total, lower, top, not found.everything and sampled >= self.facet_limit and total > sampled)

    # -- lineage --------------------------------------------------------------------------------

    def record_job(self, job: JobRecord) -> JobRecord:
        """Store a job with the dataset versions it read and the datasets it wrote (replacing a
        record of the same job id). An output that is also upstream of an input is refused."""
        job_id = limits.text("job_id", job.job_id, 128)
        if not job_id:
            raise InvalidMetadata("job_id", "must not be empty")
        owner = limits.subject("owner", job.owner)
        function = limits.text("function", job.function, 512)
        if job.status not in ("succeeded", "failed"):
            raise InvalidMetadata("status", f"must be succeeded or failed, not {job.status!r}")
        parameters = limits.facts_json("parameters", job.parameters)
        telemetry = limits.facts_json("telemetry", job.telemetry)
        with self._write() as conn:
            in_pks = [(self._pk(conn, ref.dataset_id), ref) for ref in job.inputs]
            out_pks = [self._pk(conn, ds) for ds in dict.fromkeys(job.outputs)]
            upstream = self._closure(conn, {pk for pk, _ in in_pks}, "up", MAX_DEPTH) | {pk for pk, _ in in_pks}
            for ds, pk in zip(dict.fromkeys(job.outputs), out_pks, strict=True):
                if pk in upstream:
                    raise InvalidMetadata("outputs", f"dataset {ds!r} is upstream of this job's inputs (a cycle)")
            conn.execute(sa.delete(jobs).where(jobs.c.job_id == job_id))
            conn.execute(sa.delete(job_inputs).where(job_inputs.c.job_id == job_id))
            conn.execute(sa.delete(job_outputs).where(job_outputs.c.job_id == job_id))
            conn.execute(
                sa.insert(jobs).values(
                    job_id=job_id,
                    function=function,
                    owner=owner,
                    started=job.started,
                    finished=job.finished,
                    status=job.status,
                    code_measurement=job.code_measurement,
                    parameters=parameters,
                    telemetry=telemetry,
                )
            )
            inputs = {(pk, ref.version): list(ref.slices) for pk, ref in in_pks}
            if inputs:
                conn.execute(
                    sa.insert(job_inputs),
                    [{"job_id": job_id, "dataset_pk": pk, "version": v, "slices": s} for (pk, v), s in inputs.items()],
                )
            if out_pks:
                conn.execute(sa.insert(job_outputs), [{"job_id": job_id, "dataset_pk": pk} for pk in out_pks])
        self._audited(owner, "record-job", f"job:{job_id}", inputs=len(inputs), outputs=len(out_pks))
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> JobRecord:
        """The job record ``job_id``, or :class:`DatasetNotFound` (kind ``job``)."""
        with self._read() as conn:
            found = self._jobs(conn, [job_id])
        if not found:
            raise DatasetNotFound(job_id, "job")
        return found[0]

    def list_jobs(self, *, limit: int = 1000) -> list[JobRecord]:
        """The ``limit`` (1..10,000) most recently started jobs, oldest first."""
        if not 1 <= limit <= 10_000:
            raise InvalidMetadata("limit", f"must be 1..10000, not {limit}")
        newest = sa.select(jobs.c.job_id).order_by(jobs.c.started.desc(), jobs.c.job_id.desc()).limit(limit)
        with self._read() as conn:
            return self._jobs(conn, list(conn.execute(newest).scalars()))

    def job_page(self, *, limit: int, offset: int = 0, exclude: Collection[str] = ()) -> tuple[list[JobRecord], int]:
        """Jobs in the order they started (oldest first), leaving out ``exclude``: the ``limit``
        (0..10,000) from ``offset`` on, and how many jobs there are in that order."""
        if not 0 <= limit <= 10_000:
            raise InvalidMetadata("limit", f"must be 0..10000, not {limit}")
        if offset < 0:
            raise InvalidMetadata("offset", f"must be >= 0, not {offset}")
        left_out = set(exclude)  # filtered here: a NOT IN of every id would exceed SQLite's variables
        ordered = sa.select(jobs.c.job_id).order_by(jobs.c.started, jobs.c.job_id)
        with self._read() as conn:
            kept = [job_id for job_id in conn.execute(ordered).scalars() if job_id not in left_out]
            chosen = kept[offset : offset + limit]
            return (self._jobs(conn, chosen) if chosen else []), len(kept)

    def _jobs(self, conn: Any, job_ids: Sequence[str]) -> list[JobRecord]:
        if not job_ids:
            return []
        found = conn.execute(
            sa.select(jobs).where(jobs.c.job_id.in_(job_ids)).order_by(jobs.c.started, jobs.c.job_id)
        ).all()
        ins = conn.execute(
            sa.select(job_inputs.c.job_id, datasets.c.id, job_inputs.c.version, job_inputs.c.slices)
            .join(datasets, datasets.c.pk == job_inputs.c.dataset_pk)
            .where(job_inputs.c.job_id.in_(job_ids))
            .order_by(datasets.c.id)
        ).all()
        outs = conn.execute(
            sa.select(job_outputs.c.job_id, datasets.c.id)
            .join(datasets, datasets.c.pk == job_outputs.c.dataset_pk)
            .where(job_outputs.c.job_id.in_(job_ids))
            .order_by(datasets.c.id)
        ).all()
        return [
            rows.job(
                r,
                tuple(InputRef(ds, v, tuple(s)) for j, ds, v, s in ins if j == r.job_id),
                tuple(ds for j, ds in outs if j == r.job_id),
            )
            for r in found
        ]

    def _step(self, conn: Any, frontier: set[int], direction: str) -> tuple[set[int], list[tuple[int, str]]]:
        """One hop: the jobs touching ``frontier`` and the datasets on their other side."""
        near, far = (job_outputs, job_inputs) if direction == "up" else (job_inputs, job_outputs)
        job_ids = select_ids = sa.select(near.c.job_id).where(near.c.dataset_pk.in_(frontier))
        links = conn.execute(sa.select(far.c.dataset_pk, far.c.job_id).where(far.c.job_id.in_(select_ids))).all()
        del job_ids
        return {pk for pk, _ in links}, [(pk, j) for pk, j in links]

    def _closure(self, conn: Any, start: set[int], direction: str, depth: int) -> set[int]:
        seen: set[int] = set()
        frontier = set(start)
        for _ in range(depth):
            if not frontier:
                break
            nxt, _links = self._step(conn, frontier, direction)
            frontier = nxt - seen - start
            seen |= nxt
        return seen

    def lineage(
        self, dataset_id: str, *, direction: Literal["up", "down", "both"] = "both", depth: int = 5
    ) -> LineageGraph:
        """The datasets and jobs upstream and/or downstream of ``dataset_id``, ``depth`` hops deep."""
        if direction not in ("up", "down", "both"):
            raise InvalidMetadata("direction", f"must be up, down or both, not {direction!r}")
        if not 0 <= depth <= MAX_DEPTH:
            raise InvalidMetadata("depth", f"must be in [0, {MAX_DEPTH}], not {depth}")
        with self._read() as conn:
            root = self._pk(conn, dataset_id)
            pks: set[int] = {root}
            job_ids: set[str] = set()
            for way in ("up", "down") if direction == "both" else (direction,):
                frontier, seen = {root}, {root}
                for _ in range(depth):
                    if not frontier:
                        break
                    touching = conn.execute(
                        sa.select((job_outputs if way == "up" else job_inputs).c.job_id).where(
                            (job_outputs if way == "up" else job_inputs).c.dataset_pk.in_(frontier)
                        )
                    ).scalars()
                    new_jobs = set(touching) - job_ids
                    job_ids |= new_jobs
                    nxt, _ = self._step(conn, frontier, way)
                    frontier = nxt - seen  # a cycle (impossible by record_job, guarded anyway) ends here
                    seen |= nxt
                pks |= seen
            found = self._jobs(conn, sorted(job_ids))
            ds_rows = conn.execute(sa.select(datasets).where(datasets.c.pk.in_(pks)).order_by(datasets.c.id)).all()
        known = {r.id for r in ds_rows}
        edges: set[LineageEdge] = set()
        for job in found:
            for ref in job.inputs:
                if ref.dataset_id in known:
                    edges.add(LineageEdge(f"dataset:{ref.dataset_id}", f"job:{job.job_id}", "input"))
            for out in job.outputs:
                if out in known:
                    edges.add(LineageEdge(f"job:{job.job_id}", f"dataset:{out}", "output"))
        return LineageGraph(
            root=f"dataset:{dataset_id}",
            datasets=tuple(rows.dataset(r) for r in ds_rows),
            jobs=tuple(found),
            edges=tuple(sorted(edges, key=lambda e: (e.source, e.target))),
        )


def _default_title(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name or url


def _doc(values: Mapping[str, Any]) -> str:
    return search_doc(
        title=values["title"],
        description=values["description"],
        tags=values["tags"],
        url=values["url"],
        facts=values["facts"],
        extra=(values["format"], values["owner"], values["licence"], values["kind"]),
    )
