"""The data catalog (the Data Broker): datasets, extracted metadata, versions, lineage, search,
access requests and DCAT-AP export.

Fed by the layers below (connector indexes give metadata, the executor gives lineage) and read by
the REST API and the cockpit (:mod:`xtremehub.web`); nothing below the catalog imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xtremehub.catalog.api import CatalogAPI
from xtremehub.catalog.model import (
    DataAccessRequest,
    Dataset,
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

__all__ = [
    "CatalogAPI",
    "DataAccessRequest",
    "Dataset",
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
    "open_catalog",
]

if TYPE_CHECKING:
    from xtremehub.catalog.store import SqlCatalog


def open_catalog(url: str | None = None, **kwargs: Any) -> SqlCatalog:
    """Open the catalog (SQLite by default, PostgreSQL by URL); see
    :func:`xtremehub.catalog.store.open_catalog` (imported on first use: it needs SQLAlchemy).

    Example:
        >>> cat = open_catalog("sqlite:///:memory:")
        >>> cat.search(SearchQuery()).total
        0
        >>> cat.close()
    """
    from xtremehub.catalog.store import open_catalog as _open

    return _open(url, **kwargs)
