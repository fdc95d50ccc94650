"""The outcome of one batch of events as one object: offsets in a list, no object per event.

:meth:`SegmentStoreContract.append_runs` answers each :class:`SegmentBatch` with a
:class:`RunOutcome` instead of a list of one :class:`AppendResult` (or error) per event: the
events' offsets (computed in C from their lengths), which of them were duplicates and which
were refused. The stream server answers an APPEND_BATCH from it and the writer settles its
events from it, so the per-event Python work on the hot path is a few list slots; an
:class:`AppendResult` is built only for an event someone asks about (:meth:`RunOutcome.outcome`).

Example:
    >>> run = RunOutcome.contiguous("s", 100, [3, 2])
    >>> run.outcome(1)
    AppendResult(segment='s', offset=103, length=2, duplicate=False)
    >>> run.ok, len(run)
    (True, 2)
    >>> refused = RunOutcome.refused("s", [4], ValueError("no"))
    >>> refused.ok, type(refused.outcome(0)).__name__
    (False, 'ValueError')
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

from xtremehub.streams.segmentstore.contract import AppendOutcome, AppendResult

__all__ = ["RunOutcome"]

_NO_ERRORS: Mapping[int, Exception] = {}


class RunOutcome:
    """Outcomes of the events of one batch, in event order.

    ``offsets[i]`` is where event ``i`` landed (for a duplicate: the offset of the writer's
    last stored event, as :class:`AppendResult` says; ``-1`` for a refused event),
    ``lengths[i]`` its length, ``duplicates`` the indexes recognised as already stored,
    ``errors`` the refused indexes and why.
    """

    __slots__ = ("duplicates", "errors", "lengths", "offsets", "segment")

    def __init__(
        self,
        segment: str,
        offsets: Sequence[int],
        lengths: Sequence[int],
        duplicates: Collection[int] = (),
        errors: Mapping[int, Exception] = _NO_ERRORS,
    ) -> None:
        self.segment = segment
        self.offsets = offsets
        self.lengths = lengths
        self.duplicates = duplicates
        self.errors = errors

    @classmethod
    def contiguous(
        cls, segment: str, offset: int, lengths: Sequence[int], duplicates: int = 0, at: int = -1
    ) -> RunOutcome:
        """Events ``duplicates`` and later stored one after the other from ``offset``; the first
        ``duplicates`` recognised as already stored (reported at ``at``)."""
        stored = list(itertools.accumulate(lengths[duplicates:] if duplicates else lengths, initial=offset))
        stored.pop()  # the end of the last event
        return cls(segment, [at] * duplicates + stored if duplicates else stored, lengths, range(duplicates))

    @classmethod
    def refused(
        cls, segment: str, lengths: Sequence[int], error: Exception, *, duplicates: int = 0, at: int = -1
    ) -> RunOutcome:
        """Every event from index ``duplicates`` on refused with ``error``."""
        count = len(lengths)
        errors = dict.fromkeys(range(duplicates, count), error)
        return cls(segment, [at] * duplicates + [-1] * (count - duplicates), lengths, range(duplicates), errors)

    @classmethod
    def of(cls, segment: str, outcomes: Sequence[AppendOutcome], lengths: Sequence[int]) -> RunOutcome:
        """The run of per-event outcomes (from a store without a native run path)."""
        offsets: list[int] = []
        duplicates: list[int] = []
        errors: dict[int, Exception] = {}
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, AppendResult):
                offsets.append(outcome.offset)
                if outcome.duplicate:
                    duplicates.append(i)
            else:
                offsets.append(-1)
                errors[i] = outcome
        return cls(segment, offsets, lengths, duplicates, errors)

    @classmethod
    def concat(cls, parts: Sequence[RunOutcome]) -> RunOutcome:
        """One run of several consecutive parts of a batch (split over frames or around a refused event)."""
        if len(parts) == 1:
            return parts[0]
        offsets: list[int] = []
        lengths: list[int] = []
        duplicates: list[int] = []
        errors: dict[int, Exception] = {}
        for part in parts:
            base = len(offsets)
            offsets.extend(part.offsets)
            lengths.extend(part.lengths)
            duplicates.extend(base + i for i in part.duplicates)
            errors.update((base + i, e) for i, e in part.errors.items())
        return cls(parts[0].segment, offsets, lengths, duplicates, errors)

    @property
    def ok(self) -> bool:
        """True when no event was refused."""
        return not self.errors

    def __len__(self) -> int:
        return len(self.offsets)

    def error(self, index: int) -> Exception | None:
        """Why event ``index`` was refused (None when it is stored)."""
        return self.errors.get(index) if self.errors else None

    def outcome(self, index: int) -> AppendOutcome:
        """Event ``index``'s :class:`AppendResult`, or the error refusing it."""
        if self.errors:
            error = self.errors.get(index)
            if error is not None:
                return error
        return AppendResult(self.segment, self.offsets[index], self.lengths[index], index in self.duplicates)

    def outcomes(self) -> list[AppendOutcome]:
        """Every event's outcome, in order."""
        return [self.outcome(i) for i in range(len(self.offsets))]

    def __repr__(self) -> str:
        return f"RunOutcome({self.segment!r}, {len(self.offsets)} events, {len(self.errors)} refused)"
