"""Compute: a Lithops-compatible executor over pluggable backends.

Example:
    >>> from xtremehub.compute import FunctionExecutor
    >>> with FunctionExecutor(max_workers=1) as fexec:
    ...     fexec.call_async(pow, (2, 10)).result()
    1024
"""

from __future__ import annotations

from xtremehub.compute.backends import Backend, Job, create_backend, known_backends, register_backend
from xtremehub.compute.executor import FunctionExecutor
from xtremehub.compute.futures import ALL_COMPLETED, ALWAYS, ANY_COMPLETED, FuturesList, ResponseFuture
from xtremehub.compute.partitioner import ObjectPart, partition_objects

__all__ = [
    "ALL_COMPLETED",
    "ALWAYS",
    "ANY_COMPLETED",
    "Backend",
    "FunctionExecutor",
    "FuturesList",
    "Job",
    "ObjectPart",
    "ResponseFuture",
    "create_backend",
    "known_backends",
    "partition_objects",
    "register_backend",
]
