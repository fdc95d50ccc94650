"""Keep a writer's appends to a segment in event-number order (the server's and the client's record).

A writer may have several numbered appends to one segment in flight. When the store refuses one
for back pressure (nothing written), a later one must not be stored before its re-send: the
store drops an event whose number is not above its writer's last stored one, so the re-sent
events would count as duplicates and be lost. Both ends keep the same record
(:class:`WriterOrder`): the stream server per connection (a later append is refused for back
pressure until the refused one is re-sent), and the client's connection, since after a reconnect
the server knows nothing of a refusal: there an append above a refused one is refused at once
(nothing sent), and on a reconnect the pending appends that would overtake an earlier one of
their writer are withdrawn (refused for back pressure) instead of re-sent automatically; the
writer re-sends them in order.

Both ends keep it only on connections of protocol version 2: from version 3 on, numbered
appends name their writer's previous event number on the segment and the store refuses one
that would overtake an event not stored (``EventNumberGap``), on any connection. There a hold
would only harm: an event the writer gives up for good (retries exhausted) is never re-sent,
and every later append of its writer to that segment would be refused for good too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from xtremehub.errors import BackPressure
from xtremehub.streams.segmentstore.runs import RunOutcome

__all__ = ["Lane", "WriterOrder"]

#: A numbered append's ``(writer id, segment, first event number)``: its place in its writer's order.
Lane = tuple[str, str, int]


class WriterOrder:
    """Per (writer, segment): the lowest event number refused for back pressure and not yet re-sent.

    Not thread-safe: the connection calls it under its lock (the server: on its event loop).

    Example:
        >>> order = WriterOrder()
        >>> order.hold(WriterOrder.refused([("w", "s", 0)], None, BackPressure("full")))
        >>> order.check([("w", "s", 2)]) is not None  # would overtake event 0
        True
        >>> order.check([("w", "s", 0)]) is None  # the re-send lifts the hold
        True
        >>> order.check([("w", "s", 2)]) is None
        True
    """

    __slots__ = ("_floor",)

    def __init__(self) -> None:
        self._floor: dict[tuple[str, str], int] = {}

    def __bool__(self) -> bool:
        """Whether any append is held back (the common case, nothing, costs one test)."""
        return bool(self._floor)

    def check(self, lanes: Sequence[Lane]) -> BackPressure | None:
        """Before sending (storing): the refusal of an append that would overtake a refused one, else None.

        A refused append's other lanes are held too (their events are re-sent with it). An append
        at or below the refused number is its re-send and lifts the hold.
        """
        if not self._floor:
            return None
        for writer, segment, first in lanes:
            floor = self._floor.get((writer, segment))
            if floor is not None and first > floor:
                self.hold(lanes)
                return BackPressure(
                    f"segment {segment!r}: event {floor} of writer {writer!r} was refused for back pressure; "
                    f"event {first} may not overtake it (nothing was written, retry later)"
                )
        for writer, segment, first in lanes:
            if self._floor.get((writer, segment), first) >= first:
                self._floor.pop((writer, segment), None)
        return None

    @staticmethod
    def refused(lanes: Sequence[Lane], result: Any, error: BaseException | None) -> list[Lane]:
        """The places refused for back pressure by an answer (decoded ``result`` or ``error``) to ``lanes``.

        Needs no lock: the caller takes it for :meth:`hold` only when this is not empty (rare).
        """
        if isinstance(error, BackPressure):
            return list(lanes)
        out: list[Lane] = []
        runs = result if isinstance(result, list) else [result]
        for (writer, segment, first), run in zip(lanes, runs, strict=False):
            if isinstance(run, RunOutcome) and run.errors:
                refused = [i for i, e in run.errors.items() if isinstance(e, BackPressure)]
                if refused:
                    out.append((writer, segment, first + min(refused)))
        return out

    def hold(self, lanes: Iterable[Lane]) -> None:
        """These appends were refused for back pressure: later ones of their writer wait for their re-send."""
        for writer, segment, first in lanes:
            key = (writer, segment)
            self._floor[key] = min(first, self._floor.get(key, first))

    def withdraw(self, pending: Iterable[tuple[int, Sequence[Lane]]]) -> list[int]:
        """At a reconnect: the request ids (of ``(id, lanes)`` in sending order) not to re-send.

        Those above a refused event of their writer, and those followed by an append of their
        writer to the same segment with a lower number (a re-send sent after them): re-sent
        first, they would be stored before it. Withdrawn appends count as refused.
        """
        later: dict[tuple[str, str], int] = {}  # the lowest number sent after, per (writer, segment)
        out: list[int] = []
        withdrawn: list[Lane] = []
        for rid, lanes in reversed(list(pending)):
            if any(self._overtakes(lane, later) for lane in lanes):
                out.append(rid)
                withdrawn.extend(lanes)
            for writer, segment, first in lanes:
                later[(writer, segment)] = min(first, later.get((writer, segment), first))
        self.hold(withdrawn)
        return out

    def _overtakes(self, lane: Lane, later: dict[tuple[str, str], int]) -> bool:
        writer, segment, first = lane
        floor = min(self._floor.get((writer, segment), first), later.get((writer, segment), first))
        return first > floor
