"""``xtremehub.multiprocessing`` on every backend in BACKENDS (the same tests, unchanged).

To run them on another backend, add its name to BACKENDS (one line); its marker
(ray, dask, lithops) is applied automatically. Task functions live in
:mod:`xtremehub.testing.mp_tasks` so workers of any backend can import them, and
nothing relies on state inherited through fork.
"""

from __future__ import annotations

import gc
import multiprocessing as std_mp
import multiprocessing.connection
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xtremehub import multiprocessing as xmp
from xtremehub.compute import register_backend
from xtremehub.compute.backends import BACKENDS as REGISTRY
from xtremehub.compute.backends._local import LocalBackend
from xtremehub.errors import ExecutorClosed
from xtremehub.testing.mp_tasks import (
    FileWritingProcess,
    add,
    cube,
    exit_with,
    fail_on,
    fill_slot,
    increment,
    initialized_value,
    put_later,
    put_square,
    record_init,
    report_identity,
    sleep_and_return,
)

BACKENDS = ["local", "dask"]
#: Engines started once per session (tests/compute/conftest.py) instead of one per pool.
ENGINE_FIXTURES = {"dask": ("client", "dask_client")}


@pytest.fixture(params=[pytest.param(b, marks=[getattr(pytest.mark, b)] if b != "local" else []) for b in BACKENDS])
def ctx(request: pytest.FixtureRequest) -> Iterator[xmp.Context]:
    context = xmp.get_context(request.param)
    yield context
    context.shutdown()


@pytest.fixture
def pool(ctx: xmp.Context, request: pytest.FixtureRequest) -> Iterator[xmp.Pool]:
    options = {}
    if ctx.backend in ENGINE_FIXTURES:
        option, fixture = ENGINE_FIXTURES[ctx.backend]
        options[option] = request.getfixturevalue(fixture)
    with ctx.Pool(2, **options) as p:
        yield p


# -- Pool -------------------------------------------------------------------------------
def test_map_family_matches_builtins(pool: xmp.Pool) -> None:
    data = list(range(-5, 30))
    assert pool.map(cube, data) == [cube(x) for x in data]
    assert pool.map(cube, data, chunksize=4) == [cube(x) for x in data]
    assert pool.map(cube, []) == []
    pairs = [(i, 2 * i) for i in range(12)]
    assert pool.starmap(add, pairs) == [add(*p) for p in pairs]
    assert pool.apply(add, (1, 2), {"c": 3}) == 6
    assert list(pool.imap(cube, data)) == [cube(x) for x in data]
    assert list(pool.imap(cube, data, chunksize=5)) == [cube(x) for x in data]
    assert sorted(pool.imap_unordered(cube, data)) == sorted(cube(x) for x in data)
    # tuples are single arguments for map (as in the standard library), not unpacked
    assert pool.map(len, [(1, 2), (3,), ()]) == [2, 1, 0]


def test_imap_unordered_yields_in_completion_order(pool: xmp.Pool) -> None:
    # A worker may have fast items queued behind the slow one, but the other worker's come first.
    items = [("slow", 1.5)] + [(f"fast{i}", 0.0) for i in range(10)]
    order = list(pool.imap_unordered(_sleep_pair, items))
    assert sorted(order) == sorted(name for name, _ in items)
    assert order[0] != "slow"
    assert list(pool.imap(_sleep_pair, items)) == [name for name, _ in items]


def _sleep_pair(item: tuple[str, float]) -> str:
    return sleep_and_return(*item)  # type: ignore[no-any-return]


def test_async_results(pool: xmp.Pool) -> None:
    got: list[Any] = []
    errors: list[BaseException] = []
    r = pool.map_async(cube, range(5), callback=got.append, error_callback=errors.append)
    assert r.get(timeout=60) == [0, 1, 8, 27, 64]
    assert r.ready()
    assert r.successful()
    assert got == [[0, 1, 8, 27, 64]]
    assert errors == []
    s = pool.starmap_async(add, [(1, 1), (2, 2)])
    assert s.get(timeout=60) == [2, 4]
    a = pool.apply_async(sleep_and_return, ("late", 1.0), callback=got.append)
    with pytest.raises(ValueError, match="not ready"):
        a.successful()
    with pytest.raises(std_mp.TimeoutError):
        a.get(timeout=0.05)
    a.wait(timeout=60)
    assert a.ready()
    assert a.get() == "late"
    assert got[-1] == "late"


