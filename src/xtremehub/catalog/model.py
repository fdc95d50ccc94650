"""What the catalog stores: datasets, their versions and distributions, jobs, lineage, access requests.

Plain frozen values, shared by the store (SQLite/PostgreSQL), the DCAT-AP export, the REST API
and the cockpit. Nothing here talks to a database.

A dataset is a thing people look for (an object, a prefix, a stream or a job's output). Each new
etag of the object (or cut of the stream) makes a new :class:`DatasetVersion` that keeps the
facts the connector extracted from that content. The :attr:`Dataset.etag` is the *record's*
version for optimistic concurrency (``If-Match``), unrelated to the object's etag.

Example:
    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 12, 6, tzinfo=timezone.utc)
    >>> ds = Dataset(id="ds-1", kind="object", url="s3://lab/reads.fastq.gz", title="Run 7 reads",
    ...              owner="alice", created=t, modified=t, etag="1", format="fastq.gz")
    >>> ds.tags, ds.latest_version
    ((), 0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from xtremehub.security.residual import Condition

__all__ = [
    "AccessRequestStatus",
    "DataAccessRequest",
    "Dataset",
    "DatasetKind",
    "DatasetPatch",
    "DatasetVersion",
    "Distribution",
    "HealthFields",
    "InputRef",
    "JobRecord",
    "LineageEdge",
    "LineageGraph",
    "SearchPage",
    "SearchQuery",
]

DatasetKind = Literal["object", "prefix", "stream", "derived"]
AccessRequestStatus = Literal["pending", "approved", "rejected", "revoked", "expired"]

#: Facets a search can filter on and count (``SearchPage.facets`` keys).
FACETS: tuple[str, ...] = ("format", "owner", "tag", "licence", "kind")


@dataclass(frozen=True)
class Distribution:
    """One way to get a dataset version's bytes (DCAT ``dcat:Distribution``).

    Attributes:
        url: where the bytes are (any XtremeHub storage URL, or a stream URL).
        format: the connector format name (``fastq.gz``, ``vcf.gz``, ``imzml``, ``laz``, ``cog``...).
        media_type: IANA media type when one exists.
        size: bytes (None for a stream).
        checksum: ``"<algorithm>:<hex>"`` (``md5:``, ``sha256:``), or None when unknown.
    """

    url: str
    format: str
    media_type: str | None = None
    size: int | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class HealthFields:
    """HealthDCAT-AP fields, filled where the connector knows them (all optional)."""

    health_category: tuple[str, ...] = ()
    number_of_records: int | None = None
    number_of_unique_individuals: int | None = None
    population_coverage: str | None = None


@dataclass(frozen=True)
class DatasetVersion:
    """One content version of a dataset.

    Attributes:
        dataset_id: the dataset.
        number: 1, 2, ... in registration order.
        source_version: the object's etag, or the stream cut (serialised) this version is.
        created: when it was registered.
        distributions: where its bytes are.
        facts: the metadata the connector extracted (reads, bases, contigs, spectra, bounds...).
    """

    dataset_id: str
    number: int
    source_version: str
    created: datetime
    distributions: tuple[Distribution, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """A catalog entry (DCAT ``dcat:Dataset``).

    Attributes:
        id: catalog id (stable, URL-safe).
        kind: object, prefix, stream or derived (a job's output).
        url: the primary URL (object, prefix or stream).
        title, description, owner, tags, licence: what people search and read.
        created, modified: UTC times.
        etag: the record's version for ``If-Match`` (changes on every update).
        format: the connector format, if one applies.
        latest_version: number of the newest :class:`DatasetVersion` (0: none yet).
        facts: the newest version's extracted metadata.
        health: HealthDCAT-AP fields, if any.
    """

    id: str
    kind: DatasetKind
    url: str
    title: str
    owner: str
    created: datetime
    modified: datetime
    etag: str
    description: str = ""
    tags: tuple[str, ...] = ()
    licence: str | None = None
    format: str | None = None
    latest_version: int = 0
    facts: Mapping[str, Any] = field(default_factory=dict)
    health: HealthFields | None = None

    @property
    def key_name(self) -> str:
        """The dataset's name at the key service: its catalog id (a valid key-service dataset name).

        The key service keeps the dataset's KEK and key policy under this name; a job reading the
        dataset's encrypted data asks for ``Resource("key", key_name)``, which lies inside
        ``XHub::Dataset::"<id>"``, so an approved access request (a usage policy on the dataset)
        permits the release for its purpose until its expiry.
        """
        return self.id


@dataclass(frozen=True)
class DatasetPatch:
    """The user-editable fields of a dataset; None leaves a field as it is."""

    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] | None = None
    licence: str | None = None
    health: HealthFields | None = None


@dataclass(frozen=True)
class InputRef:
    """A dataset version a job read, and which slices of it (empty: all of it)."""

    dataset_id: str
    version: int
    slices: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobRecord:
    """A job as lineage sees it: what ran, on what, producing what.

    Attributes:
        job_id: the executor's job id.
        function: qualified name of the mapped function.
        owner: who submitted it.
        started, finished: UTC times.
        status: ``succeeded`` or ``failed``.
        code_measurement: ``xtremehub.security.keys.measure(func)`` digest, when known.
        parameters: JSON-able parameters of the job.
        telemetry: JSON-able summary (calls, durations, bytes read/written, peak RSS).
        inputs: dataset versions read.
        outputs: ids of the datasets it wrote (registered as ``kind="derived"``).
    """

    job_id: str
    function: str
    owner: str
    started: datetime
    finished: datetime
    status: Literal["succeeded", "failed"] = "succeeded"
    code_measurement: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    telemetry: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[InputRef, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class LineageEdge:
    """``source`` -> ``target``: a dataset read by a job (``input``) or written by one (``output``).

    Node ids are ``dataset:<id>`` and ``job:<job_id>``.
    """

    source: str
    target: str
    kind: Literal["input", "output"]


@dataclass(frozen=True)
class LineageGraph:
    """Upstream and/or downstream of a dataset, to a depth."""

    root: str
    datasets: tuple[Dataset, ...] = ()
    jobs: tuple[JobRecord, ...] = ()
    edges: tuple[LineageEdge, ...] = ()


@dataclass(frozen=True)
class DataAccessRequest:
    """A request to use a dataset for a purpose (the data-space contract flow, simplified).

    Approval writes a usage policy (purpose and expiry) into the security policy engine;
    :attr:`policy_id` names it.
    """

    id: str
    dataset_id: str
    requester: str
    purpose: str
    status: AccessRequestStatus
    created: datetime
    etag: str
    expires: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""
    policy_id: str | None = None


@dataclass(frozen=True)
class SearchQuery:
    """Full text plus facet filters (values within a facet OR, facets AND), paginated.

    ``visible``: only datasets for which this condition (over id, owner, kind and tags) holds
    count and are listed; the REST API sets it from the caller's policies
    (:meth:`~xtremehub.security.policy.CedarAuthorizer.readable`). None: every dataset.
    """

    text: str = ""
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    limit: int = 20
    offset: int = 0
    visible: Condition | None = None


@dataclass(frozen=True)
class SearchPage:
    """One page of results, the total count and the facet counts over the matches.

    Attributes:
        total: how many datasets match; with ``total_is_lower_bound``, at least that many
            (counting stopped there, as Elasticsearch's ``track_total_hits``).
        facets: per facet, the most frequent values and their counts; with
            ``facets_are_lower_bounds`` they were counted over the first matches only (each
            count is at least what is shown).
    """

    items: tuple[Dataset, ...]
    total: int
    limit: int
    offset: int
    facets: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    total_is_lower_bound: bool = False
    facets_are_lower_bounds: bool = False
