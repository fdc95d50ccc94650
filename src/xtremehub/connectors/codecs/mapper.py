"""How a format's preprocessing runs its map step: a small protocol, serial by default.

A :class:`Mapper` is anything with ``map(func, items) -> list`` (results in input
order). Connectors only see this protocol; they never import an executor. Without
one, :func:`as_mapper` gives :class:`SerialMapper` (everything in this process, one
item after the other); an executor with futures (``map()`` returning futures and
``get_result()`` collecting them, like :class:`xtremehub.FunctionExecutor` or a
Lithops executor) is adapted by :class:`FuturesMapper`.

Example:
    >>> as_mapper(None).map(len, ["ab", "c"])
    [2, 1]
    >>> from xtremehub import FunctionExecutor
    >>> with FunctionExecutor(workers=1) as fexec:
    ...     as_mapper(fexec).map(abs, [-1, 2])
    [1, 2]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["FuturesExecutor", "FuturesMapper", "Mapper", "MapperLike", "SerialMapper", "as_mapper", "starmap"]

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Mapper(Protocol):
    """Runs ``func`` on every item and returns the results in input order."""

    def map(self, func: Callable[[T], R], items: Sequence[T], /) -> list[R]: ...


@runtime_checkable
class FuturesExecutor(Protocol):
    """An executor whose ``map`` returns futures that ``get_result`` collects."""

    def map(self, func: Callable[..., Any], items: Sequence[Any], /) -> Any: ...

    def get_result(self, fs: Any, /) -> Any: ...


#: What ``Format.build_index`` accepts as its executor (``None``: serial in-process).
MapperLike = Mapper | FuturesExecutor


class SerialMapper:
    """Runs every call in this process, in order (the default without an executor)."""

    def map(self, func: Callable[[T], R], items: Sequence[T], /) -> list[R]:
        return [func(item) for item in items]


class FuturesMapper:
    """Adapts a futures executor (``map`` + ``get_result``) to :class:`Mapper`."""

    def __init__(self, executor: FuturesExecutor) -> None:
        self.executor = executor

    def map(self, func: Callable[[T], R], items: Sequence[T], /) -> list[R]:
        # each item is one argument: executors (ours, Lithops) unpack a tuple item into several
        return list(self.executor.get_result(self.executor.map(func, [(item,) for item in items])))


def as_mapper(executor: MapperLike | None) -> Mapper:
    """The :class:`Mapper` for ``executor``: serial in-process when it is ``None``."""
    if executor is None:
        return SerialMapper()
    if isinstance(executor, FuturesExecutor):
        return FuturesMapper(executor)
    return executor


def starmap(mapper: Mapper, func: Callable[..., R], arg_tuples: Sequence[tuple[Any, ...]]) -> list[R]:
    """``func(*args)`` for every tuple of ``arg_tuples``, through ``mapper``, results in order.

    Example:
        >>> starmap(as_mapper(None), divmod, [(7, 2), (9, 4)])
        [(3, 1), (2, 1)]
    """
    return mapper.map(functools.partial(_star, func), list(arg_tuples))


def _star(func: Callable[..., R], args: tuple[Any, ...]) -> R:
    return func(*args)
