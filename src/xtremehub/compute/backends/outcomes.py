"""Outcomes for calls that never ran: the one way every backend reports such a failure.

A backend that cannot run a call at all (its arguments do not unpickle, its job's
function is unknown, its engine rejected the batch) still answers with an
:class:`~xtremehub.compute.task.Outcome`, so that the executor re-raises the cause
on the caller's side like any task error.

Example:
    >>> outcome = failed_outcome("job-1", 3, KeyError("job-1"), "unknown job", "worker-0")
    >>> outcome.ok, outcome.call_id, outcome.error_message
    (False, 3, "unknown job: 'job-1'")
"""

from __future__ import annotations

import time

from xtremehub.compute.task import Outcome, dumps

__all__ = ["failed_outcome"]


def failed_outcome(job_id: str, call_id: int, exc: BaseException, reason: str, name: str) -> Outcome:
    """A failed :class:`Outcome` for call ``call_id`` of ``job_id`` that never ran on worker ``name``.

    The exception is pickled when possible (the caller then re-raises it as
    itself); ``reason`` says why the call could not run.
    """
    now = time.time()
    try:
        payload = dumps(exc)
    except Exception:
        payload = b""
    return Outcome(
        job_id,
        call_id,
        False,
        payload,
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        error_message=f"{reason}: {exc}",
        remote_traceback=f"{reason}: {type(exc).__name__}: {exc}\n",
        start=now,
        end=now,
        worker=name,
    )
