"""The checkpoint part of an index, shared by every format that resumes inside an object.

An index stores checkpoints as three columns (bit offset, uncompressed offset,
window length) plus one blob of compressed windows; :class:`CheckpointTable`
holds them and hands out single :class:`Checkpoint` s, so a slice carries only
the one it starts from.

Example:
    >>> table = CheckpointTable.of([Checkpoint(0, 0), Checkpoint(800, 4096, b"w")])
    >>> again = CheckpointTable.from_columns(table.columns(), table.blob)
    >>> again.checkpoint(1), again.at_or_before(5000), again == table
    (Checkpoint(bit_offset=800, uncompressed=4096, window=b'w'), 1, True)
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xtremehub.connectors.codecs.gzip_index import Checkpoint

__all__ = ["CheckpointTable"]


@dataclass(frozen=True)
class CheckpointTable:
    """Checkpoints in uncompressed order; ``blob`` holds their windows back to back."""

    bit_offset: tuple[int, ...]
    uncompressed: tuple[int, ...]
    window_start: tuple[int, ...]  # one more entry than checkpoints: where each window ends
    blob: bytes

    @classmethod
    def of(cls, points: Sequence[Checkpoint]) -> CheckpointTable:
        """The table of ``points``."""
        starts = (0, *itertools.accumulate(len(p.window) for p in points))
        return cls(
            tuple(p.bit_offset for p in points),
            tuple(p.uncompressed for p in points),
            starts,
            b"".join(p.window for p in points),
        )

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[int]], blob: bytes) -> CheckpointTable:
        """Read back what :meth:`columns` wrote (``bit_offset``, ``uncompressed``, ``window_len``)."""
        starts = (0, *itertools.accumulate(columns["window_len"]))
        return cls(tuple(columns["bit_offset"]), tuple(columns["uncompressed"]), starts, blob)

    def columns(self) -> dict[str, list[int]]:
        """The JSON-able columns of the index (the windows go to the blob)."""
        return {
            "bit_offset": list(self.bit_offset),
            "uncompressed": list(self.uncompressed),
            "window_len": [b - a for a, b in itertools.pairwise(self.window_start)],
        }

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
