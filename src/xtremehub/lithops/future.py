"""``lithops.future``: the future type, and the two helpers Lithops's tests import from here."""

from __future__ import annotations

import ast
import pickle
from collections.abc import Mapping
from typing import Any

from xtremehub.compute.futures import ResponseFuture

__all__ = ["ResponseFuture"]


def _pickle_from_encoded(encoded: str) -> Any:
    """Unpickle Lithops's ``str(pickle.dumps(x))`` encoding (a bytes literal in a string).

    Example:
        >>> _pickle_from_encoded(str(pickle.dumps({"k": 1})))
        {'k': 1}
    """
    return pickle.loads(ast.literal_eval(encoded))


def _stats_from_prefixed_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The ``func_*``, ``host_*`` and ``worker_*`` entries of a status (Lithops's stats).

    Example:
        >>> _stats_from_prefixed_keys({"func_name": "f", "type": "x"})
        {'func_name': 'f'}
    """
    return {k: v for k, v in mapping.items() if k.startswith(("func_", "host_", "worker_"))}
