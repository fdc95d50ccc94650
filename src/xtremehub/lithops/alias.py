"""An import alias for programs that cannot change their ``import lithops`` lines.

``alias_lithops()`` makes ``import lithops`` (and ``lithops.config``, ``lithops.storage``,
``lithops.storage.utils``, ``lithops.retries``, ``lithops.wait``, ``lithops.future``,
``lithops.executors``) give the ``xtremehub.lithops`` modules in this process. Call it
before the program imports ``lithops``; it refuses if the real Lithops is already imported,
since two modules under one name would mix their objects.

Example:
    >>> import sys
    >>> from xtremehub.lithops.alias import alias_lithops, unalias_lithops
    >>> saved = {k: v for k, v in sys.modules.items() if k == "lithops" or k.startswith("lithops.")}
    >>> for k in saved:
    ...     del sys.modules[k]
    >>> alias_lithops()
    >>> import lithops
    >>> lithops.__name__
    'xtremehub.lithops'
    >>> unalias_lithops()
    >>> sys.modules.update(saved)
"""

from __future__ import annotations

import importlib
import sys

from xtremehub.errors import ConfigError

__all__ = ["alias_lithops", "unalias_lithops"]

_SUBMODULES = ("", ".config", ".storage", ".storage.utils", ".retries", ".wait", ".future", ".executors")


def alias_lithops() -> None:
    """Make ``import lithops`` import ``xtremehub.lithops`` in this process."""
    current = sys.modules.get("lithops")
    if current is not None and current.__name__ != "xtremehub.lithops":
        raise ConfigError("the real lithops package is already imported: alias before the first `import lithops`")
    for sub in _SUBMODULES:
        sys.modules["lithops" + sub] = importlib.import_module("xtremehub.lithops" + sub)


def unalias_lithops() -> None:
    """Undo :func:`alias_lithops`."""
    for sub in _SUBMODULES:
        module = sys.modules.get("lithops" + sub)
        if module is not None and module.__name__.startswith("xtremehub.lithops"):
            del sys.modules["lithops" + sub]
