"""The harness that runs CPython's multiprocessing test classes against ``xtremehub.multiprocessing``.

Imported by test_cpython_multiprocessing.py, and by the per-backend copies of the
vendored module (on this machine and in Dask's workers, which import them by name
to find the test classes that tasks refer to, as the standard library's workers do).

For each backend, a module ``_cpython_mp_<backend>`` is written to a temporary
directory on ``sys.path``: it runs the vendored source, then :func:`install`, which
replaces its module-level name ``multiprocessing`` with :class:`_Shim`
(``xtremehub.multiprocessing``'s names for that backend, the standard library for
the rest: ``multiprocessing.pool``, ``.heap``, ``get_start_method``, ...) and adds
the test classes the way CPython's ``install_tests_in_module_dict`` makes them:
``class WithProcessesTestPool(_TestPool, Mixin, unittest.TestCase)``, the mixin's
``Pool``, ``Process``, ``Queue``, ... coming from an ``xtremehub.multiprocessing``
context of the backend. Only the tests in :data:`KNOWN_GAPS` (the list of
docs/multiprocessing.md) are skipped, with their reason.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import sys
import tempfile
import types
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xtremehub import multiprocessing as xmp

VENDORED = Path(__file__).with_name("_test_multiprocessing.py")
BACKENDS = ("local", "dask", "ray", "dask_service")
#: The shared-state classes, run also on Ray and on Dask with the state on the node service
#: (``get_context(..., shared_state="service")``, :mod:`xtremehub.state`).
SHARED_STATE_CLASSES = (
    "_TestQueue",
    "_TestLock",
    "_TestSemaphore",
    "_TestEvent",
    "_TestBarrier",
    "_TestValue",
    "_TestArray",
    "_TestContainers",
)
#: Backends that run only some classes.
ONLY: dict[str, tuple[str, ...]] = {"ray": SHARED_STATE_CLASSES, "dask_service": SHARED_STATE_CLASSES}
#: Where the per-backend modules are written; inherited by spawned workers through the environment.
_MODULE_DIR_VARIABLE = "XHUB_CPYTHON_TESTS_DIR"

#: Vendored tests that cannot pass on a backend, with the reason; docs/multiprocessing.md lists the same.
#: ``"_TestX.*"`` covers a whole class.
_CLOUDPICKLE_RESULTS = (
    "deliberate: results the standard pickler refuses (a lambda) are sent with cloudpickle, so the "
    "call succeeds instead of raising MaybeEncodingError"
)
_NO_SHARED_STATE = "needs shared state (Queue, Event, Pipe, Lock, Value, Manager...), which Dask does not declare"
_DASK_STOP = (
    "Dask cannot stop a running task: terminate() reports the process stopped at once, but the "
    "call keeps a Dask worker busy until it returns (30 s to 300 s here, stalling the tests after it)"
)
_DUMMY_LIST = (
    "the Barrier tests count with _DummyList, an anonymous shared-memory buffer that only fork "
    "inheritance can pass, and need 5 processes running at once (the cluster has 2 slots)"
)
KNOWN_GAPS: dict[str, dict[str, str]] = {
    "local": {
        "_TestPoolWorkerErrors.test_unpickleable_result": _CLOUDPICKLE_RESULTS,
    },
    "dask": {
        "_TestPoolWorkerErrors.test_unpickleable_result": _CLOUDPICKLE_RESULTS,
        "_TestPool.test_make_pool": "Pool._pool lists worker processes; Dask's workers are not the pool's",
        "_TestPool.test_terminate": _DASK_STOP,
        "_TestPool.test_async_timeout": _DASK_STOP,
        "_TestProcess.test_terminate": _DASK_STOP,
        "_TestProcess.test_parent_process": _DASK_STOP,
        "_TestProcess.test_parent_process_attributes": (
            "parent_process() in a Dask task is the Dask worker's parent (its nanny), not the process that "
            "started the Process"
        ),
        "_TestProcess.test_process": (
            "Process.pid is None on Dask: the call runs in a Dask worker (possibly on another machine), "
            "which has its own pid"
        ),
        "_TestBarrier.*": _DUMMY_LIST,
        "TestInitializers.test_pool_initializer": (
            "Dask's workers are the engine's: the initializer runs before a worker's first task of the pool, "
            "so a pool that never gets a task never runs it"
        ),
        "_TestProcess.test_kill": _DASK_STOP,
        "_TestProcess.test_many_processes": _DASK_STOP,
    },
    "ray": {"_TestBarrier.*": _DUMMY_LIST},
    "dask_service": {"_TestBarrier.*": _DUMMY_LIST},
}

VENDORED = Path(__file__).with_name("_test_multiprocessing.py")
#: The classes vendored from CPython (issue 21), with the mixin type each is run with.
CLASSES = {
    "_TestPool": "processes",
    "_TestPoolWorkerErrors": "processes",
    "_TestProcess": "processes",
    "_TestQueue": "processes",
    "_TestLock": "processes",
    "_TestSemaphore": "processes",
    "_TestEvent": "processes",
    "_TestBarrier": "processes",
    "_TestValue": "processes",
    "_TestArray": "processes",
    "_TestContainers": "manager",
    "TestInitializers": None,  # a plain unittest.TestCase
}
#: xtremehub.multiprocessing's names that the shim takes from the backend's context.
_FROM_CONTEXT = [
    "Pool",
    "Process",
    "Manager",
    "Pipe",
    "Queue",
    "JoinableQueue",
    "SimpleQueue",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
    "Value",
    "Array",
    "RawValue",
    "RawArray",
    "cpu_count",
]
#: ... and the ones that are the same on every backend.
_FROM_PACKAGE = [
    "TimeoutError",
    "AuthenticationError",
    "BufferTooShort",
    "ProcessError",
    "current_process",
    "parent_process",
    "set_executable",
    "freeze_support",
]


def _active_children() -> list[multiprocessing.process.BaseProcess]:
    """``xtremehub.multiprocessing.active_children()`` less the workers of the Dask clusters that this
    test process runs (tests/conftest.py's ``dask_client``, :func:`_dask_context`'s): their nannies start
    them as multiprocessing children of this process, but they are the engines' processes, not the
    tests'. The vendored ``ManagerMixin.tearDownClass`` waits 5 s for "only the manager process" to be
    left, which these long-lived workers never let happen.
    """
    return [p for p in xmp.active_children() if p.name != _DASK_NANNY_WORKER]


#: The name distributed's Nanny gives the worker processes it starts.
_DASK_NANNY_WORKER = "Dask Worker process (from Nanny)"


class _Shim(types.ModuleType):
    """``multiprocessing`` as the vendored test bodies see it."""

    def __init__(self, context: Callable[[], xmp.Context]) -> None:
        super().__init__("multiprocessing")
        self._context = context

    def __getattr__(self, name: str) -> Any:
        if name in _FROM_CONTEXT:
            return getattr(self._context(), name)
        if name == "active_children":
            return _active_children
        if name in _FROM_PACKAGE:
            return getattr(xmp, name)
        return getattr(multiprocessing, name)


# -- the backends' contexts -----------------------------------------------------------------
_dask: dict[str, Any] = {}


def _local_context() -> xmp.Context:
    return xmp.get_context("local")


def _dask_context() -> xmp.Context:
    """A Dask LocalCluster of its own (a terminated process may keep a worker busy), made on first use;
    in a Dask worker (a process started by a test's process), a client of the same cluster."""
    if "context" not in _dask:
        from distributed import get_client, get_worker

        try:
            get_worker()
        except ValueError:
            pass
        else:
            _dask["context"] = xmp.get_context("dask", client=get_client())
            return _dask["context"]  # type: ignore[no-any-return]
        import dask
        from distributed import Client, LocalCluster

        with dask.config.set({"distributed.scheduler.allowed-failures": 0, "logging.distributed": "critical"}):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
            client = Client(cluster, set_as_default=False)
        _dask.update(cluster=cluster, client=client, context=xmp.get_context("dask", client=client))
    return _dask["context"]  # type: ignore[no-any-return]


def _dask_service_context() -> xmp.Context:
    """The Dask cluster of :func:`_dask_context`, with the shared state on the node service."""
    if "service" not in _dask:
        base = _dask_context()
        _dask["service"] = xmp.get_context("dask", shared_state="service", **base.backend_options)
    return _dask["service"]  # type: ignore[no-any-return]


_ray: dict[str, Any] = {}


def _ray_context() -> xmp.Context:
    """Ray (the session's instance, tests/conftest.py's ``ray_engine``); its workers import the
    per-backend module through ``PYTHONPATH`` in the tasks' runtime environment."""
    if "context" not in _ray:
        here = str(Path(__file__).parent)  # the per-backend modules import this harness
        path = os.pathsep.join(p for p in (os.environ[_MODULE_DIR_VARIABLE], here, os.environ.get("PYTHONPATH")) if p)
        options = {
            "runtime_env": {"env_vars": {"PYTHONPATH": path, _MODULE_DIR_VARIABLE: os.environ[_MODULE_DIR_VARIABLE]}}
        }
        _ray["context"] = xmp.get_context("ray", task_options=options)
    return _ray["context"]  # type: ignore[no-any-return]


def close_dask() -> None:
    if "client" in _dask:
        _dask["client"].close()
        _dask["cluster"].close()
        _dask.clear()


# -- loading the vendored module once per backend ----------------------------------------------
_MODULE_SOURCE = """# generated by xhub_cpython_harness: CPython's vendored tests for the {backend!r} backend
import xhub_cpython_harness as _harness

exec(compile(_harness.VENDORED.read_text(), str(_harness.VENDORED), "exec"))
_harness.install(globals(), {backend!r})
"""


def load_modules() -> dict[str, types.ModuleType]:
    """The per-backend modules (written once per session, then imported by name)."""
    directory = os.environ.get(_MODULE_DIR_VARIABLE)
    if directory is None:
        directory = os.environ[_MODULE_DIR_VARIABLE] = tempfile.mkdtemp(prefix="xhub-cpython-tests-")
        for backend in BACKENDS:
            Path(directory, f"_cpython_mp_{backend}.py").write_text(_MODULE_SOURCE.format(backend=backend))
    if directory not in sys.path:
        sys.path.insert(0, directory)  # workers spawned later (Dask's) inherit sys.path
    return {backend: importlib.import_module(f"_cpython_mp_{backend}") for backend in BACKENDS}


def _processes_mixin(module: types.ModuleType, context: Callable[[], xmp.Context]) -> type:
    def from_context(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:  # the context is made when first used
            return getattr(context(), name)(*args, **kwargs)

        return staticmethod(call)

    class ProcessClass:
        """``cls.Process(...)`` and ``multiprocessing.Process.terminate(p)`` as the tests use them."""

        def __get__(self, obj: object, owner: type | None = None) -> type:
            return context().Process

    attributes: dict[str, Any] = {
        "TYPE": "processes",
        "Process": ProcessClass(),
        "connection": multiprocessing.connection,
        "current_process": staticmethod(xmp.current_process),
        "parent_process": staticmethod(xmp.parent_process),
        "active_children": staticmethod(_active_children),
        "set_executable": staticmethod(xmp.set_executable),
    }
    for name in _FROM_CONTEXT:
        if name not in ("Process", "Manager", "cpu_count"):
            attributes[name] = from_context(name)
    return type("XtremehubProcessesMixin", (module.BaseMixin,), attributes)


def _manager_mixin(module: types.ModuleType, processes_mixin: type) -> type:
    # The vendored ManagerMixin makes its manager with multiprocessing.Manager(): the shim's.
    return type("XtremehubManagerMixin", (module.ManagerMixin,), {"Process": processes_mixin.__dict__["Process"]})


def _skip_known_gaps(cls: type, base: str, backend: str) -> None:
    for key, reason in KNOWN_GAPS[backend].items():
        class_name, _, test = key.partition(".")
        if class_name != base:
            continue
        if test == "*":  # the whole class, its set-up included
            unittest.skip(f"{backend}: {reason}")(cls)
            continue
        for name in [test]:
            assert hasattr(cls, name), f"KNOWN_GAPS names a test that does not exist: {key}"
            setattr(cls, name, unittest.skip(f"{backend}: {reason}")(getattr(cls, name)))


_CONTEXTS: dict[str, Callable[[], xmp.Context]] = {
    "local": _local_context,
    "dask": _dask_context,
    "ray": _ray_context,
    "dask_service": _dask_service_context,
}


def install(namespace: dict[str, Any], backend: str) -> None:
    """Point ``multiprocessing`` at the shim and add the test classes to a vendored module's namespace."""
    module = types.SimpleNamespace(**namespace)
    context = _CONTEXTS[backend]
    namespace["multiprocessing"] = _Shim(context)
    mixins = {"processes": _processes_mixin(module, context)}
    mixins["manager"] = _manager_mixin(module, mixins["processes"])
    for name, type_ in CLASSES.items():
        if backend in ONLY and name not in ONLY[backend]:
            continue
        base = namespace[name]
        if type_ is None:
            cls = type(name, (base,), {})
        else:
            cls = type(f"With{type_.capitalize()}{name[1:]}", (base, mixins[type_], unittest.TestCase), {})
        _skip_known_gaps(cls, name, backend)
        cls.__name__ = cls.__qualname__ = f"{cls.__name__}_{backend}"
        cls.__module__ = namespace["__name__"]
        namespace[cls.__name__] = cls