def test_map_results_are_read_without_a_future_per_task(pool: xmp.Pool) -> None:
    r = pool.map_async(cube, range(200))
    assert r.get(timeout=60) == [x**3 for x in range(200)]
    assert r.ready()
    assert r.successful()
    assert r.get() == [x**3 for x in range(200)]  # again: the same list
    batch = getattr(r._futures, "batch", None)
    if pool.executor.backend.name == "local":  # the local backend reads the outcomes from the batch
        assert batch is not None
        assert batch.futures is None
    s = pool.starmap_async(add, [(i, i) for i in range(50)])
    s.wait(timeout=60)
    assert s.ready()
    assert s.successful()
    assert s.get() == [2 * i for i in range(50)]
    # a tuple item of map is one argument, as in the standard library
    assert pool.map(len, [(1, 2, 3), (), {"a": 1}]) == [3, 0, 1]
    slow = pool.starmap_async(sleep_and_return, [("x", 2.0)])
    assert not slow.ready()
    t0 = time.monotonic()
    slow.wait(timeout=0.2)
    assert time.monotonic() - t0 < 1.5  # waits its timeout once (not twice), not the call's 2 s
    if pool.executor.backend.name == "local":
        assert getattr(slow._futures, "batch", None) is not None  # and made no future
    with pytest.raises(std_mp.TimeoutError):
        slow.get(timeout=0.05)
    with pytest.raises(ValueError, match="not ready"):
        slow.successful()
    assert slow.get(timeout=60) == ["x"]


def test_errors_propagate_with_their_type(pool: xmp.Pool) -> None:
    with pytest.raises(ValueError, match="bad item 3"):
        pool.starmap(fail_on, [(i, 3) for i in range(6)])
    errors: list[BaseException] = []
    r = pool.starmap_async(fail_on, [(i, 1) for i in range(3)], error_callback=errors.append)
    r.wait(timeout=60)
    assert not r.successful()
    assert len(errors) == 1
    assert isinstance(errors[0], ValueError)
    with pytest.raises(ValueError, match="bad item 1"):
        r.get()
    results = pool.imap(_fail_on_two, range(4))
    assert next(results) == 0
    assert next(results) == 1
    with pytest.raises(ValueError, match="bad item 2"):
        next(results)
    assert list(results) == [3]  # like the standard library, the iterator goes on after an error


def _fail_on_two(x: int) -> int:
    return fail_on(x, 2)


def test_imap_next_timeout(pool: xmp.Pool) -> None:
    results = pool.imap(_sleep_pair, [("a", 1.0)])
    with pytest.raises(std_mp.TimeoutError):
        results.next(timeout=0.05)
    assert results.next(timeout=60) == "a"
    with pytest.raises(StopIteration):
        next(results)


def test_initializer_runs_once_per_worker_process(ctx: xmp.Context, tmp_path: Path) -> None:
    with ctx.Pool(2, initializer=record_init, initargs=(str(tmp_path), "ready")) as p:
        first = p.map(initialized_value, range(40))
        second = p.map(initialized_value, range(40))  # a second job on the same workers
    assert {value for _, value in first + second} == {"ready"}
    pids = {pid for pid, _ in first + second}
    inits = list(tmp_path.iterdir())
    assert 1 <= len(pids) <= 2
    assert len(inits) == len(pids)  # once per worker process, not per task or per job
    assert {int(f.name.split("-")[1]) for f in inits} == pids


def test_close_join_terminate(ctx: xmp.Context) -> None:
    p = ctx.Pool(2)
    pending = p.apply_async(sleep_and_return, ("done", 0.5))
    with pytest.raises(ValueError, match="still running"):
        p.join()
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(cube, [1])
    p.join()  # waits for the submitted task
    assert pending.ready()
    assert pending.get() == "done"

    q = ctx.Pool(1)
    stuck = q.apply_async(sleep_and_return, ("never", 60))
    time.sleep(0.3)
    q.terminate()
    q.join()
    with pytest.raises(ExecutorClosed):
        stuck.get(timeout=30)


