"""The calls of one ``map``, kept as one record until someone asks for their futures.

For calls of a few microseconds, a :class:`~xtremehub.compute.futures.ResponseFuture`
per call (created, tracked, settled, delivered, forgotten) costs more than the call.
A :class:`CallBatch` holds what the futures would hold, one list entry per call:
the outcome (or the error that stopped the call) and the attempt count. The
executor settles slots as outcomes arrive and ``get_result`` of the untouched
:class:`~xtremehub.compute.futures.FuturesList` delivers the values straight from
the slots. Outcomes of the local backend's fast path arrive as an :class:`OutcomeBlock` (the
columns of many calls' outcomes, as a worker sent them): every slot of those calls then
refers to the one block, and an :class:`~xtremehub.compute.task.Outcome` is built only
for a call someone looks at (:meth:`CallBatch.outcome`). The per-call futures are created
(:meth:`CallBatch.materialize`) the first time anyone asks for one (indexing or iterating the list, ``fexec.futures``,
``wait``, a failed call, a result that holds futures), already in the state the slots
record; from then on the batch settles the futures instead of its slots, and
everything behaves exactly as with futures made up front.

Example:
    >>> from xtremehub.compute.futures import Signal
    >>> from xtremehub.compute.task import Outcome
    >>> batch = CallBatch(None, "job-1", 2, Signal(), "local", 0.0)
    >>> with batch.signal:
    ...     _ = batch.settle(0, Outcome("job-1", 0, True, b"\\x80\\x05K\\x07."), 1)
    >>> batch.left, [f.done for f in batch.materialize()], batch.futures[0].result()
    (1, [True, False], 7)
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from xtremehub.compute.futures import ResponseFuture, Signal, remote_exception, settle_future
from xtremehub.compute.task import Outcome, without_payload

__all__ = ["KEPT_PAYLOAD", "BatchTelemetry", "CallBatch", "OutcomeBlock"]

#: A delivered result's pickled bytes are kept for telemetry up to this size (they cost no
#: more than the record itself); larger ones are dropped, their size kept.
KEPT_PAYLOAD = 256

#: Result types that may be or hold futures (``nested_futures`` looks at lists, tuples, futures).
_MAYBE_FUTURES = (list, tuple, ResponseFuture)


class OutcomeBlock:
    """The outcomes of calls ``first .. first + n - 1`` of one job, as columns (one tuple per
    :class:`~xtremehub.compute.task.Outcome` field, one item per call).

    Example:
        >>> block = OutcomeBlock(5, list(zip(Outcome("j", 5, True, b"a"), Outcome("j", 6, True, b"b"))))
        >>> len(block), block.outcome(6).payload, block.outcome(6).call_id
        (2, b'b', 6)
    """

    __slots__ = ("cols", "first")

    def __init__(self, first: int, cols: list[tuple[Any, ...]]) -> None:
        self.first, self.cols = first, cols

    def __len__(self) -> int:
        return len(self.cols[1])

    def outcome(self, i: int) -> Outcome:
        """Call ``i``'s outcome."""
        k = i - self.first
        return tuple.__new__(Outcome, [c[k] for c in self.cols])

    def payloads(self) -> tuple[bytes, ...]:
        payloads: tuple[bytes, ...] = self.cols[3]
        return payloads

    def trimmed(self, sizes: dict[int, int]) -> OutcomeBlock:
        """This block with the payloads longer than :data:`KEPT_PAYLOAD` emptied (their sizes into ``sizes``)."""
        payloads = self.payloads()
        if all(len(p) <= KEPT_PAYLOAD for p in payloads):
            return self
        first = self.first
        sizes.update((first + k, len(p)) for k, p in enumerate(payloads) if len(p) > KEPT_PAYLOAD)
        cols = list(self.cols)
        cols[3] = tuple(p if len(p) <= KEPT_PAYLOAD else b"" for p in payloads)
        return OutcomeBlock(first, cols)


def _outcome_of(result: Outcome | OutcomeBlock, i: int) -> Outcome:
    return result.outcome(i) if type(result) is OutcomeBlock else result  # type: ignore[return-value]


class BatchTelemetry:
    """What ``job_summary`` keeps of a delivered batch: the telemetry sources of its calls."""

    __slots__ = ("attempts", "backend", "job_id", "outcomes", "sizes", "submit")

    def __init__(self, batch: CallBatch, outcomes: list[Outcome | OutcomeBlock], sizes: dict[int, int]) -> None:
        self.job_id, self.backend, self.submit = batch.job_id, batch.backend, batch.submit
        self.attempts, self.outcomes, self.sizes = batch.attempts, outcomes, sizes

    def sources(self) -> list[Any]:
        """One :func:`~xtremehub.compute.futures.telemetry_record` source per call."""
        job_id, backend, submit, sizes = self.job_id, self.backend, self.submit, self.sizes
        return [
            (job_id, i, backend, submit, a, _outcome_of(o, i), None, sizes.get(i, 0))
            for i, (a, o) in enumerate(zip(self.attempts, self.outcomes, strict=True))
        ]


