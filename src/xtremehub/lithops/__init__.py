"""A drop-in for ``import lithops``: Lithops's API on XtremeHub's executor and stores.

For most Lithops programs the migration is one line::

    from xtremehub import lithops      # was: import lithops

``FunctionExecutor``, ``LocalhostExecutor``, ``RetryingFunctionExecutor``, ``Storage``,
``wait``, ``get_result`` and the ``ALWAYS``/``ANY_COMPLETED``/``ALL_COMPLETED``
constants take Lithops's arguments, including a Lithops config dict whose storage
section (``localhost``, ``aws_s3``, ``minio``, ``ceph``, ...) is mapped to XtremeHub
settings. See docs/lithops.md for the remaining differences.

Example:
    >>> from xtremehub import lithops
    >>> def add(x, y):
    ...     return x + y
    >>> with lithops.FunctionExecutor(max_workers=2) as fexec:
    ...     fexec.map(add, [(1, 1), (2, 2)])
    ...     fexec.get_result()
    [...]
    [2, 4]
"""

from __future__ import annotations

from xtremehub.lithops.executors import FunctionExecutor, LocalhostExecutor, ServerlessExecutor, StandaloneExecutor
from xtremehub.lithops.retries import RetryingFunctionExecutor
from xtremehub.lithops.storage import Storage
from xtremehub.lithops.wait import ALL_COMPLETED, ALWAYS, ANY_COMPLETED, get_result, wait

#: The Lithops release whose API (and test suite) this module follows.
__version__ = "3.8.0"

__all__ = [
    "ALL_COMPLETED",
    "ALWAYS",
    "ANY_COMPLETED",
    "FunctionExecutor",
    "LocalhostExecutor",
    "RetryingFunctionExecutor",
    "ServerlessExecutor",
    "StandaloneExecutor",
    "Storage",
    "__version__",
    "get_result",
    "wait",
]
