"""Liveness of Lithops localhost activations: the ones whose task process ended without reporting.

Lithops learns that an activation finished only from the status its worker writes last. On
Lithops's localhost backend, a task process (the runner Lithops starts per call, or per job
with ``"localhost": {"version": 1}``) that dies before writing it (killed together with its
function, by the out-of-memory killer, or failing on a runner or task file that another run
broke in the ``/tmp/lithops-$USER`` directory all of a user's processes share) is only logged
by Lithops, and the activation's future never finishes. :class:`LocalhostWatch` looks at the
localhost backend's own task processes and reports such an activation as lost:

- a task process is watched from the moment it shows up in the backend's table of running
  processes; while it runs (a live process, not a zombie) its activation is alive, however
  long it takes;
- once it has ended, the activation is lost if ``grace`` seconds later it has still not
  reported and no status object of it is in Lithops's storage (a status written just before
  the end is only late: Lithops's monitor delivers it);
- an activation whose job's task processes have all ended (the job's latch is open) is lost
  the same way, even if its own process was never seen running (one that died at once);
- what a lost task process leaves behind in its process group (the function process forked
  by a runner that was killed) is killed, so that Lithops's worker slot is free again.

Other Lithops backends (serverless, standalone) show no processes: there the platform's own
time limit (Lithops's ``runtime_timeout``) ends a lost activation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil
from lithops.constants import RN_LOG_FILE
from lithops.localhost import LocalhostHandlerV1, LocalhostHandlerV2

from xtremehub.compute.backends.outcomes import describe_exit

__all__ = ["GRACE_SECONDS", "ActivationLost", "LocalhostWatch"]

log = logging.getLogger(__name__)

#: Seconds an ended task process has to report (status in storage or future finished) before
#: its activation counts as lost. Its status, if any, was written before it ended.
GRACE_SECONDS = 1.0
#: The same when the status cannot be read from storage (Lithops monitors through a queue).
QUEUE_GRACE_SECONDS = 5.0
#: How often the ended task processes are looked at (the running ones are noted every poll).
CHECK_SECONDS = 0.2


class ActivationLost(Exception):
    """A Lithops activation that can no longer report: its task process ended without a status."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


@dataclass(slots=True)
class _Ended:
    since: float  # when the task process was first seen ended (monotonic)
    reported: bool = False  # its status is in storage: only Lithops's monitor is late


class LocalhostWatch:
    """Finds the activations of a Lithops localhost executor that can no longer report.

    Args:
        env: the localhost handler's execution environment (its task processes and job latches).
        storage: Lithops's internal storage, where finished activations leave their status.
        per_call: one task process per call (localhost v2), else one per job (v1).
        read_status: whether statuses are objects in ``storage`` (Lithops's storage monitor).
    """

    def __init__(self, env: Any, storage: Any, *, per_call: bool, read_status: bool = True) -> None:
        self._env = env
        self._storage = storage
        self._per_call = per_call
        self._read_status = read_status
        self.grace = GRACE_SECONDS if read_status else QUEUE_GRACE_SECONDS
        self._processes: dict[str, Any] = {}  # "<job_key>-<call_id>" -> its task process, once seen
        self._ended: dict[str, _Ended] = {}
        self._checked = 0.0

    @classmethod
    def attach(cls, lexec: Any) -> LocalhostWatch | None:
        """A watch over a ``lithops.FunctionExecutor`` on the localhost backend, else None."""
        handler = getattr(lexec, "compute_handler", None)
        env = getattr(handler, "env", None)
        storage = getattr(lexec, "internal_storage", None)
        if env is None or storage is None or not isinstance(handler, LocalhostHandlerV1 | LocalhostHandlerV2):
            log.debug("no liveness check for Lithops activations on %s", type(handler).__name__)
            return None
        config = getattr(lexec, "config", None) or {}
        monitoring = str(config.get("lithops", {}).get("monitoring") or "storage").lower()
        return cls(env, storage, per_call=isinstance(handler, LocalhostHandlerV2), read_status=monitoring == "storage")

    def lost(
        self, handles: Sequence[Hashable], finished: Callable[[Any], bool]
    ) -> list[tuple[Hashable, ActivationLost]]:
        """The unfinished ``handles`` (Lithops futures) whose activation can no longer report."""
        if self._per_call:  # noted every poll: a task process may live for a fraction of a second
            for key, process in self._env.task_processes.copy().items():
                self._processes.setdefault(key, process)
        now = time.monotonic()
        if now - self._checked < CHECK_SECONDS:
            return []
        self._checked = now
        watched = {}
        current = set()
        lost: list[tuple[Hashable, ActivationLost]] = []
        for handle in handles:
            f: Any = handle
            key = f"{f.job_key}-{f.call_id}"
            if finished(f):
                continue
            current.add(key)
            process = self._process(f, key)
            if process is not None:
                watched[key] = process
            if not self._has_ended(f, process):
                continue
            ended = self._ended.setdefault(key, _Ended(now))
            if ended.reported or now - ended.since < self.grace or finished(f):
                continue
            status = self._status_written(f)
            if status is None:
                continue  # cannot tell now: asked again at the next check
            if status:
                ended.reported = True
                continue
            how = self._bury(process)
            log.warning("Lithops activation %s of job %s %s", f.call_id, f.job_key, how)
            lost.append((handle, ActivationLost(how)))
        self._processes = watched
        self._ended = {k: v for k, v in self._ended.items() if k in current}
        return lost

    def _process(self, f: Any, key: str) -> Any:
        """The task process running ``f``'s activation, if it was seen (per job on localhost v1)."""
        if self._per_call:
            return self._processes.get(key)
        return self._env.jobs.get(f.job_key)

    def _has_ended(self, f: Any, process: Any) -> bool:
        if process is not None:
            return not _alive(process)
        if not self._per_call:
            return False  # the job's process has not started yet
        latch = self._env.jobs.get(f.job_key)  # opens once every task process of the job ended
        return latch is not None and bool(latch.done)

    def _status_written(self, f: Any) -> bool | None:
        """Whether ``f``'s status object is in storage (None: it could not be read)."""
        if not self._read_status:
            return False
        try:
            return self._storage.get_call_status(f.executor_id, f.job_id, f.call_id) is not None
        except Exception as exc:  # a status being written, a storage hiccup: look again later
            log.debug("could not read the status of Lithops call %s/%s: %s", f.job_key, f.call_id, exc)
            return None

    def _bury(self, process: Any) -> str:
        """Kills what the ended task process left in its group; says how it ended."""
        if process is None:
            return "died before reporting (it ended too soon to be seen running: no exit code)"
        if process.returncode is None and hasattr(os, "killpg"):
            # A zombie nobody reaped yet: its pid, which Lithops made its process group's id
            # (a new session per task process), cannot have been reused; what is left in the
            # group (the function process it forked) would hold Lithops's worker slot.
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
        code = process.poll()  # thread-safe: returns None while Lithops's own thread reaps it
        if code is None:
            return "died before reporting"
        hint = f"; Lithops keeps its output in {RN_LOG_FILE}" if code > 0 else ""
        return f"died before reporting ({describe_exit(code)}{hint})"


def _alive(process: Any) -> bool:
    """Whether a task process (a ``subprocess.Popen``) still runs: not ended, not a zombie."""
    if process.returncode is not None:
        return False
    try:
        return bool(psutil.Process(process.pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # not ours to look at: assume it runs
        return True
