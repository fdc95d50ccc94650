"""The data catalog (the Data Broker): datasets, extracted metadata, versions, lineage, search,
access requests and DCAT-AP export.

Fed by the layers below (connector indexes give metadata, the executor gives lineage) and read by
the REST API and the cockpit (:mod:`xtremehub.web`); nothing below the catalog imports it.
"""

from __future__ import annotations

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
]
