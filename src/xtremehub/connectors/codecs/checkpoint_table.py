"""The checkpoint part of an index, shared by every format that resumes inside an object.

Formats store checkpoints as three lists (bit offset, uncompressed offset, window
length) plus one blob of compressed windows; :class:`CheckpointTable` reads them
back and hands out single :class:`Checkpoint` s, so a slice carries only the one
it starts from. :func:`stitch_spans` is the reduce step of a parallel record scan.

Example:
    >>> points = [Checkpoint(0, 0), Checkpoint(800, 4096, b"w")]
    >>> data, blob = table_data(points)
    >>> table = CheckpointTable.from_data(data, blob)
    >>> table.checkpoint(1), table.at_or_before(5000)
    (Checkpoint(bit_offset=800, uncompressed=4096, window=b'w'), 1)
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xtremehub.connectors.codecs.gzip_index import Checkpoint

__all__ = ["CheckpointTable", "stitch_spans", "table_data"]


def table_data(points: Sequence[Checkpoint]) -> tuple[dict[str, list[int]], bytes]:
    """Index ``data`` entries and the window blob for ``points``."""
    data = {
        "bit_offset": [p.bit_offset for p in points],
        "uncompressed": [p.uncompressed for p in points],
        "window_len": [len(p.window) for p in points],
    }
    return data, b"".join(p.window for p in points)


@dataclass(frozen=True)
class CheckpointTable:
    """Checkpoints read back from an index."""

    bit_offset: list[int]
    uncompressed: list[int]
    window_start: list[int]
    blob: bytes

    @classmethod
    def from_data(cls, data: Mapping[str, Any], blob: bytes) -> CheckpointTable:
        starts = [0, *itertools.accumulate(data["window_len"])]
        return cls(list(data["bit_offset"]), list(data["uncompressed"]), starts, blob)

    def __len__(self) -> int:
        return len(self.bit_offset)

    def checkpoint(self, k: int) -> Checkpoint:
        return Checkpoint(
            self.bit_offset[k], self.uncompressed[k], self.blob[self.window_start[k] : self.window_start[k + 1]]
        )

    def byte_offset(self, k: int) -> int:
        return self.bit_offset[k] // 8

    def at_or_before(self, uncompressed: int) -> int:
        """Index of the last checkpoint at or before an uncompressed offset."""
        return max(0, bisect.bisect_right(self.uncompressed, uncompressed) - 1)


def stitch_spans(
    points: Sequence[Checkpoint], results: Sequence[Mapping[str, Any]], text_size: int
) -> tuple[list[int], list[int], list[Any]]:
    """Reduce step of a parallel record scan.

    Span ``k`` reports the records whose start lies in ``(checkpoint k, checkpoint k+1]``
    (``[0, ...]`` for the first): ``count``, ``first_start``, optional ``first_key``, and
    ``at_end`` / ``last_key`` when one starts exactly at the next checkpoint. Returns, per
    checkpoint, the number, start offset and key of the first record at or after it.
    """
    total = sum(int(r["count"]) for r in results)
    numbers, starts, keys, cum = [], [], [], 0
    for k, point in enumerate(points):
        if k > 0 and results[k - 1]["at_end"]:
            numbers.append(cum - 1)
            starts.append(point.uncompressed)
            keys.append(results[k - 1].get("last_key"))
        else:
            later = next((r for r in results[k:] if r["count"]), None)
            numbers.append(cum if later is not None else total)
            starts.append(later["first_start"] if later is not None else text_size)
            keys.append(later.get("first_key") if later is not None else None)
        cum += int(results[k]["count"])
    return numbers, starts, keys
