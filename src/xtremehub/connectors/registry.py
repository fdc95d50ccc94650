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

import importlib
from importlib.metadata import entry_points

from xtremehub.connectors.base import Format
from xtremehub.errors import ConfigError, PluginNotFound

__all__ = ["format_class", "known_formats", "register_format"]

_REGISTRY: dict[str, str | type[Format]] = {
    "fastq_gzip": "xtremehub.connectors.formats.genomics.fastq_gzip:FASTQGZip",
    "fasta": "xtremehub.connectors.formats.genomics.fasta:FASTA",
    "vcf": "xtremehub.connectors.formats.genomics.vcf:VCF",
    "text": "xtremehub.connectors.formats.text.text:Text",
    "csv": "xtremehub.connectors.formats.text.text:CSV",
}
_loaded = False


def register_format(name: str, cls: type[Format] | str) -> None:
    """Register a format class (or its dotted ``"module:Class"`` path); refuses clashes."""
    if name in _REGISTRY:
        raise ConfigError(f"format {name!r} is already registered")
    _REGISTRY[name] = cls


def known_formats() -> list[str]:
    global _loaded
    if not _loaded:
        _loaded = True
        for ep in entry_points(group="xtremehub.formats"):
            _REGISTRY.setdefault(ep.name, ep.value)
    return sorted(_REGISTRY)


def format_class(name: str) -> type[Format]:
    names = known_formats()
    target = _REGISTRY.get(name)
    if target is None:
        raise PluginNotFound(f"unknown format {name!r}; known: {', '.join(names)}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        cls: type[Format] = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = cls
        return cls
    return target
