"""Pipelines: applications built on XtremeHub's public API (executor, storage, connectors).

Example:
    >>> from xtremehub.pipelines import epistasis
    >>> epistasis.MDRConfig().cv_sets
    5
"""

from __future__ import annotations
