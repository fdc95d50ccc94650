"""Database rows to the catalog's frozen values (:mod:`xtremehub.catalog.model`) and back.

Example:
    >>> from datetime import datetime
    >>> utc(datetime(2026, 12, 6, 12, 0)).isoformat()
    '2026-12-06T12:00:00+00:00'
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from xtremehub.catalog.model import DataAccessRequest, Dataset, DatasetVersion, Distribution, HealthFields, JobRecord

__all__ = [
    "access_request",
    "dataset",
    "distributions_json",
    "health_json",
    "job",
    "new_etag",
    "new_id",
    "now",
    "utc",
    "version",
]


def now() -> datetime:
    """The current UTC time (microseconds)."""
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC time (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_etag() -> str:
    """A fresh record etag (random: a deleted and re-created record never reuses one)."""
    return secrets.token_hex(8)


def new_id(prefix: str) -> str:
    """A new URL-safe id such as ``ds-3f9a0c2e41d7b855``."""
    return f"{prefix}-{secrets.token_hex(8)}"


def health_json(health: HealthFields | None) -> dict[str, Any] | None:
    if health is None:
        return None
    out = dataclasses.asdict(health)
    out["health_category"] = list(health.health_category)
    return out


def _health(raw: Mapping[str, Any] | None) -> HealthFields | None:
    if raw is None:
        return None
    return HealthFields(
        health_category=tuple(raw.get("health_category") or ()),
        number_of_records=raw.get("number_of_records"),
        number_of_unique_individuals=raw.get("number_of_unique_individuals"),
        population_coverage=raw.get("population_coverage"),
    )


def distributions_json(dists: tuple[Distribution, ...]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(d) for d in dists]


def dataset(row: Any) -> Dataset:
    m = row._mapping
    return Dataset(
        id=m["id"],
        kind=m["kind"],
        url=m["url"],
        title=m["title"],
        owner=m["owner"],
        created=utc(m["created"]),
        modified=utc(m["modified"]),
        etag=m["etag"],
        description=m["description"],
        tags=tuple(m["tags"]),
        licence=m["licence"],
        format=m["format"],
        latest_version=m["latest_version"],
        facts=m["facts"],
        health=_health(m["health"]),
    )


def version(row: Any, dataset_id: str) -> DatasetVersion:
    m = row._mapping
    return DatasetVersion(
        dataset_id=dataset_id,
        number=m["number"],
        source_version=m["source_version"],
        created=utc(m["created"]),
        distributions=tuple(Distribution(**d) for d in m["distributions"]),
        facts=m["facts"],
    )


def job(row: Any, inputs: tuple[Any, ...], outputs: tuple[str, ...]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        job_id=m["job_id"],
        function=m["function"],
        owner=m["owner"],
        started=utc(m["started"]),
        finished=utc(m["finished"]),
        status=m["status"],
        code_measurement=m["code_measurement"],
        parameters=m["parameters"],
        telemetry=m["telemetry"],
        inputs=inputs,
        outputs=outputs,
    )


def access_request(row: Any, dataset_id: str) -> DataAccessRequest:
    """The request of ``row``; an approval past its expiry reads as ``expired`` (its policy no
    longer permits anything: the policy carries the same expiry)."""
    m = row._mapping
    status = m["status"]
    if status == "approved" and m["expires"] is not None and utc(m["expires"]) <= now():
        status = "expired"
    return DataAccessRequest(
        id=m["id"],
        dataset_id=dataset_id,
        requester=m["requester"],
        purpose=m["purpose"],
        status=status,
        created=utc(m["created"]),
        etag=m["etag"],
        expires=utc(m["expires"]) if m["expires"] is not None else None,
        decided_by=m["decided_by"],
        decided_at=utc(m["decided_at"]) if m["decided_at"] is not None else None,
        reason=m["reason"],
        policy_id=m["policy_id"],
    )
