"""Connectors: cloud-aware indexing and on-the-fly partitioning of scientific files.

Example:
    >>> from xtremehub.connectors import CloudObject, known_formats
    >>> "fastq_gzip" in known_formats()
    True
"""

from __future__ import annotations

from xtremehub.connectors.base import DataSlice, Format, Index, Strategy
from xtremehub.connectors.cloudobject import CloudObject
from xtremehub.connectors.codecs.mapper import Mapper, as_mapper, starmap
from xtremehub.connectors.registry import format_class, known_formats, register_format

__all__ = [
    "CloudObject",
    "DataSlice",
    "Format",
    "Index",
    "Mapper",
    "Strategy",
    "as_mapper",
    "format_class",
    "known_formats",
    "register_format",
    "starmap",
]
