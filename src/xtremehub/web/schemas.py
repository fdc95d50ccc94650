"""Request and response bodies of the catalog endpoints (pydantic models: the OpenAPI schemas).

Request models forbid unknown fields (``extra="forbid"``: a misspelt field is a 422 naming it,
never silently ignored) and bound every string and list, so a very long value is a clear 422
before it reaches the catalog. Response models are built from the catalog's frozen values
(:mod:`xtremehub.catalog.model`) with the ``from_*`` functions. Text (titles, descriptions,
tags) is returned as data, exactly as stored: HTML in it is escaped by whoever renders it.

Example:
    >>> DatasetCreate(url="s3://lab/reads.fastq.gz").url
    's3://lab/reads.fastq.gz'
    >>> DatasetCreate(url="s3://lab/x", colour="red")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DatasetCreate
    colour
      Extra inputs are not permitted ...
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from xtremehub.catalog.model import (
    DataAccessRequest,
    Dataset,
    DatasetVersion,
    Distribution,
    HealthFields,
    JobRecord,
    LineageGraph,
    SearchPage,
)

__all__ = [
    "AccessDecisionIn",
    "AccessRequestIn",
    "AccessRequestOut",
    "DatasetCreate",
    "DatasetOut",
    "DatasetPatchIn",
    "DistributionModel",
    "HealthModel",
    "JobRecordOut",
    "LineageOut",
    "SearchPageOut",
    "VersionOut",
]

Text = Annotated[str, Field(max_length=10_000)]
Short = Annotated[str, Field(min_length=1, max_length=500)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]
Url = Annotated[str, Field(min_length=1, max_length=4096)]
#: A URL handed to a store: no control characters, backslashes or percent-escapes (``..``
#: segments are refused by :func:`~xtremehub.web.urls.checked_url`).
SafeUrl = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f\\%]+$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class DistributionModel(_In):
    """One way to get a version's bytes (DCAT distribution)."""

    url: Url
    format: Annotated[str, Field(min_length=1, max_length=100)]
    media_type: Annotated[str, Field(max_length=200)] | None = None
    size: Annotated[int, Field(ge=0)] | None = None
    checksum: Annotated[str, Field(max_length=200)] | None = None

    def to_model(self) -> Distribution:
        return Distribution(**self.model_dump())


class HealthModel(_In):
    """HealthDCAT-AP fields (all optional)."""

    health_category: Annotated[list[Tag], Field(max_length=50)] = []
    number_of_records: Annotated[int, Field(ge=0)] | None = None
    number_of_unique_individuals: Annotated[int, Field(ge=0)] | None = None
    population_coverage: Annotated[str, Field(max_length=1000)] | None = None

    def to_model(self) -> HealthFields:
        data = self.model_dump()
        data["health_category"] = tuple(data["health_category"])
        return HealthFields(**data)


class DatasetCreate(_In):
    """Register a dataset: ``url`` alone (its facts are extracted by the connector) or with fields.

    Giving ``facts`` (and optionally ``source_version``) registers them as given, without
    reading the object.
    """

    url: SafeUrl
    kind: Literal["object", "prefix", "stream", "derived"] = "object"
    title: Annotated[str, Field(max_length=500)] | None = None
    description: Text = ""
    tags: Annotated[list[Tag], Field(max_length=100)] = []
    licence: Annotated[str, Field(max_length=500)] | None = None
    format: Annotated[str, Field(max_length=100)] | None = None
    facts: dict[str, Any] | None = None
    distributions: Annotated[list[DistributionModel], Field(max_length=100)] = []
    source_version: Annotated[str, Field(max_length=1000)] | None = None
    health: HealthModel | None = None


class DatasetPatchIn(_In):
    """The user-editable fields; a field left out is left as it is."""

    title: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    description: Text | None = None
    tags: Annotated[list[Tag], Field(max_length=100)] | None = None
    licence: Annotated[str, Field(max_length=500)] | None = None
    health: HealthModel | None = None


class DistributionOut(_Out):
    url: str
    format: str
    media_type: str | None = None
    size: int | None = None
    checksum: str | None = None


class HealthOut(_Out):
    health_category: list[str] = []
    number_of_records: int | None = None
    number_of_unique_individuals: int | None = None
    population_coverage: str | None = None


class DatasetOut(_Out):
    """A catalog entry; ``etag`` is what ``If-Match`` must carry to update it."""

    id: str
    kind: str
    url: str
    title: str
    owner: str
    created: datetime
    modified: datetime
    etag: str
    description: str = ""
    tags: list[str] = []
    licence: str | None = None
    format: str | None = None
    latest_version: int = 0
    facts: dict[str, Any] = {}
    health: HealthOut | None = None


class VersionOut(_Out):
    dataset_id: str
    number: int
    source_version: str
    created: datetime
    distributions: list[DistributionOut] = []
    facts: dict[str, Any] = {}


class SearchPageOut(_Out):
    """One page of results, the total count and the facet counts over all matches."""

    items: list[DatasetOut]
    total: int
    limit: int
    offset: int
    facets: dict[str, dict[str, int]] = {}
    next: str | None = Field(None, description="the next page's URL, if there is one")


class InputRefOut(_Out):
    dataset_id: str
    version: int
    slices: list[str] = []


class JobRecordOut(_Out):
    job_id: str
    function: str
    owner: str
    started: datetime
    finished: datetime
    status: str
    code_measurement: str | None = None
    parameters: dict[str, Any] = {}
    telemetry: dict[str, Any] = {}
    inputs: list[InputRefOut] = []
    outputs: list[str] = []


class LineageEdgeOut(_Out):
    source: str
    target: str
    kind: str


class LineageOut(_Out):
    root: str
    datasets: list[DatasetOut] = []
    jobs: list[JobRecordOut] = []
    edges: list[LineageEdgeOut] = []


class AccessRequestIn(_In):
    """Ask for access to a dataset for a stated purpose (until ``expires``, if given)."""

    purpose: Short
    expires: datetime | None = None


class AccessDecisionIn(_In):
    """The owner's (or an admin's) reason for approving or rejecting."""

    reason: Annotated[str, Field(max_length=2000)] = ""


class AccessRequestOut(_Out):
    id: str
    dataset_id: str
    requester: str
    purpose: str
    status: str
    created: datetime
    etag: str
    expires: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""
    policy_id: str | None = None


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON-able dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dataset_out(ds: Dataset) -> DatasetOut:
    return DatasetOut.model_validate(_plain(ds))


def version_out(v: DatasetVersion) -> VersionOut:
    return VersionOut.model_validate(_plain(v))


def job_out(job: JobRecord) -> JobRecordOut:
    return JobRecordOut.model_validate(_plain(job))


def lineage_out(graph: LineageGraph) -> LineageOut:
    return LineageOut.model_validate(_plain(graph))


def access_out(req: DataAccessRequest) -> AccessRequestOut:
    return AccessRequestOut.model_validate(_plain(req))


def page_out(page: SearchPage, next_url: str | None) -> SearchPageOut:
    return SearchPageOut(
        items=[dataset_out(d) for d in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        facets={k: dict(v) for k, v in page.facets.items()},
        next=next_url,
    )
