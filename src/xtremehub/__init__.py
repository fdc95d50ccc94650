"""XtremeHub: near-data processing of extreme scientific data.

Example:
    >>> import xtremehub
    >>> xtremehub.__version__ >= "0.1"
    True
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from xtremehub.config import Settings

try:
    __version__ = version("xtremehub")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["ALL_COMPLETED", "ALWAYS", "ANY_COMPLETED", "FunctionExecutor", "Settings", "__version__"]


def __getattr__(name: str) -> object:
    # Keep `import xtremehub` light: the executor pulls in cloudpickle and psutil.
    if name in ("FunctionExecutor", "ALL_COMPLETED", "ANY_COMPLETED", "ALWAYS"):
        from xtremehub import compute

        return getattr(compute, name)
    raise AttributeError(f"module 'xtremehub' has no attribute {name!r}")