class CallBatch:
    """The calls ``0 .. n-1`` of one job, settled into slots until their futures are asked for.

    Every attribute but ``futures`` and the slots is fixed; slots and ``futures`` change
    only while ``signal`` is held.
    """

    __slots__ = (
        "attempts",
        "backend",
        "errors",
        "futures",
        "job",
        "job_id",
        "left",
        "n",
        "on_read",
        "results",
        "signal",
        "sizes",
        "started",
        "submit",
        "values",
    )

    def __init__(
        self,
        job: Any,
        job_id: str,
        n: int,
        signal: Signal,
        backend: str,
        submit: float,
        on_read: Callable[[ResponseFuture], None] | None = None,
    ) -> None:
        self.job, self.job_id, self.n, self.signal = job, job_id, n, signal
        self.backend, self.submit, self.on_read = backend, submit, on_read
        self.results: list[Outcome | OutcomeBlock | BaseException | None] = [None] * n
        self.attempts = [0] * n
        self.left = n  # calls not settled yet
        self.errors = 0  # calls settled with an error
        self.sizes: dict[int, int] = {}  # delivered results whose pickled bytes were dropped: their sizes
        self.started: set[int] = set()  # calls reported running (for futures made later)
        self.futures: list[ResponseFuture] | None = None
        self.values: list[Any] | None = None  # the results, once delivered from the slots

    def __repr__(self) -> str:
        return f"<CallBatch {self.job_id} {self.n - self.left}/{self.n} done>"

    def settle(self, i: int, result: Outcome | BaseException, attempts: int) -> ResponseFuture | None:
        """Record call ``i``'s final result (the first settler wins); the caller holds ``signal``.

        Once the futures exist, returns call ``i``'s future for the caller to settle instead.
        """
        futures = self.futures
        if futures is not None:
            f = futures[i]
            if f.done:
                return None
            self.left -= 1
            return f
        if self.results[i] is not None:
            return None
        self.results[i] = result
        self.attempts[i] = attempts
        self.left -= 1
        if isinstance(result, BaseException) or not result.ok:
            self.errors += 1
        return None

    def settle_block(self, block: OutcomeBlock) -> bool:
        """Record the successful outcomes of ``block``'s calls, none of them settled yet, in one go
        (the caller does not hold ``signal``; waiters are woken). ``False`` (and nothing recorded)
        when the futures exist or a call of the block has its result already: the caller then
        settles them one by one."""
        first = block.first
        stop = first + len(block)
        with self.signal:
            results = self.results
            if self.futures is not None or results[first:stop].count(None) != stop - first:
                return False
            results[first:stop] = [block] * (stop - first)
            self.attempts[first:stop] = [a + 1 for a in self.attempts[first:stop]]
            self.left -= stop - first
            self.signal.notify_all()
        return True

    def outcome(self, i: int) -> Outcome | BaseException | None:
        """Call ``i``'s outcome (or the error that stopped it), ``None`` while it has none."""
        result = self.results[i]
        return result.outcome(i) if isinstance(result, OutcomeBlock) else result

    def settled(self, i: int) -> bool:
        """Call ``i`` has its final result (read by the one thread that settles)."""
        futures = self.futures
        return futures[i].done if futures is not None else self.results[i] is not None

    def mark_running(self, i: int) -> None:
        futures = self.futures
        if futures is not None:
            futures[i]._mark_running()
        else:
            self.started.add(i)

    def materialize(self) -> list[ResponseFuture]:
        """The calls' futures, made once, in the state the slots record."""
        with self.signal:
            if self.futures is None:
                self.futures = [self._future(i) for i in range(self.n)]
            return self.futures

    def _future(self, i: int) -> ResponseFuture:
        f = ResponseFuture(self.job_id, i, self.signal, backend=self.backend, submit=self.submit, on_read=self.on_read)
        result = self.outcome(i)
        if result is None:
            if i in self.started:
                f._mark_running()
            return f
        if isinstance(result, BaseException):
            settle_future(f, result, self.attempts[i], None)
        else:
            exc = None if result.ok else remote_exception(result, f.call_key)
            settle_future(f, exc, self.attempts[i], result)
        if self.values is not None:  # delivered from the slots: the future holds its read value
            f._value, f._read, f._on_read = self.values[i], True, None
            f._result_size = self.sizes.get(i, 0)
        return f

    def deliver(self) -> tuple[list[Any], BatchTelemetry | None] | None:
        """The values of a batch whose calls all succeeded, read from the slots, and its telemetry
        (``None`` if they were delivered before: the same values again).

        ``None`` when the futures exist (or appear meanwhile) or a value holds futures: the
        caller then delivers through the futures. The caller has seen every slot settled.
        """
        if self.futures is not None:
            return None
        if self.values is not None:
            return list(self.values), None
        results: list[Any] = self.results
        values: list[Any] = []
        sizes: dict[int, int] = {}
        kept: list[Outcome | OutcomeBlock] = []
        loads, i, n = pickle.loads, 0, self.n
        while i < n:
            o = results[i]
            if type(o) is OutcomeBlock:  # a block's calls are settled together: i is its first call
                payloads = o.payloads()[i - o.first :]
                values += map(loads, payloads)
                kept += [o.trimmed(sizes)] * len(payloads)
                i += len(payloads)
                continue
            values.append(loads(o.payload))
            if len(o.payload) > KEPT_PAYLOAD:
                sizes[i] = len(o.payload)
                kept.append(without_payload(o))
            else:
                kept.append(o)
            i += 1
        if any(issubclass(t, _MAYBE_FUTURES) for t in set(map(type, values))):  # per type, not per value
            from xtremehub.compute.futures import nested_futures

            if any(nested_futures(v) is not None for v in values):
                return None
        with self.signal:
            if self.futures is not None:
                return None
            self.values, self.sizes = values, sizes
            self.results = kept  # type: ignore[assignment]
        return values, BatchTelemetry(self, kept, sizes)
