"""Start a node service for a job that names ``xhub-eph://`` objects and finds none running.

The local executor calls :func:`autostart` with a job's inputs; the service it
starts belongs to that executor and stops when the executor closes (its Tier 0
goes with it: start ``xhub eph serve`` yourself for a node service that outlives
jobs, with a persistency tier).

Example:
    >>> uses_ephemeral(["s3://b/k", ("xhub-eph://scratch/part-1", 3)])
    True
    >>> uses_ephemeral([{"x": 1}, "mem://b/k"])
    False
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from xtremehub.config import Settings
from xtremehub.errors import StorageUnavailable

__all__ = ["autostart", "uses_ephemeral"]

log = logging.getLogger(__name__)

_PREFIX = "xhub-eph://"


def uses_ephemeral(values: Iterable[Any], depth: int = 2) -> bool:
    """Whether an ``xhub-eph://`` URL appears among ``values`` (and inside tuples, lists and dicts)."""
    for value in values:
        if isinstance(value, str) and value.startswith(_PREFIX):
            return True
        if depth > 0 and isinstance(value, tuple | list) and uses_ephemeral(value, depth - 1):
            return True
        if depth > 0 and isinstance(value, dict) and uses_ephemeral(value.values(), depth - 1):
            return True
    return False


def autostart(values: Iterable[Any], settings: Settings) -> Any:
    """A :class:`~xtremehub.ephemeral.service.ServiceProcess` started for ``values``, or ``None``
    (no ``xhub-eph://`` URL among them, or a node service already answers)."""
    if not uses_ephemeral(values):
        return None
    from xtremehub.ephemeral.client import client_for
    from xtremehub.ephemeral.config import TierConfig
    from xtremehub.ephemeral.service import ServiceProcess

    try:
        client_for(settings)
        return None
    except StorageUnavailable:
        pass
    log.info("starting an ephemeral node service for this executor (home %s)", settings.home)
    return ServiceProcess.start(TierConfig(), settings)
