"""Pipelines: complete scientific workflows built on XtremeHub's public API (executor, storage, connectors).

Each pipeline is a subpackage, and imports only the public API, so it shows users how to build
their own: :mod:`xtremehub.pipelines.metabolomics` annotates imaging mass spectrometry datasets
METASPACE-style; :mod:`xtremehub.pipelines.epistasis` finds SNP-SNP interactions with MDR.

Example:
    >>> from xtremehub.pipelines import epistasis
    >>> epistasis.MDRConfig().cv_sets
    5
"""

from __future__ import annotations
