"""The processing job's shared state in a key-value table, and the order transactions commit in.

The driver and the workers of one job talk only through the stream store: the input's reader
group (segments, checkpoints) and one :class:`~xtremehub.streams.kvtable.KeyValueTable` named
``<job>-state`` in the job's scope, with these keys:

=======================  ========  ===============================================================
key                      written   value
=======================  ========  ===============================================================
``committed``            driver    name of the last checkpoint whose transactions are all committed
``rec/<cp>/<reader>``    worker    at the marker of checkpoint ``cp``: the reader's transactions
``open/<reader>``        worker    ids of the reader's transactions not yet committed (for aborts)
``worker/<reader>``      worker    where the worker runs: ``{"pid": ..., "host": ...}``
``retire/<reader>``      driver    leave the group at the next checkpoint marker
``stop/<session>``       driver    every worker of that driver session exits at once
=======================  ========  ===============================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from xtremehub.errors import InvalidStreamArgument
from xtremehub.streams.controller._metadata import parse_segment_name

__all__ = ["COMMITTED", "TxnRecord", "commit_order", "decode_records", "encode_records", "key"]

COMMITTED = "committed"
#: Written before a checkpoint's first commit, removed after ``COMMITTED``: ``{"checkpoint", "txns"}``
#: (JSON), so that a driver that stops half-way through the commits finishes them on resume.
COMMITTING = "committing"


def key(kind: str, *parts: str) -> str:
    """A state-table key: ``key("rec", "cp-3", "w-1") == "rec/cp-3/w-1"``.

    >>> key("retire", "a1-0")
    'retire/a1-0'
    """
    return "/".join((kind, *parts))


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """One transaction of a worker: the outputs of the events it read from ``segment`` since its
    last checkpoint marker, the first of them at ``start`` (an offset in that segment)."""

    segment: str
    start: int
    txn_id: str


def encode_records(records: list[TxnRecord]) -> bytes:
    """The value stored under ``rec/<cp>/<reader>``.

    >>> decode_records(encode_records([TxnRecord("s/in/0.#epoch.0", 42, "ab")]))
    [TxnRecord(segment='s/in/0.#epoch.0', start=42, txn_id='ab')]
    """
    return json.dumps([[r.segment, r.start, r.txn_id] for r in records]).encode()


def decode_records(value: bytes) -> list[TxnRecord]:
    """The records of one ``rec/<cp>/<reader>`` value (``InvalidStreamArgument`` when malformed)."""
    try:
        return [TxnRecord(str(s), int(o), str(t)) for s, o, t in json.loads(value)]
    except (ValueError, TypeError) as exc:
        raise InvalidStreamArgument(f"malformed transaction record {value[:80]!r}") from exc


def commit_order(records: list[TxnRecord]) -> list[TxnRecord]:
    """The order in which the transactions of one checkpoint must commit to keep per-key order.

    The events of a key move through segments with growing numbers (a successor of a split or
    merge gets a higher number than its predecessors), and within a segment by offset. Within
    one checkpoint a segment may have been read by several readers (rebalancing), each with
    its own transaction: committing by (segment number, first offset) appends every key's
    outputs in the order of its inputs.

    >>> order = commit_order([TxnRecord("s/in/3.#epoch.1", 0, "c"), TxnRecord("s/in/1.#epoch.0", 90, "b"),
    ...                       TxnRecord("s/in/1.#epoch.0", 10, "a")])
    >>> [r.txn_id for r in order]
    ['a', 'b', 'c']
    """
    return sorted(records, key=lambda r: (parse_segment_name(r.segment)[2], r.start))
