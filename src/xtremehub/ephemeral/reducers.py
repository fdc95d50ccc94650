"""Reducers for storage actions: how many partial objects merge into one.

A :class:`Reducer` names a codec (how an object's bytes become a value and back), an
associative ``merge(a, b)`` of two values, an optional ``identity`` (the value of no
partials, written when the reducer is registered) and whether the merge is
commutative (when it is not, partials merge in key order). Built-ins:

* :func:`sum_counts`: dicts of numbers (k-mer, variant or word counts) added key by key (JSON);
* :func:`concatenate`: the partials' bytes one after the other, in key order;
* :func:`sort_merge`: sorted records (lines, or JSON lists) merged into one sorted sequence;
* :func:`top_k`: the ``k`` largest records of all partials (JSON lists).

This module only needs the standard library: the node service's action workers import it.

Example:
    >>> r = sum_counts()
    >>> r.encode(r.merge(r.decode(b'{"AC": 2}'), r.decode(b'{"AC": 1, "GT": 4}')))
    b'{"AC": 3, "GT": 4}'
    >>> s = sort_merge()
    >>> s.encode(s.merge(s.decode(b"a\\nc\\n"), s.decode(b"b\\nd\\n")))
    b'a\\nb\\nc\\nd\\n'
    >>> t = top_k(2)
    >>> t.merge([9, 1], [5, 7])
    [9, 7]
"""

from __future__ import annotations

import heapq
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Codec", "Reducer", "concatenate", "decode", "encode", "sort_merge", "sum_counts", "top_k"]

Codec = Literal["json", "pickle", "bytes", "lines"]
_CODECS = ("json", "pickle", "bytes", "lines")


def decode(codec: Codec, data: bytes) -> Any:
    """The value an object's bytes hold under ``codec``."""
    if codec == "json":
        return json.loads(data) if data else None
    if codec == "pickle":
        return pickle.loads(data)
    if codec == "lines":
        return data.splitlines()
    return bytes(data)


def encode(codec: Codec, value: Any) -> bytes:
    """The bytes of ``value`` under ``codec`` (JSON with sorted keys: equal values, equal bytes)."""
    if codec == "json":
        return json.dumps(value, sort_keys=True).encode()
    if codec == "pickle":
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if codec == "lines":
        return b"".join(bytes(line) + b"\n" for line in value)
    return bytes(value)


@dataclass(frozen=True)
class Reducer:
    """How partial objects under a prefix merge into one object.

    Attributes:
        merge: an associative function of two values (a partial may be merged into the
            result of any number of earlier ones).
        codec: ``"json"``, ``"pickle"``, ``"bytes"`` or ``"lines"`` (a list of byte lines).
        identity: the value of zero partials; ``None``: the merged object appears with
            the first partial.
        commutative: whether partials may merge in arrival order; when ``False`` the
            merged object is always the merge of the partials in key order.
        name: shown by ``actions.list_actions``.

    Example:
        >>> longest = Reducer(merge=max, codec="json", identity=0, name="max")
        >>> longest.merge(3, 8)
        8
    """

    merge: Callable[[Any, Any], Any]
    codec: Codec = "pickle"
    identity: Any = None
    commutative: bool = True
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.codec not in _CODECS:
            raise ValueError(f"reducer codec must be one of {_CODECS}, not {self.codec!r}")
        if not callable(self.merge):
            raise TypeError(f"reducer merge must be callable, not {type(self.merge).__name__}")

    def decode(self, data: bytes) -> Any:
        return decode(self.codec, data)

    def encode(self, value: Any) -> bytes:
        return encode(self.codec, value)


def _add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(b, dict):
        raise TypeError(f"sum_counts merges JSON objects of numbers, got {type(b).__name__}")
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def _concat(a: bytes, b: bytes) -> bytes:
    return a + b


@dataclass(frozen=True)
class _SortMerge:
    key: Callable[[Any], Any] | None

    def __call__(self, a: list[Any], b: list[Any]) -> list[Any]:
        key = self.key
        for i in range(1, len(b)):
            if (key(b[i]) if key else b[i]) < (key(b[i - 1]) if key else b[i - 1]):
                raise ValueError(f"sort_merge: a partial is not sorted (record {i} sorts before record {i - 1})")
        return list(heapq.merge(a, b, key=key))


@dataclass(frozen=True)
class _TopK:
    k: int
    key: Callable[[Any], Any] | None

    def __call__(self, a: list[Any], b: list[Any]) -> list[Any]:
        return heapq.nlargest(self.k, [*a, *b], key=self.key)


def sum_counts() -> Reducer:
    """JSON objects of numbers added key by key (a ``Counter`` union): k-mer or variant counts.

    Example:
        >>> sum_counts().merge({"a": 1}, {"a": 2, "b": 1})
        {'a': 3, 'b': 1}
    """
    return Reducer(merge=_add_counts, codec="json", identity={}, commutative=True, name="sum_counts")


def concatenate() -> Reducer:
    """The partials' bytes concatenated in key order (``part-0001`` before ``part-0002``).

    Example:
        >>> concatenate().merge(b"ab", b"cd")
        b'abcd'
    """
    return Reducer(merge=_concat, codec="bytes", identity=b"", commutative=False, name="concatenate")


def sort_merge(key: Callable[[Any], Any] | None = None, codec: Codec = "lines") -> Reducer:
    """Sorted partials merged into one sorted sequence (each partial must be sorted: else
    :class:`~xtremehub.errors.ActionFailed`). Records are byte lines, or the items of JSON lists.

    With a ``key``, records with equal keys keep key order of their partials.

    Example:
        >>> sort_merge(codec="json").merge([1, 4], [2, 3])
        [1, 2, 3, 4]
    """
    return Reducer(merge=_SortMerge(key), codec=codec, identity=[], commutative=key is None, name="sort_merge")


def top_k(k: int, key: Callable[[Any], Any] | None = None, codec: Codec = "json") -> Reducer:
    """The ``k`` largest records (by ``key``) of all partials, largest first (JSON lists).

    Example:
        >>> top_k(2, key=lambda r: r[1]).merge([["x", 5]], [["y", 9], ["z", 1]])
        [['y', 9], ['x', 5]]
    """
    if k < 1:
        raise ValueError(f"top_k needs k >= 1, not {k}")
    return Reducer(merge=_TopK(k, key), codec=codec, identity=[], commutative=True, name=f"top_k({k})")
