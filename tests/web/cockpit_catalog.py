"""A small in-memory CatalogAPI for the cockpit's page tests (the real store is tested on its own)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from xtremehub.catalog.model import (
    FACETS,
    DataAccessRequest,
    Dataset,
    DatasetVersion,
    Distribution,
    JobRecord,
    LineageEdge,
    LineageGraph,
    SearchPage,
    SearchQuery,
)
from xtremehub.errors import DatasetNotFound, PreconditionFailed


class MemoryCatalog:
    def __init__(self) -> None:
        self.datasets: dict[str, Dataset] = {}
        self.vers: dict[str, list[DatasetVersion]] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.requests: dict[str, DataAccessRequest] = {}
        self._ids = itertools.count(1)

    def register(
        self,
        url: str,
        *,
        actor: str,
        title: str | None = None,
        description: str = "",
        tags: Sequence[str] = (),
        format: str | None = None,
        facts: Mapping[str, Any] | None = None,
        kind: str = "object",
        licence: str | None = None,
        **_: Any,
    ) -> Dataset:
        now = datetime.now(UTC)
        ident = f"ds-{next(self._ids)}"
        ds = Dataset(
            id=ident,
            kind=kind,
            url=url,
            title=title or url.rsplit("/", 1)[-1],
            owner=actor,  # type: ignore[arg-type]
            created=now,
            modified=now,
            etag="1",
            description=description,
            tags=tuple(tags),
            licence=licence,
            format=format,
            latest_version=1,
            facts=dict(facts or {}),
        )
        self.datasets[ident] = ds
        self.vers[ident] = [
            DatasetVersion(ident, 1, "etag-1", now, (Distribution(url, format or "", size=123),), ds.facts)
        ]
        return ds

    def get(self, dataset_id: str) -> Dataset:
        if dataset_id not in self.datasets:
            raise DatasetNotFound(dataset_id)
        return self.datasets[dataset_id]

    def versions(self, dataset_id: str) -> Sequence[DatasetVersion]:
        return self.vers[self.get(dataset_id).id]

    def search(self, query: SearchQuery) -> SearchPage:
        def value(d: Dataset, facet: str) -> tuple[str, ...]:
            v = {"format": d.format, "owner": d.owner, "licence": d.licence, "kind": d.kind}.get(facet)
            return d.tags if facet == "tag" else ((v,) if v else ())

        text = query.text.lower()
        hits = [
            d
            for d in self.datasets.values()
            if (not text or text in f"{d.title} {d.description} {' '.join(d.tags)} {d.url}".lower())
            and all(set(value(d, f)) & set(vs) for f, vs in query.filters.items() if vs)
        ]
        facets = {f: dict(Counter(v for d in hits for v in value(d, f))) for f in FACETS}
        return SearchPage(
            tuple(hits[query.offset : query.offset + query.limit]), len(hits), query.limit, query.offset, facets
        )

    def record_job(self, job: JobRecord) -> JobRecord:
        self.jobs[job.job_id] = job
        return job

    def get_job(self, job_id: str) -> JobRecord:
        return self.jobs[job_id]

    def lineage(self, dataset_id: str, *, direction: str = "both", depth: int = 5) -> LineageGraph:
        edges: list[LineageEdge] = []
        for j in self.jobs.values():
            edges += [LineageEdge(f"dataset:{i.dataset_id}", f"job:{j.job_id}", "input") for i in j.inputs]
            edges += [LineageEdge(f"job:{j.job_id}", f"dataset:{o}", "output") for o in j.outputs]
        ids = {e.source.split(":", 1)[1] for e in edges} | {e.target.split(":", 1)[1] for e in edges}
        return LineageGraph(
            dataset_id, tuple(d for d in self.datasets.values() if d.id in ids), tuple(self.jobs.values()), tuple(edges)
        )

    def request_access(
        self, dataset_id: str, *, actor: str, purpose: str, expires: datetime | None = None
    ) -> DataAccessRequest:
        self.get(dataset_id)
        r = DataAccessRequest(
            f"ar-{next(self._ids)}", dataset_id, actor, purpose, "pending", datetime.now(UTC), "1", expires
        )
        self.requests[r.id] = r
        return r

    def decide(
        self, request_id: str, *, approve: bool, actor: str, if_match: str, reason: str = ""
    ) -> DataAccessRequest:
        r = self.requests[request_id]
        if r.etag != if_match:
            raise PreconditionFailed(request_id, if_match, r.etag)
        r = replace(
            r,
            status="approved" if approve else "rejected",
            decided_by=actor,
            reason=reason,
            etag=str(int(r.etag) + 1),
            decided_at=datetime.now(UTC),
        )
        self.requests[request_id] = r
        return r

    def access_requests(
        self, *, dataset_id: str | None = None, requester: str | None = None, status: str | None = None
    ) -> Sequence[DataAccessRequest]:
        return [
            r
            for r in self.requests.values()
            if (dataset_id is None or r.dataset_id == dataset_id)
            and (requester is None or r.requester == requester)
            and (status is None or r.status == status)
        ]

    def close(self) -> None:
        pass
