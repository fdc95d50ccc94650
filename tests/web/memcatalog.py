"""A tiny in-memory :class:`~xtremehub.catalog.api.CatalogAPI` for the web tests that do not
need the real store (the real SQLite store is used by the tests marked so in conftest)."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from xtremehub.catalog.model import (
    DataAccessRequest,
    Dataset,
    DatasetKind,
    DatasetPatch,
    DatasetVersion,
    Distribution,
    HealthFields,
    JobRecord,
    LineageEdge,
    LineageGraph,
    SearchPage,
    SearchQuery,
)
from xtremehub.errors import DatasetNotFound, InvalidMetadata, PreconditionFailed


class MemoryCatalog:
    """Datasets, versions, jobs and access requests in dicts, with etags and If-Match."""

    def __init__(self) -> None:
        self.datasets: dict[str, Dataset] = {}
        self.vers: dict[str, list[DatasetVersion]] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.requests: dict[str, DataAccessRequest] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

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
    ) -> Dataset:
        if facts is None:
            from xtremehub import storage
            from xtremehub.catalog.extract import extract

            try:
                found = extract(url)
                facts, source_version, format = found.facts, found.source_version, format or found.format
            except NotImplementedError:  # before catalog.extract exists: what head() says
                info = storage.head(url)
                facts, source_version = {"size": info.size}, info.etag or str(info.size)
        now = datetime.now(UTC)
        with self._lock:
            n = next(self._ids)
            ds = Dataset(
                id=f"ds-{n}", kind=kind, url=url, title=title or url.rsplit("/", 1)[-1], owner=actor,
                created=now, modified=now, etag=str(n), description=description, tags=tuple(tags),
                licence=licence, format=format, latest_version=1, facts=dict(facts), health=health,
            )  # fmt: skip
            self.datasets[ds.id] = ds
            self.vers[ds.id] = [DatasetVersion(ds.id, 1, source_version or "v1", now, tuple(distributions), facts)]
            return ds

    def get(self, dataset_id: str) -> Dataset:
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise DatasetNotFound(dataset_id) from None

    def find_by_url(self, url: str) -> Dataset | None:
        return next((d for d in self.datasets.values() if d.url == url), None)

    def update(self, dataset_id: str, patch: DatasetPatch, *, actor: str, if_match: str) -> Dataset:
        with self._lock:
            ds = self.get(dataset_id)
            if ds.etag != if_match:
                raise PreconditionFailed(dataset_id, if_match, ds.etag)
            changes = {k: v for k, v in dataclasses.asdict(patch).items() if v is not None}
            if "health" in changes:
                changes["health"] = patch.health
            if "tags" in changes:
                changes["tags"] = tuple(changes["tags"])
            new = dataclasses.replace(ds, **changes, etag=str(next(self._ids)), modified=datetime.now(UTC))
            self.datasets[dataset_id] = new
            return new

    def delete(self, dataset_id: str, *, actor: str, if_match: str) -> None:
        with self._lock:
            ds = self.get(dataset_id)
            if ds.etag != if_match:
                raise PreconditionFailed(dataset_id, if_match, ds.etag)
            del self.datasets[dataset_id]

    def versions(self, dataset_id: str) -> Sequence[DatasetVersion]:
        self.get(dataset_id)
        return tuple(self.vers[dataset_id])

    def search(self, query: SearchQuery) -> SearchPage:
        text = query.text.lower()
        hits = [
            d for d in self.datasets.values()
            if text in f"{d.title} {d.description} {' '.join(d.tags)}".lower()
            and all(_facet(d, k) & set(v) for k, v in query.filters.items())
        ]  # fmt: skip
        facets: dict[str, dict[str, int]] = {}
        for d in hits:
            for name in ("format", "owner", "tag", "licence", "kind"):
                for value in _facet(d, name):
                    facets.setdefault(name, {}).setdefault(value, 0)
                    facets[name][value] += 1
        items = tuple(hits[query.offset : query.offset + query.limit])
        return SearchPage(items, len(hits), query.limit, query.offset, facets)

    def record_job(self, job: JobRecord) -> JobRecord:
        self.jobs[job.job_id] = job
        return job

    def get_job(self, job_id: str) -> JobRecord:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise DatasetNotFound(job_id, "job") from None

    def lineage(
        self, dataset_id: str, *, direction: Literal["up", "down", "both"] = "both", depth: int = 5
    ) -> LineageGraph:
        root = self.get(dataset_id)
        edges: list[LineageEdge] = []
        jobs: list[JobRecord] = []
        for job in self.jobs.values():
            if direction in ("up", "both") and dataset_id in job.outputs:
                jobs.append(job)
                edges += [LineageEdge(f"dataset:{i.dataset_id}", f"job:{job.job_id}", "input") for i in job.inputs]
                edges.append(LineageEdge(f"job:{job.job_id}", f"dataset:{dataset_id}", "output"))
            if direction in ("down", "both") and any(i.dataset_id == dataset_id for i in job.inputs):
                jobs.append(job)
                edges.append(LineageEdge(f"dataset:{dataset_id}", f"job:{job.job_id}", "input"))
                edges += [LineageEdge(f"job:{job.job_id}", f"dataset:{o}", "output") for o in job.outputs]
        ids = {e.source.split(":", 1)[1] for e in edges if e.source.startswith("dataset:")}
        ids |= {e.target.split(":", 1)[1] for e in edges if e.target.startswith("dataset:")}
        datasets = tuple(self.datasets[i] for i in sorted(ids | {root.id}) if i in self.datasets)
        return LineageGraph(f"dataset:{root.id}", datasets, tuple(jobs), tuple(edges))

    def request_access(
        self, dataset_id: str, *, actor: str, purpose: str, expires: datetime | None = None
    ) -> DataAccessRequest:
        self.get(dataset_id)
        if not purpose.strip():
            raise InvalidMetadata("purpose", "a purpose is required")
        with self._lock:
            n = next(self._ids)
            req = DataAccessRequest(
                f"ar-{n}", dataset_id, actor, purpose, "pending", datetime.now(UTC), str(n), expires
            )
            self.requests[req.id] = req
            return req

    def decide(
        self, request_id: str, *, approve: bool, actor: str, if_match: str, reason: str = ""
    ) -> DataAccessRequest:
        with self._lock:
            try:
                req = self.requests[request_id]
            except KeyError:
                raise DatasetNotFound(request_id, "access request") from None
            if req.etag != if_match:
                raise PreconditionFailed(request_id, if_match, req.etag)
            new = dataclasses.replace(
                req, status="approved" if approve else "rejected", decided_by=actor, decided_at=datetime.now(UTC),
                reason=reason, etag=str(next(self._ids)), policy_id=f"access-{request_id}" if approve else None,
            )  # fmt: skip
            self.requests[request_id] = new
            return new

    def access_requests(
        self, *, dataset_id: str | None = None, requester: str | None = None, status: str | None = None
    ) -> Sequence[DataAccessRequest]:
        return tuple(
            r for r in self.requests.values()
            if (dataset_id is None or r.dataset_id == dataset_id)
            and (requester is None or r.requester == requester)
            and (status is None or r.status == status)
        )  # fmt: skip

    def close(self) -> None:
        pass


def _facet(d: Dataset, name: str) -> set[str]:
    if name == "tag":
        return set(d.tags)
    value = getattr(d, name, None)
    return {value} if isinstance(value, str) else set()
