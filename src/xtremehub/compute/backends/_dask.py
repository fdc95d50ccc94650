"""Dask backend: every engine task is a ``dask.distributed`` future running :func:`run_remote_packed`.

Give it a :class:`distributed.Client` (used as it is, never closed here) or a
scheduler address (a client is opened and closed here, the cluster is left
alone); with neither, the backend starts a process-based ``LocalCluster`` of
``workers`` single-threaded workers and closes it with the executor. That
cluster is created with ``distributed.scheduler.allowed-failures = 0`` so that a
task whose worker dies fails at once and the executor's own retries apply, and
with ``worker-saturation = 1.0`` so that a worker holds only the task it runs
(Dask blames every task assigned to a dying worker). A cluster you bring keeps
its own settings: Dask then re-runs such a task on other workers a few times
before reporting it.

Dask runs tasks in threads and cannot stop a running one: a call past its time
limit is reported as :class:`~xtremehub.errors.TaskTimeout` at the limit (counted
from submission) and cancelled if it has not started, but a running call goes on
until it returns (``enforces_timeouts`` is ``False``). A worker that dies is
reported as :class:`~xtremehub.errors.WorkerDied`; Dask does not say how it died.

Example (needs the ``dask`` extra)::

    from distributed import Client
    with Client("tcp://scheduler:8786") as client, FunctionExecutor("dask", client=client) as fexec:
        fexec.get_result(fexec.map(abs, [-1, -2]))
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Hashable
from typing import Any

import dask
from distributed import Client, Future, LocalCluster
from distributed.scheduler import KilledWorker

from xtremehub.compute.backends._engine import EngineBackend, Polled, run_remote_packed
from xtremehub.compute.backends.base import Job
from xtremehub.compute.task import Call, dumps
from xtremehub.config import Settings
from xtremehub.errors import ExecutorClosed

__all__ = ["DaskBackend"]

log = logging.getLogger(__name__)

_SWEEP_SECONDS = 0.005  # how often a poll looks at the futures' states

#: Scheduler settings of a LocalCluster started here (see the module docstring).
_OWN_CLUSTER_CONFIG = {"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.worker-saturation": 1.0}


class DaskBackend(EngineBackend):
    """Calls as Dask futures.

    Args:
        client: a ``distributed.Client`` to use, or a scheduler address to connect to;
            ``None``: a new ``LocalCluster``.
        workers: worker processes of a ``LocalCluster`` started here (default: all cores).
        cluster_options: more keyword arguments for that ``LocalCluster``.
    """

    name = "dask"
    adaptive_chunks = True
    label = "Dask"
    died_errors = (KilledWorker,)
    cancelled_errors = (ExecutorClosed,)
    enforces_timeouts = False

    @classmethod
    def shares_state(cls, options: dict[str, Any]) -> bool:
        """Shared state works when the workers are this process's children: a ``LocalCluster``
        started here (no ``client``), or a client of a ``LocalCluster`` object of this process.
        Its nannies spawn the workers with this process's authentication key, and the workers
        reach a manager on this machine. A scheduler address may be anywhere: no."""
        client = options.get("client")
        if client is None:
            return True
        return isinstance(client, Client) and isinstance(getattr(client, "cluster", None), LocalCluster)

    def __init__(
        self,
        client: Client | str | None = None,
        *,
        workers: int | None = None,
        cluster_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(workers)
        self.supports_shared_state = self.shares_state({"client": client})
        self._given = client
        self._cluster_options = dict(cluster_options or {})
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._owns_client = False
        self._futures: dict[str, Future[Any]] = {}
        self._keys = itertools.count()

    def _connect(self, settings: Settings) -> int:
        if isinstance(self._given, Client):
            self._client = self._given
        else:
            if self._given is None:
                options = {
                    "n_workers": self._n or os.cpu_count() or 1,
                    "threads_per_worker": 1,
                    "processes": True,
                    "dashboard_address": ":0",  # a free port: never a warning about a busy 8787
                    **self._cluster_options,
                }
                with dask.config.set(
                    {"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.worker-saturation": 1.0}
                ):
                    self._cluster = LocalCluster(**options)
                address: Any = self._cluster
            else:
                address = self._given
            self._client = Client(address, set_as_default=False)
            self._owns_client = True
        threads = self._client.nthreads()
        return sum(threads.values()) if isinstance(threads, dict) else 0

    def _launch(
        self, job: Job, batches: list[list[Call]], settings: Settings, packed: list[bytes] | None = None
    ) -> list[Hashable]:
        assert self._client is not None
        keys = [f"xhub-{job.job_id}-{next(self._keys)}" for _ in batches]
        # Each batch goes pickled: the scheduler unpickles a task's arguments and its stream to
        # the worker keeps its last messages (``distributed.admin.low-level-log-length``, 1000),
        # so arguments as objects would stay alive there, in this process with a LocalCluster.
        futures = self._client.map(
            run_remote_packed,
            ["dask"] * len(batches),
            [settings] * len(batches),
            [job.job_id] * len(batches),
            [job.func_bytes] * len(batches),
            [dumps(batch) for batch in batches] if packed is None else packed,
            key=keys,
            pure=False,
            retries=0,
        )
        for key, future in zip(keys, futures, strict=True):
            self._futures[key] = future
        return list(keys)

    def _poll(self, handles: list[Hashable], timeout: float) -> Polled:
        # A future's state is kept current by the client's event loop: sweeping the states is
        # far cheaper than a done-callback per future (a coroutine and a thread hop each).
        end = time.monotonic() + timeout
        while True:
            finished = [f for f in (self._futures.get(str(h)) for h in handles) if f is not None and f.done()]
            if finished or time.monotonic() >= end:
                break
            time.sleep(min(_SWEEP_SECONDS, max(0.0, end - time.monotonic())))
        if not finished:
            return []
        assert self._client is not None
        done: Polled = []
        ok = [f for f in finished if f.status == "finished"]
        results = self._client.gather(ok) if ok else []
        for future, result in zip(ok, results, strict=True):
            done.append((future.key, result))
        for future in finished:
            if future.status != "finished":
                try:
                    error = future.exception(timeout=5) if future.status == "error" else None
                except Exception as exc:  # cancelled or lost
                    error = exc
                done.append((future.key, error or ExecutorClosed(f"Dask task {future.key} was cancelled")))
        for key, _ in done:
            self._futures.pop(str(key), None)
        return done

    def _cancel(self, handles: list[Hashable], force: bool) -> None:
        futures = [f for f in (self._futures.pop(str(h), None) for h in handles) if f is not None]
        if futures and self._client is not None:
            self._client.cancel(futures)

    def _disconnect(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
