"""Outcomes for calls that never ran: the one way every backend reports such a failure.

A backend that cannot run a call at all (its arguments do not unpickle, its job's
function is unknown, its engine rejected the batch) still answers with an
:class:`~xtremehub.compute.task.Outcome`, so that the executor re-raises the cause
on the caller's side like any task error.

Outcomes travel back from workers packed (:func:`pack_outcomes`): one pickle of plain
tuples, because a named tuple pickles and unpickles through Python code per object,
which for calls of a few microseconds costs more than the calls.

A worker process that died is described the same way by every backend that sees its
exit code (:func:`describe_exit`).

Example:
    >>> unpack_outcomes(pack_outcomes([Outcome("job-1", 0, True, b"")]))[0].ok
    True
    >>> outcome = failed_outcome("job-1", 3, KeyError("job-1"), "unknown job", "worker-0")
    >>> outcome.ok, outcome.call_id, outcome.error_message
    (False, 3, "unknown job: 'job-1'")
    >>> describe_exit(-9), describe_exit(3)
    ('killed by SIGKILL: possibly out of memory', 'exit code 3')
"""

from __future__ import annotations

import pickle
import signal

from xtremehub.compute.task import Outcome, failed_fields

__all__ = ["describe_exit", "failed_outcome", "pack_outcomes", "unpack_outcomes"]


def failed_outcome(job_id: str, call_id: int, exc: BaseException, reason: str, name: str) -> Outcome:
    """A failed :class:`Outcome` for call ``call_id`` of ``job_id`` that never ran on worker ``name``.

    The exception is pickled when possible (the caller then re-raises it as
    itself); ``reason`` says why the call could not run.
    """
    return Outcome._make(failed_fields(job_id, call_id, exc, reason, name))


def describe_exit(code: int | None) -> str:
    """How a worker process ended, from its exit code (negative: the signal that killed it)."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ": possibly out of memory" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


def pack_outcomes(outcomes: list[Outcome]) -> bytes:
    """Outcomes as one pickle of plain tuples (what workers send back)."""
    return pickle.dumps([tuple(o) for o in outcomes], protocol=pickle.HIGHEST_PROTOCOL)


def unpack_outcomes(blob: bytes) -> list[Outcome]:
    """The outcomes :func:`pack_outcomes` packed, as :class:`~xtremehub.compute.task.Outcome` again."""
    new = tuple.__new__
    return [new(Outcome, fields) for fields in pickle.loads(blob)]
