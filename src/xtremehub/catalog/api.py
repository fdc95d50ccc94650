"""The catalog's operations, as the REST API, the CLI, the executor and the pipelines use them.

:class:`CatalogAPI` is the contract; :func:`xtremehub.catalog.open_catalog` returns the
implementation on SQLite (embedded default) or PostgreSQL. Every mutating method takes the
acting identity's subject (``actor``), is audited, and refuses a stale ``if_match`` etag with
:class:`~xtremehub.errors.PreconditionFailed` (never a silent overwrite). A database that is
gone raises :class:`~xtremehub.errors.CatalogUnavailable` and leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from xtremehub.catalog.model import (
    DataAccessRequest,
    Dataset,
    DatasetKind,
    DatasetPatch,
    DatasetVersion,
    Distribution,
    HealthFields,
    JobRecord,
    LineageGraph,
    SearchPage,
    SearchQuery,
)

__all__ = ["CatalogAPI"]


class CatalogAPI(Protocol):
    """Register, find, version, trace and govern datasets."""

    # -- datasets ------------------------------------------------------------------------------
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
        """Register ``url`` (or add a version when it is registered and its content changed).

        A new version of a URL someone else registered needs ``admin`` in ``roles`` (or a
        ``[catalog] admins`` entry); a ``kind`` other than the registered one is refused.

        ``facts``/``source_version`` None: the connector indexes the object and extracts them
        (an ``xhub-stream://<scope>/<stream>`` URL: the facts of the stream's history up to its
        tail cut, see :mod:`xtremehub.catalog.streams`; a stream URL is a ``stream`` dataset).
        """
        ...

    def get(self, dataset_id: str) -> Dataset: ...

    def find_by_url(self, url: str) -> Dataset | None: ...

    def update(self, dataset_id: str, patch: DatasetPatch, *, actor: str, if_match: str) -> Dataset: ...

    def delete(self, dataset_id: str, *, actor: str, if_match: str) -> None: ...

    def versions(self, dataset_id: str) -> Sequence[DatasetVersion]: ...

    def search(self, query: SearchQuery) -> SearchPage: ...

    # -- lineage -------------------------------------------------------------------------------
    def record_job(self, job: JobRecord) -> JobRecord: ...

    def get_job(self, job_id: str) -> JobRecord: ...

    def list_jobs(self, *, limit: int = 1000) -> Sequence[JobRecord]:
        """The ``limit`` (1..10,000) most recently started jobs, oldest first."""
        ...

    def job_page(
        self, *, limit: int, offset: int = 0, exclude: Collection[str] = ()
    ) -> tuple[Sequence[JobRecord], int]:
        """Jobs in the order they started (oldest first), leaving out ``exclude``: the ``limit``
        (0..10,000) from ``offset`` on, and how many jobs there are in that order."""
        ...

    def lineage(
        self, dataset_id: str, *, direction: Literal["up", "down", "both"] = "both", depth: int = 5
    ) -> LineageGraph: ...

    # -- access requests -----------------------------------------------------------------------
    def request_access(
        self, dataset_id: str, *, actor: str, purpose: str, expires: datetime | None = None
    ) -> DataAccessRequest: ...

    def decide(
        self,
        request_id: str,
        *,
        approve: bool,
        actor: str,
        if_match: str,
        reason: str = "",
        roles: Collection[str] = (),
    ) -> DataAccessRequest:
        """Approve (writes a usage policy with purpose and expiry) or reject; the dataset's owner or
        an admin (``roles`` holding ``admin``, as the caller's identity says) only."""
        ...

    def access_requests(
        self, *, dataset_id: str | None = None, requester: str | None = None, status: str | None = None
    ) -> Sequence[DataAccessRequest]: ...

    def on_policy_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each usage policy this catalog writes or removes; returns the
        unsubscribe function (an app reloads its authorizer so, applying an approval at once)."""
        ...

    def close(self) -> None: ...
