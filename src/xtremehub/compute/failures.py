"""The failed calls of a job, with their remote tracebacks, as lineage records them.

When a call raises on a worker, the worker sends back the exception's type, message and the
traceback it printed (:class:`~xtremehub.compute.task.Outcome`), and the driver rebuilds the
exception with that text as ``remote_traceback`` (:func:`~xtremehub.compute.futures.remote_exception`;
a :class:`~xtremehub.errors.TaskError` when the exception itself could not travel). A call that
never answered (its worker died, it timed out) fails with a local exception and no remote
traceback.

:func:`failures_of` turns a job's settled futures into :class:`CallFailure` records, bounded so
that a job's record stays small whatever fails: the first :data:`MAX_FAILURES` failed calls
(by call id), each message and traceback cut to a JSON-encoded size (the traceback keeps its
end, where the raising frame and the exception are), each cut saying how much was left out.
The lineage tracer stores them in the job's telemetry summary under :data:`TELEMETRY_KEY`
(and :data:`OMITTED_KEY`), and :func:`recorded_failures` reads them back.

Example:
    >>> f = CallFailure(3, "builtins.ValueError", "bad record", "Traceback ...\\nValueError: bad record\\n")
    >>> recorded_failures({TELEMETRY_KEY: [f.to_json()], OMITTED_KEY: 2}) == ([f], 2)
    True
    >>> recorded_failures({"failures": 1})
    ([], 0)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "MAX_FAILURES",
    "MAX_MESSAGE_BYTES",
    "MAX_TRACEBACK_BYTES",
    "OMITTED_KEY",
    "TELEMETRY_KEY",
    "CallFailure",
    "clip",
    "failures_of",
    "recorded_failures",
]

log = logging.getLogger(__name__)

#: At most this many failed calls are kept per job (the first, by call id); the rest are counted.
MAX_FAILURES = 20
#: A traceback is kept to this many bytes of JSON (its end); the message to :data:`MAX_MESSAGE_BYTES`.
MAX_TRACEBACK_BYTES = 8000
MAX_MESSAGE_BYTES = 1000
#: Where a job's telemetry summary keeps its failed calls, and how many more failed.
TELEMETRY_KEY = "failed_calls"
OMITTED_KEY = "failed_calls_omitted"


@dataclass(frozen=True)
class CallFailure:
    """One failed call of a job.

    Attributes:
        call_id: the call's index in the job.
        error_type: qualified name of the exception type (``builtins.ValueError``).
        message: the exception's message (cut to :data:`MAX_MESSAGE_BYTES`).
        remote_traceback: the traceback printed on the worker ('' when the call never answered),
            its end kept within :data:`MAX_TRACEBACK_BYTES`.
        traceback_omitted: characters left out of the start of ``remote_traceback``.
        worker: the worker that ran the call ('' when unknown).
        attempts: how many times the call ran.
    """

    call_id: int
    error_type: str
    message: str = ""
    remote_traceback: str = ""
    traceback_omitted: int = 0
    worker: str = ""
    attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return asdict(self)


def _plain(text: str) -> str:
    """``text`` storable in any JSON column: NUL and lone surrogates become backslash escapes."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def clip(text: str, max_bytes: int, *, keep: str = "end") -> tuple[str, int]:
    """``text`` cut to at most ``max_bytes`` bytes of JSON, and how many characters were left out.

    ``keep``: ``"end"`` keeps the last characters (a traceback), ``"start"`` the first (a message).

    Example:
        >>> clip("abcdef", 6)  # '"cdef"' is 6 bytes of JSON
        ('cdef', 2)
        >>> clip("abcdef", 6, keep="start"), clip("ab", 6)
        (('abcd', 2), ('ab', 0))
    """
    text = _plain(text)
    size = len(json.dumps(text))
    kept = len(text)
    while size > max_bytes and kept > 0:
        kept = min(kept - 1, kept * max_bytes // size)
        part = text[len(text) - kept :] if keep == "end" else text[:kept]
        size = len(json.dumps(part))
    if kept == len(text):
        return text, 0
    return (text[len(text) - kept :] if keep == "end" else text[:kept]), len(text) - kept


def _failure(future: Any) -> CallFailure:
    """The :class:`CallFailure` of a failed, settled future (its outcome, else its exception)."""
    exc = future._exception
    outcome = future._outcome
    if outcome is not None and not outcome.ok:  # the worker answered: its own account
        error_type, message = outcome.error_type, outcome.error_message
        trace, worker = outcome.remote_traceback, outcome.worker
        attempts = max(future._attempts, outcome.attempt + 1)
    else:  # never answered (worker died, timed out, executor closed): the local exception
        error_type, message = f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc)
        trace = getattr(exc, "remote_traceback", "") or ""
        worker, attempts = "", max(future._attempts, 1)
    message, _ = clip(str(message), MAX_MESSAGE_BYTES, keep="start")
    trace, omitted = clip(str(trace), MAX_TRACEBACK_BYTES)
    return CallFailure(int(future.call_id), str(error_type), message, trace, omitted, str(worker), int(attempts))


def failures_of(futures: Iterable[Any]) -> tuple[list[CallFailure], int]:
    """The failed calls among settled ``futures`` (the first :data:`MAX_FAILURES` by call id), and
    how many more failed."""
    failed = sorted((f for f in futures if f._exception is not None), key=lambda f: f.call_id)
    return [_failure(f) for f in failed[:MAX_FAILURES]], max(0, len(failed) - MAX_FAILURES)


def recorded_failures(telemetry: Mapping[str, Any]) -> tuple[list[CallFailure], int]:
    """The failed calls a job's telemetry summary keeps, and how many more failed (malformed
    entries, as a hand-made record may hold, are skipped)."""
    items = telemetry.get(TELEMETRY_KEY)
    out: list[CallFailure] = []
    for item in items[:MAX_FAILURES] if isinstance(items, list) else ():
        try:
            out.append(
                CallFailure(
                    call_id=int(item["call_id"]),
                    error_type=str(item.get("error_type", "")),
                    message=str(item.get("message", "")),
                    remote_traceback=str(item.get("remote_traceback", "")),
                    traceback_omitted=int(item.get("traceback_omitted", 0)),
                    worker=str(item.get("worker", "")),
                    attempts=int(item.get("attempts", 1)),
                )
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            log.debug("skipping a malformed failure record %r: %s", item, exc)
    omitted = telemetry.get(OMITTED_KEY, 0)
    return out, omitted if isinstance(omitted, int) and omitted > 0 else 0
