"""Formats by name: built-ins listed lazily, third parties via ``register_format`` or the
``xtremehub.formats`` entry-point group (``name = "package.module:FormatClass"``).

Example:
    >>> from xtremehub.connectors.registry import format_class, known_formats
    >>> "fastq_gzip" in known_formats()
    True
    >>> format_class("fastq_gzip").__name__
    'FASTQGZip'
"""

from __future__ import annotations

from xtremehub.connectors.base import Format
from xtremehub.plugins import Registry

__all__ = ["FORMATS", "format_class", "known_formats", "register_format"]

FORMATS: Registry[type[Format]] = Registry(
    "format",
    "xtremehub.formats",
    {
        "fastq_gzip": "xtremehub.connectors.formats.genomics.fastq_gzip:FASTQGZip",
        "fasta": "xtremehub.connectors.formats.genomics.fasta:FASTA",
        "vcf": "xtremehub.connectors.formats.genomics.vcf:VCF",
        "text": "xtremehub.connectors.formats.text.text:Text",
        "csv": "xtremehub.connectors.formats.text.text:CSV",
        "cog": "xtremehub.connectors.formats.geo.cog:COG",
        "imzml": "xtremehub.connectors.formats.imaging.imzml:ImzML",
        "las": "xtremehub.connectors.formats.geo.las:LAS",
        "copc": "xtremehub.connectors.formats.geo.las:COPC",
    },
)


def register_format(name: str, cls: type[Format] | str) -> None:
    """Register a format class (or its dotted ``"module:Class"`` path); refuses clashes."""
    FORMATS.register(name, cls)


def known_formats() -> list[str]:
    return FORMATS.names()


def format_class(name: str) -> type[Format]:
    return FORMATS.load(name)
