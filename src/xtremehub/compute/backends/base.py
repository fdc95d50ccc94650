"""The contract between the executor and a compute backend.

A backend runs :class:`~xtremehub.compute.task.Call` objects somewhere (local
processes, Ray, Dask, Lithops) and reports each one back exactly once, through
the callbacks it was given in :meth:`Backend.start`: an
:class:`~xtremehub.compute.task.Outcome` when the call ran (successfully or
not), or an exception when it could not run (worker died, time limit). Retries,
futures and progress live in the executor, identical for every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import cloudpickle

from xtremehub.compute.task import Call, Outcome
from xtremehub.config import Settings

__all__ = ["Backend", "Job", "ReportFn", "StartedFn"]

#: ``report([(call, outcome_or_error), ...])``: every submitted call appears exactly once,
#: in some batch; backends batch what arrives together so waiters are woken once per batch.
ReportFn = Callable[[list[tuple[Call, "Outcome | BaseException"]]], None]
#: ``started(call)``: optional notice that a call began running.
StartedFn = Callable[[Call], None]


@dataclass(eq=False)
class Job:
    """A function and the options shared by all its calls."""

    job_id: str
    func: Callable[..., Any]
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def func_bytes(self) -> bytes:
        """The function serialized once per job (cloudpickle: lambdas and closures work)."""
        return bytes(cloudpickle.dumps(self.func))


class Backend(ABC):
    """Runs calls; declares what it can do instead of being probed."""

    #: Registry name (``local``, ``ray``, ...).
    name: str = ""
    #: Whether a call that exceeds ``Job.timeout`` is stopped (else it is only reported late).
    enforces_timeouts: bool = False
    #: Whether calls may use proxies of a ``multiprocessing`` manager run by the client
    #: (``xtremehub.multiprocessing`` Queue, Lock, Value, Array, Manager): only when workers
    #: are children of the client that can reach it and share its authentication key.
    supports_shared_state: bool = False

    @classmethod
    def shares_state(cls, options: dict[str, Any]) -> bool:
        """Whether a backend made with these constructor ``options`` supports shared state.

        Decided from the options alone (nothing is started or probed); by default the class's
        :attr:`supports_shared_state`.
        """
        return cls.supports_shared_state

    @abstractmethod
    def start(self, settings: Settings, report: ReportFn, started: StartedFn) -> None:
        """Acquire resources (processes, a client); called once before the first submit."""

    @abstractmethod
    def submit(self, job: Job, calls: Sequence[Call]) -> None:
        """Queue calls for running; must not block on their completion."""

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Release resources; calls not yet reported are reported as failed."""

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many calls can run at once."""
