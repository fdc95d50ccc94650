"""Ray backend: every engine task is a Ray remote function running :func:`run_remote_packed`.

Ray is used as it is: if this process is already connected (``ray.init`` done by
the user), the backend uses that connection and leaves it open; otherwise it
calls ``ray.init(address)`` itself (no address: a local instance with
``workers`` CPUs) and shuts the connection down when the executor closes, which
never stops a cluster the user started. Ray's own task retries are turned off
(``max_retries=0``): retries belong to the executor, the same on every backend.
A call past its time limit is cancelled with ``ray.cancel(force=True)``, which
kills its worker process; the limit counts from submission, so on a busy cluster
queueing time counts too. A worker that dies is reported as
:class:`~xtremehub.errors.WorkerDied`; Ray does not say how it died.

Example (needs the ``ray`` extra)::

    with FunctionExecutor("ray", address="auto") as fexec:   # an existing cluster
        fexec.get_result(fexec.map(abs, [-1, -2]))
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import os
import pickle
import queue
from collections.abc import Hashable
from typing import Any

import psutil
import ray
from ray.exceptions import GetTimeoutError, RayError, TaskCancelledError, WorkerCrashedError

from xtremehub.compute.backends._engine import EngineBackend, Polled, run_remote_packed
from xtremehub.compute.backends._orphans import Reaper
from xtremehub.compute.backends.base import Job
from xtremehub.compute.task import Call, dumps
from xtremehub.config import Settings

__all__ = ["RayBackend"]

log = logging.getLogger(__name__)


@functools.cache
def _remote_run_remote() -> Any:
    """The Ray remote function, made once per process (Ray exports it to workers once per session)."""
    return ray.remote(max_retries=0)(_run_packed)


def _run_packed(head: bytes, func_bytes: bytes, calls: list[Call] | bytes) -> bytes:
    """The worker side: :func:`run_remote_packed` with the job's shared arguments unpacked."""
    settings, job_id = pickle.loads(head)
    return run_remote_packed("ray", settings, job_id, func_bytes, calls)


_INLINE_LIMIT = 64 * 1024  # Ray inlines arguments up to 100 KiB in the task spec


class RayBackend(EngineBackend):
    """Calls as Ray tasks.

    Args:
        address: a Ray cluster (``"auto"``, ``"ray://head:10001"``); ``None``: the
            current connection, else a new local instance.
        workers: CPUs of a local instance started here (default: all cores).
        init_options: more keyword arguments for ``ray.init`` when the backend calls it.
        task_options: options of the remote function (``num_cpus``, ``resources``, ...).
    """

    name = "ray"
    adaptive_chunks = True
    label = "Ray"
    died_errors = (WorkerCrashedError,)
    cancelled_errors = (TaskCancelledError,)
    enforces_timeouts = True

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        init_options: dict[str, Any] | None = None,
        task_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(workers)
        self._address = address
        self._init_options = dict(init_options or {})
        self._task_options = {"num_cpus": 1, **(task_options or {}), "max_retries": 0}
        self._owns_connection = False
        self._reaper: Reaper | None = None
        self._remote: Any = None
        self._finished: queue.SimpleQueue[tuple[Any, cf.Future[Any]]] = queue.SimpleQueue()

    def _connect(self, settings: Settings) -> int:
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
                **self._init_options,
            }
            if self._address is None:
                options.setdefault("num_cpus", self._n or os.cpu_count() or 1)
            before = {p.pid for p in psutil.Process().children(recursive=True)}
            ray.init(address=self._address, **options)
            started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
            if started:  # Ray's agents outlive a driver killed by SIGKILL: make sure they go with us
                self._reaper = Reaper(started)
            self._owns_connection = True
            log.info("connected to Ray (%s)", self._address or "new local instance")
        elif self._address not in (None, "auto"):
            log.warning("Ray is already connected; ignoring address %r", self._address)
        self._remote = _remote_run_remote().options(**self._task_options)
        return int(ray.cluster_resources().get("CPU", 1))

    def _launch(
        self, job: Job, batches: list[list[Call]], settings: Settings, packed: list[bytes] | None = None
    ) -> list[Hashable]:
        # What every task of the job shares is pickled once into bytes that travel inside the
        # task spec (Ray serializes each argument of each task separately, ~30 us apiece);
        # a large function (big closure) goes to the object store once instead.
        head = job.extra.get("_ray_head")
        if head is None:
            func: Any = job.func_bytes
            if len(func) > _INLINE_LIMIT:
                func = ray.put(func)
            head = job.extra["_ray_head"] = (pickle.dumps((settings, job.job_id), protocol=5), func)
        # Every batch is pickled before any is submitted: an argument that cannot be pickled
        # fails the whole submission, never after the batches before it have started.
        if packed is None:
            packed = [dumps(batch) for batch in batches]
        refs = [self._remote.remote(head[0], head[1], batch) for batch in packed]
        for ref in refs:
            future = ref.future()
            future.add_done_callback(functools.partial(self._arrived, ref))
        return list(refs)

    def _arrived(self, ref: Any, future: cf.Future[Any]) -> None:
        self._finished.put((ref, future))

    def _poll(self, handles: list[Hashable], timeout: float) -> Polled:
        # Ray calls back when each result is ready (no ray.wait over everything in flight,
        # which costs O(in flight) per poll): take what has arrived, in one batch.
        try:
            arrived = [self._finished.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                arrived.append(self._finished.get_nowait())
            except queue.Empty:
                break
        done: Polled = []
        for ref, future in arrived:
            try:
                done.append((ref, future.result(timeout=0)))
            except (RayError, GetTimeoutError, cf.CancelledError) as exc:
                done.append((ref, exc))
        return done

    def _cancel(self, handles: list[Hashable], force: bool) -> None:
        for ref in handles:
            try:
                ray.cancel(ref, force=force)
            except (RayError, TypeError, ValueError) as exc:  # already finished or gone
                log.debug("could not cancel Ray task: %s", exc)

    def _disconnect(self) -> None:
        if self._owns_connection:
            ray.shutdown()
            self._owns_connection = False
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
