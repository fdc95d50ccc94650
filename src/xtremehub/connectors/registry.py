"""Formats by name: built-ins listed lazily, third parties via ``register_format`` or the
``xtremehub.formats`` entry-point group (``name = "package.module:FormatClass"``).

Built-ins are found at their public path, ``xtremehub.connectors.<family>:<Class>``; the
formats that need an extra (``cog``, ``las``, ``copc``: ``geo``) carry its install hint.

Example:
    >>> from xtremehub.connectors.registry import format_class, known_formats
    >>> "fastq_gzip" in known_formats()
    True
    >>> format_class("fastq_gzip").__name__
    'FASTQGZip'
"""

from __future__ import annotations

from xtremehub.connectors.base import Format
from xtremehub.plugins import Registry, install_hint

__all__ = ["FORMATS", "format_class", "known_formats", "register_format"]

FORMATS: Registry[type[Format]] = Registry(
    "format",
    "xtremehub.formats",
    {
        "fastq_gzip": "xtremehub.connectors.genomics:FASTQGZip",
        "fasta": "xtremehub.connectors.genomics:FASTA",
        "vcf": "xtremehub.connectors.genomics:VCF",
        "text": "xtremehub.connectors.text:Text",
        "csv": "xtremehub.connectors.text:CSV",
        "cog": ("xtremehub.connectors.raster:COG", install_hint("geo")),
        "imzml": "xtremehub.connectors.imaging:ImzML",
        "las": ("xtremehub.connectors.pointcloud:LAS", install_hint("geo")),
        "copc": ("xtremehub.connectors.pointcloud:COPC", install_hint("geo")),
    },
)


def register_format(name: str, cls: type[Format] | str) -> None:
    """Register a format class (or its dotted ``"module:Class"`` path); refuses clashes."""
    FORMATS.register(name, cls)


def known_formats() -> list[str]:
    return FORMATS.names()


def format_class(name: str) -> type[Format]:
    return FORMATS.load(name)