def test_pool_arguments_like_the_standard_library(ctx: xmp.Context) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ctx.Pool(0)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        ctx.Pool(1, initializer=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxtasksperchild"):
        ctx.Pool(1, maxtasksperchild=0)
    if ctx.backend != "local":
        with pytest.raises(NotImplementedError, match="maxtasksperchild"):
            ctx.Pool(1, maxtasksperchild=10)
        return
    with ctx.Pool(2, maxtasksperchild=3) as p:  # workers are replaced after 3 tasks each
        pids = [pid for pid, _ in p.map(initialized_value, range(24), chunksize=1)]
    assert len(set(pids)) >= 8
    assert max(pids.count(pid) for pid in set(pids)) <= 3


def test_pool_telemetry(pool: xmp.Pool) -> None:
    pool.map(cube, range(8))
    summary = pool.executor.job_summary()
    assert [j.tasks for j in summary.jobs()] == [8]
    assert {r.status for r in summary} == {"success"}


# -- Process ------------------------------------------------------------------------------
def test_process_lifecycle_and_exit_codes(ctx: xmp.Context, capfd: pytest.CaptureFixture[str]) -> None:
    p = ctx.Process(target=sleep_and_return, args=(None, 1.0), name="sleeper")
    assert p.name == "sleeper"
    assert p.exitcode is None
    assert not p.is_alive()
    p.start()
    assert p.is_alive()
    p.join(timeout=0.05)
    assert p.is_alive()
    assert p.exitcode is None
    p.join()
    assert not p.is_alive()
    assert p.exitcode == 0
    with pytest.raises(AssertionError, match="twice"):
        p.start()

    codes = {}
    for arg in (3, None, "message"):
        q = ctx.Process(target=exit_with, args=(arg,))
        q.start()
        q.join()
        codes[arg] = q.exitcode
    assert codes == {3: 3, None: 0, "message": 1}

    failing = ctx.Process(target=fail_on, args=(1, 1))
    failing.start()
    failing.join()
    assert failing.exitcode == 1
    err = capfd.readouterr().err
    assert f"Process {failing.name}:" in err
    assert "ValueError: bad item 1" in err


def test_process_subclass_and_terminate(ctx: xmp.Context, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    p = FileWritingProcess(str(out), "written remotely", backend=ctx.backend, settings=ctx.settings)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert out.read_text() == "written remotely"

    long = ctx.Process(target=sleep_and_return, args=(None, 60), daemon=True)
    long.start()
    time.sleep(0.3)
    long.terminate()
    long.join(timeout=30)
    assert not long.is_alive()
    assert long.exitcode == -15


@pytest.fixture
def engine_ctx(ctx: xmp.Context, request: pytest.FixtureRequest) -> xmp.Context:
    """``ctx`` bound to the session's engine (no cluster per process)."""
    if ctx.backend not in ENGINE_FIXTURES:
        return ctx
    option, fixture = ENGINE_FIXTURES[ctx.backend]
    return xmp.get_context(ctx.backend, **{option: request.getfixturevalue(fixture)})


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


def test_a_failed_submission_leaves_the_pool_usable(pool: xmp.Pool) -> None:
    # As the standard library's: the argument's own error, and the next call works.
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        pool.map(cube, [1, Unpicklable(), 3])
    assert pool.map(cube, [1, 2]) == [1, 8]
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        pool.apply_async(cube, (Unpicklable(),))
    assert pool.apply(cube, (3,)) == 27
    # nothing of the failed submissions was queued or is waited for
    assert [j.tasks for j in pool.executor.job_summary().jobs()] == [2, 1]


def test_process_like_the_standard_library(engine_ctx: xmp.Context, capfd: pytest.CaptureFixture[str]) -> None:
    ctx = engine_ctx
    queue = ctx.Queue()
    p = ctx.Process(target=report_identity, args=(queue,), name="worker-7", daemon=True)
    assert p not in xmp.active_children()
    p.start()
    assert p in xmp.active_children()  # the user's processes, never the backends' workers
    assert queue.get(timeout=60) == ("worker-7", True)  # current_process() in the child is the Process
    p.join()
    assert p not in xmp.active_children()
    assert p.exitcode == 0

    late = ctx.Process(target=put_later, args=(queue, "after the target returned", 1.0))
    late.start()
    late.join()  # non-daemonic threads the target started finish first
    assert queue.get(timeout=0) == "after the target returned"

    sentinel_process = ctx.Process(target=sleep_and_return, args=(None, 0.5))
    sentinel_process.start()
    assert not std_mp.connection.wait([sentinel_process.sentinel], timeout=0)
    assert std_mp.connection.wait([sentinel_process.sentinel], timeout=60)
    sentinel_process.join()

    # (Dask cannot stop a running call: keep the session's worker busy only briefly)
    long = ctx.Process(target=sleep_and_return, args=(None, 30 if ctx.backend == "local" else 3), daemon=True)
    long.start()
    time.sleep(0.5)
    started = time.monotonic()
    long.terminate()
    long.join(timeout=30)
    assert time.monotonic() - started < 2  # at once, not after a grace period
    assert long.exitcode == -15
    assert "ExecutorClosed" not in capfd.readouterr().err


# -- shared state ----------------------------------------------------------------------------
def test_shared_state_on_every_backend(ctx: xmp.Context) -> None:
    """A manager process where the backend declares it, else the node service (xtremehub.state)."""
    assert ctx.shared_state == ("manager" if ctx.supports_shared_state else "service")
    if ctx.shared_state == "service":
        with pytest.raises(NotImplementedError, match=r"fexec\.map"):
            ctx.Pipe()
    queue = ctx.Queue()
    counter = ctx.Value("i", 0)
    array = ctx.Array("i", 6)
    with ctx.Pool(2) as p:
        p.starmap(put_square, [(queue, i) for i in range(5)])
        p.starmap(increment, [(counter, 25)] * 4)
        p.starmap(fill_slot, [(array, i) for i in range(6)])
    assert sorted(queue.get(timeout=30) for _ in range(5)) == [0, 1, 4, 9, 16]
    assert counter.value == 100  # the lock made the 100 increments atomic
    assert array[:] == [0, 10, 20, 30, 40, 50]
    assert len(array) == 6
    with ctx.Manager() as manager:
        shared = manager.dict()
        procs = [ctx.Process(target=shared.__setitem__, args=(f"k{i}", i)) for i in range(3)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        assert dict(shared) == {"k0": 0, "k1": 1, "k2": 2}


class _NoSharingBackend(LocalBackend):
    """A backend that declares no shared state (as distributed ones do)."""

    name = "local-no-sharing"
    supports_shared_state = False


def test_capability_is_declared_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert xmp.supports_shared_state("local") is LocalBackend.supports_shared_state is True
    assert xmp.supports_shared_state(_NoSharingBackend()) is False
    # registered for this test only (the registry is per process, and doctests list its names)
    monkeypatch.setattr(REGISTRY, "_entries", dict(REGISTRY._entries))
    register_backend("local-no-sharing", _NoSharingBackend)
    ctx = xmp.get_context("local-no-sharing")
    assert not ctx.supports_shared_state
    assert ctx.shared_state == "service"  # Queue(), Lock()... are held by the node service
    with pytest.raises(NotImplementedError, match=r"'local-no-sharing' backend.*fexec\.map"):
        ctx.Pipe()
    with ctx.Pool(1) as p:  # pools and processes still work there
        assert p.map(cube, [2]) == [8]


# -- an unmodified standard-library script -----------------------------------------------------
def test_stdlib_script_gives_identical_results(tmp_path: Path) -> None:
    script = Path(__file__).with_name("stdlib_style_pool.py").read_text()
    assert script.count("\nimport multiprocessing\n") == 1
    ours = tmp_path / "ours.py"
    ours.write_text(script.replace("\nimport multiprocessing\n", "\nfrom xtremehub import multiprocessing\n"))
    theirs = tmp_path / "theirs.py"
    theirs.write_text(script)
    outputs = []
    for path in (theirs, ours):
        run = subprocess.run(
            [sys.executable, str(path)], capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path
        )
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]
    assert "map [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in outputs[0]
    assert "value 100" in outputs[0]
    assert outputs[0].count("\n") == 10  # every line printed


@pytest.mark.dask
def test_a_non_daemonic_remote_process_is_joined_at_exit(tmp_path: Path) -> None:
    # As the standard library's: the program waits for it (before the engine's threads stop).
    script = tmp_path / "program.py"
    script.write_text(
        "import sys\n"
        "from xtremehub.testing.mp_tasks import FileWritingProcess\n"
        "if __name__ == '__main__':\n"
        "    options = {'n_workers': 1, 'threads_per_worker': 1, 'dashboard_address': ':0'}\n"
        "    FileWritingProcess(sys.argv[1], 'joined', backend='dask', cluster_options=options).start()\n"
    )
    out = tmp_path / "out.txt"
    run = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert out.read_text() == "joined"
    assert re.search(r"^Process \S+:$", run.stderr, re.MULTILINE) is None  # no report of a failed call


@pytest.mark.dask
def test_remote_processes_dropped_without_close_leave_no_open_files(dask_client: Any) -> None:
    # As the standard library's Popen: the sentinel pipe goes with the object, close() or not.
    ctx = xmp.get_context("dask")

    def run_some(n: int) -> None:
        for _ in range(n):
            p = ctx.Process(target=sleep_and_return, args=(None, 0.0), client=dask_client)
            p.start()
            p.join(timeout=60)
            assert p.exitcode == 0
        gc.collect()

    try:
        run_some(2)  # the first ones open what is kept for later (connections, caches)
        before = len(os.listdir("/proc/self/fd"))
        run_some(20)
        after = len(os.listdir("/proc/self/fd"))
    finally:
        ctx.shutdown()
    assert after - before <= 3, f"{after - before} more open files after 20 dropped processes"
