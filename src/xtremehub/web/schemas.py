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

#: One line of text: no control characters (the catalog refuses them).
LINE = r"^[^\x00-\x1f\x7f]*$"
#: Text that may span lines (tabs and newlines allowed, other control characters not).
MULTILINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
_C = r"[^/\x00-\x1f\x7f\\%]"  # a character of a path segment
_N = r"[^/.\x00-\x1f\x7f\\%]"  # the same but not a dot
#: A path segment other than ``.`` and ``..`` (or empty).
_SEGMENT = rf"({_N}{_C}*|\.{_N}{_C}*|\.\.{_C}+)?"
#: ``file://`` (any path follows) or ``<scheme>://<bucket>`` (a bucket is never empty, ``.`` or ``..``).
_ROOT = rf"(file://|[A-Za-z][A-Za-z0-9+.-]*://({_N}{_C}*|\.{_N}{_C}*|\.\.{_C}+))"
#: A storage URL or path a store may see: no ``.``/``..`` segment, control character, backslash
#: or percent-escape (:func:`~xtremehub.web.urls.checked_url` checks the same in code).
SAFE_PATH = rf"^({_ROOT}(/{_SEGMENT})*|{_SEGMENT}(/{_SEGMENT})*)$"
#: The same with a scheme, as the catalog registers (``scheme://...``).
SAFE_URL = rf"^{_ROOT}(/{_SEGMENT})*$"

Text = Annotated[str, Field(max_length=20_000, pattern=MULTILINE)]
Short = Annotated[str, Field(min_length=1, max_length=500, pattern=LINE)]
Tag = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$")
]
Line256 = Annotated[str, Field(max_length=256, pattern=LINE)]
Url = Annotated[str, Field(min_length=1, max_length=2048, pattern=LINE)]
SafeUrl = Annotated[str, Field(min_length=4, max_length=2048, pattern=SAFE_URL)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class DistributionModel(_In):
    """One way to get a version's bytes (DCAT distribution)."""

    url: Url
    format: Annotated[str, Field(min_length=1, max_length=64, pattern=LINE)]
    media_type: Line256 | None = None
    size: Annotated[int, Field(ge=0)] | None = None
    checksum: Line256 | None = None

    def to_model(self) -> Distribution:
        return Distribution(**self.model_dump())


class HealthModel(_In):
    """HealthDCAT-AP fields (all optional)."""

    health_category: Annotated[list[Tag], Field(max_length=50)] = []
    number_of_records: Annotated[int, Field(ge=0)] | None = None
    number_of_unique_individuals: Annotated[int, Field(ge=0)] | None = None
    population_coverage: Annotated[str, Field(max_length=1000, pattern=LINE)] | None = None

    def to_model(self) -> HealthFields:
        data = self.model_dump()
        data["health_category"] = tuple(data["health_category"])
        return HealthFields(**data)


class DatasetCreate(_In):
    """Register a dataset: ``url`` alone (its facts are extracted by the connector) or with fields.

    Giving ``facts`` and ``source_version`` registers them as given, without reading the object;
    a URL that is already registered gets a new version when ``source_version`` is new.
    """

    url: SafeUrl
    kind: Literal["object", "prefix", "stream", "derived"] = "object"
    title: Annotated[str, Field(max_length=500, pattern=LINE)] | None = None
    description: Text = ""
    tags: Annotated[list[Tag], Field(max_length=64)] = []
    licence: Line256 | None = None
    format: Annotated[str, Field(max_length=64, pattern=LINE)] | None = None
    facts: dict[str, Any] | None = None
    distributions: Annotated[list[DistributionModel], Field(max_length=100)] = []
    source_version: Line256 | None = None
    health: HealthModel | None = None


class DatasetPatchIn(_In):
    """The user-editable fields; a field left out is left as it is."""

    title: Annotated[str, Field(min_length=1, max_length=500, pattern=LINE)] | None = None
    description: Text | None = None
    tags: Annotated[list[Tag], Field(max_length=64)] | None = None
    licence: Line256 | None = None
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
    """One page of results, the total count and the facet counts over the matches."""

    items: list[DatasetOut]
    total: int = Field(description="how many datasets match (at least this many with total_is_lower_bound)")
    limit: int
    offset: int
    facets: dict[str, dict[str, int]] = {}
    total_is_lower_bound: bool = Field(
        False, description="counting stopped at total (10,000): more datasets match, as '10,000+'"
    )
    facets_are_lower_bounds: bool = Field(
        False, description="the facet counts are over the first 2,000 matches only: each is at least this"
    )
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

    reason: Annotated[str, Field(max_length=500, pattern=LINE)] = ""


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
        total_is_lower_bound=page.total_is_lower_bound,
        facets_are_lower_bounds=page.facets_are_lower_bounds,
        next=next_url,
    )
