"""Pickling for processes of this machine: the standard library's reducers for OS resources, then cloudpickle.

``multiprocessing`` registers reducers for connections (``Pipe`` ends) and
sockets with its own pickler, which duplicate the file descriptor to the
receiving process through its resource sharer; plain ``pickle`` and
``cloudpickle`` would copy the descriptor number, which means nothing there.
:func:`dumps` tries the standard library's pickler (by reference, fast), then
cloudpickle (lambdas, closures, ``__main__``) with the same reducers.

Example:
    >>> import pickle
    >>> pickle.loads(dumps(lambda x: x + 1))(1)
    2
"""

from __future__ import annotations

import io
import pickle
import threading
from collections import ChainMap
from multiprocessing.reduction import ForkingPickler
from typing import Any, ClassVar

import cloudpickle

__all__ = ["dumps"]


class _CloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
    dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
        ForkingPickler._extra_reducers,  # type: ignore[attr-defined]
        cloudpickle.Pickler.dispatch_table,
    )


class _Reusable(threading.local):
    """One pickler per thread, reused: making one per call costs more than pickling a small call."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.pickler = ForkingPickler(self.buffer, pickle.HIGHEST_PROTOCOL)


_reusable = _Reusable()


def dumps(obj: Any) -> bytes:
    """``obj`` pickled for another process of this machine (see the module docstring)."""
    mine = _reusable
    try:
        mine.pickler.dump(obj)
        return mine.buffer.getvalue()
    except (pickle.PicklingError, TypeError, AttributeError):
        buffer = io.BytesIO()
        _CloudPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buffer.getvalue()
    finally:
        mine.pickler.clear_memo()
        mine.buffer.seek(0)
        mine.buffer.truncate()
