"""Lithops backend: calls run as activations of a real ``lithops.FunctionExecutor``.

Give it a ``lithops.FunctionExecutor`` (used as it is) or a Lithops config dict
(a Lithops executor is created here and cleaned up with ours); with neither,
Lithops reads its own configuration (``~/.lithops/config``, ``LITHOPS_CONFIG_FILE``).
Each engine task is one Lithops activation of :func:`run_remote`; Lithops runs it
wherever its backend runs functions (local processes, serverless functions,
Kubernetes jobs), so the workers need XtremeHub installed and resolve storage
credentials from their own environment or configuration.

Lithops enforces per-call time limits itself (``map(timeout=...)`` kills the
function), reported as :class:`~xtremehub.errors.TaskTimeout`; a function process
that is killed or exits is reported as :class:`~xtremehub.errors.WorkerDied`
with the signal or exit code Lithops observed. On the localhost backend, a task
process (Lithops's runner) that dies before reporting, which Lithops itself only
logs, is noticed by :class:`~xtremehub.compute.backends._lithops_watch.LocalhostWatch`:
its calls fail with :class:`~xtremehub.errors.WorkerDied` a second after the death
instead of waiting forever, and a live call is never failed however long it runs.
Lithops cannot cancel an activation once invoked: closing without waiting abandons
what still runs.

Example (needs the ``lithops`` extra)::

    config = {"lithops": {"backend": "localhost", "storage": "localhost"}}
    with FunctionExecutor("lithops", config=config) as fexec:
        fexec.get_result(fexec.map(abs, [-1, -2]))
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Hashable
from typing import Any

import lithops

from xtremehub.compute.backends._engine import EngineBackend, Polled, run_remote
from xtremehub.compute.backends._lithops_watch import ActivationLost, LocalhostWatch
from xtremehub.compute.backends.base import Job
from xtremehub.compute.task import Call
from xtremehub.config import Settings
from xtremehub.errors import ComputeError, ConfigError, TaskTimeout, WorkerDied

__all__ = ["LithopsBackend"]

log = logging.getLogger(__name__)

_EXIT_CODE = re.compile(r"exited with code (-?\d+)")


class LithopsBackend(EngineBackend):
    """Calls as Lithops activations.

    Args:
        executor: a ``lithops.FunctionExecutor`` to use (never cleaned up here).
        config: a Lithops configuration dict for a new Lithops executor.
        workers: how many activations the Lithops backend runs at once (default: the
            localhost backend's ``worker_processes``, else unknown).
        calls_per_activation: calls one activation runs when ``map`` has no ``chunksize``
            (default: one, or with a known worker count, enough calls that a map makes about
            two activations per worker; an activation costs ~0.3 s even on localhost).
        executor_options: more keyword arguments for ``lithops.FunctionExecutor``.
    """

    name = "lithops"
    label = "Lithops"
    enforces_timeouts = True
    poll_seconds = 0.05
    #: Lithops kills a function at its limit itself; the parent only steps in if it never reports.
    timeout_grace = 30.0

    def __init__(
        self,
        executor: Any = None,
        *,
        config: dict[str, Any] | None = None,
        workers: int | None = None,
        calls_per_activation: int | None = None,
        **executor_options: Any,
    ) -> None:
        super().__init__(workers)
        self._calls_per_activation = calls_per_activation
        if executor is not None and (config is not None or executor_options):
            raise ConfigError("give the Lithops backend either an executor or a config, not both")
        self._given = executor
        self._config = config
        self._executor_options = executor_options
        self._lexec: Any = None
        self._watch: LocalhostWatch | None = None

    def _connect(self, settings: Settings) -> int:
        if self._given is not None:
            self._lexec = self._given
        else:
            self._lexec = lithops.FunctionExecutor(config=self._config, **self._executor_options)
        self._watch = LocalhostWatch.attach(self._lexec)
        config = getattr(self._lexec, "config", None) or self._config or {}
        local = config.get("localhost", {}) if config.get("lithops", {}).get("backend") == "localhost" else {}
        return self._n or int(local.get("worker_processes") or 0)

    def _batch_size(self, calls: int) -> int:
        if self._calls_per_activation:
            return self._calls_per_activation
        return -(-calls // (2 * self._n)) if self._n else 1

    def _launch(
        self, job: Job, batches: list[list[Call]], settings: Settings, packed: list[bytes] | None = None
    ) -> list[Hashable]:
        items = [("lithops", settings, job.job_id, job.func_bytes, batch) for batch in batches]
        timeout = None if job.timeout is None else max(1, round(job.timeout))
        futures = self._lexec.map(run_remote, items, timeout=timeout, include_modules=None)
        return list(futures)

    def _poll(self, handles: list[Hashable], timeout: float) -> Polled:
        finished = [f for f in handles if _finished(f)]
        done: Polled = list(self._watch.lost(handles, _finished)) if self._watch is not None else []
        if not finished and not done:
            time.sleep(timeout)
            return []
        for future in finished:
            f: Any = future
            try:
                result = f.result(throw_except=False, internal_storage=self._lexec.internal_storage)
            except Exception as exc:  # the output could not be fetched
                done.append((future, exc))
                continue
            if f.error:
                exc_info = f._exception  # Lithops keeps (type, value, traceback) of a failed activation
                error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
                done.append((future, error if isinstance(error, BaseException) else ComputeError(str(error))))
            else:
                done.append((future, result))
        return done

    def _cancel(self, handles: list[Hashable], force: bool) -> None:
        pass  # Lithops cannot cancel invoked activations; it enforces time limits itself

    def _disconnect(self) -> None:
        if self._given is None and self._lexec is not None:
            self._lexec.__exit__(None, None, None)
            try:
                self._lexec.clean(clean_cloudobjects=False)
            except Exception as exc:
                log.debug("Lithops clean-up failed: %s", exc)
        self._lexec = None
        self._watch = None

    def _engine_error(self, exc: BaseException, key: str, job: Job) -> BaseException | None:
        if isinstance(exc, ActivationLost):
            return WorkerDied(f"the Lithops task process running call {key} {exc.how}")
        message = str(exc)  # Lithops reports limits and deaths only in its messages
        if isinstance(exc, TimeoutError) and "maximum time" in message:
            return TaskTimeout(f"call {key} ran longer than its {job.timeout:g}s limit on Lithops; it was stopped")
        if "SIGKILL" in message:
            return WorkerDied(f"the Lithops function running call {key} was killed by SIGKILL ({message})")
        if (m := _EXIT_CODE.search(message)) is not None:
            return WorkerDied(f"the Lithops function running call {key} died (exit code {m.group(1)})")
        return None


def _finished(future: Any) -> bool:
    return bool(future.ready or future.success or future.done)
