"""Metadata extracted automatically from what a URL holds (connector index facts, stream history).

``register(url)`` without ``facts`` calls :func:`extract`. Implemented in issue 13's
``catmeta`` work; until then it raises :class:`NotImplementedError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xtremehub.catalog.model import Distribution, HealthFields
from xtremehub.config import Settings

__all__ = ["Extracted", "extract"]


@dataclass(frozen=True)
class Extracted:
    """What :func:`extract` learned about one URL.

    Attributes:
        format: the connector format name.
        source_version: the object's etag (or the stream cut) the facts describe.
        facts: JSON-able metadata (reads, bases, contigs, spectra, m/z range, bounds, bands, CRS...).
        distributions: at least the URL itself with size and checksum when known.
        health: HealthDCAT-AP fields the connector knows (e.g. number of records), or None.
        title: a suggested title (e.g. the file name).
    """

    format: str
    source_version: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    distributions: tuple[Distribution, ...] = ()
    health: HealthFields | None = None
    title: str = ""


def extract(url: str, *, settings: Settings | None = None, format: str | None = None) -> Extracted:
    """Index ``url`` with its connector (or read the stream's history) and return its facts.

    Raises:
        ObjectNotFound: nothing at ``url``.
        UnsupportedData: no connector knows the format (name ``format=`` to force one).
        StaleIndex: the object changed while it was being indexed.
    """
    raise NotImplementedError("catalog.extract is being built (issue 13)")
