"""Shared objects on a real node service: atomicity under concurrency, barriers, locks, failures."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from typing import Any

import pytest

from xtremehub import FunctionExecutor, state
from xtremehub.ephemeral.service import ServiceProcess
from xtremehub.errors import (
    BarrierBroken,
    LockTimeout,
    NotLockOwner,
    StateError,
    StateNotFound,
    StateTypeMismatch,
    StateUnavailable,
)


@state.shared
class Account:
    """A read-modify-write that is only right if each call runs alone."""

    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.history: list[int] = []

    def deposit(self, n: int) -> int:
        before = self.balance
        time.sleep(0)  # let another thread run here, if it could
        self.balance = before + n
        self.history.append(n)
        return self.balance

    def report(self) -> tuple[int, int]:
        return self.balance, len(self.history)


def _increment(counter: state.Counter, n: int) -> int:
    for _ in range(n):
        counter.add()
    return n


def _tally(words: state.Dict, worker: int, n: int) -> None:
    for i in range(n):
        words.add(f"w{i % 10}")
        words[f"last-{worker}"] = i


def _deposit(account: Any, n: int) -> None:
    for _ in range(n):
        account.deposit(1)


def test_8_workers_x_1000_increments_is_exactly_8000(address: str) -> None:
    counter = state.Counter("t/count8000", address=address)
    with FunctionExecutor("local", workers=8) as fexec:
        done = fexec.get_result(fexec.map(_increment, [(counter, 1000)] * 8))
    assert done == [1000] * 8
    assert counter.get() == 8000


def test_dict_updates_from_workers_are_atomic(address: str) -> None:
    words = state.Dict("t/words", address=address)
    with FunctionExecutor("local", workers=4) as fexec:
        fexec.get_result(fexec.map(_tally, [(words, w, 500) for w in range(4)]))
    snapshot = words.copy()
    assert {k: v for k, v in snapshot.items() if k.startswith("w")} == {f"w{i}": 200 for i in range(10)}
    assert [snapshot[f"last-{w}"] for w in range(4)] == [499] * 4
    assert len(words) == 14
    assert "w3" in words
    assert words.get("nope", -1) == -1
    with pytest.raises(KeyError):
        words["missing"]
    assert words.compare_and_set("w0", 200, 0)
    assert not words.compare_and_set("w0", 200, 1)


def test_custom_method_runs_atomically_on_the_service(address: str) -> None:
    account = Account("t/account", 100, address=address)
    with FunctionExecutor("local", workers=4) as fexec:
        fexec.get_result(fexec.map(_deposit, [(account, 250)] * 4))
    assert account.report() == (1100, 1000)
    again = Account("t/account", 0, address=address)  # attaches: the init arguments are not used
    assert again.report() == (1100, 1000)
    assert pickle.loads(pickle.dumps(account)).report() == (1100, 1000)
    with pytest.raises(AttributeError):
        account._secret()


def test_list_queue_event(address: str) -> None:
    items = state.List("t/items", [3, 1], address=address)
    items.append(2)
    items.extend([5, 4])
    items.sort()
    assert items.copy() == [1, 2, 3, 4, 5]
    assert items[1:3] == [2, 3]
    assert items.pop() == 5
    assert len(items) == 4
    q = state.Queue("t/q", maxsize=1, address=address)
    q.put("a")
    with pytest.raises(queue.Full):
        q.put("b", timeout=0.2)
    assert q.get() == "a"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    ev = state.Event("t/ev", address=address)
    threading.Timer(0.2, ev.set).start()
    assert not ev.is_set()
    assert ev.wait(10)
    assert ev.is_set()


def test_kind_mismatch_and_deleted_object(address: str) -> None:
    state.Counter("t/kind", address=address)
    with pytest.raises(StateTypeMismatch, match="is a counter, not a dict"):
        state.Dict("t/kind", address=address)
    c = state.Counter("t/deleted", address=address)
    assert c.delete()
    with pytest.raises(StateNotFound):
        c.add()


def test_barrier_releases_generations_and_breaks_on_timeout(address: str) -> None:
    barrier = state.Barrier("t/barrier", 3, address=address)
    results: list[int] = []

    def party() -> None:
        for _ in range(2):
            results.append(barrier.wait(timeout=30))

    threads = [threading.Thread(target=party) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [0, 0, 1, 1, 2, 2]
    assert barrier.generation == 2
    started = time.monotonic()
    with pytest.raises(BarrierBroken, match="timed out"):
        barrier.wait(timeout=0.3)
    assert 0.25 < time.monotonic() - started < 10
    assert barrier.broken
    with pytest.raises(BarrierBroken):
        barrier.wait(timeout=5)  # broken until reset
    barrier.reset()
    assert not barrier.broken
    assert barrier.n_waiting == 0


def test_barrier_action_runs_once_per_generation(address: str) -> None:
    trips = state.Counter("t/trips", address=address)
    barrier = state.Barrier("t/barrier-action", 2, action=trips.add, address=address)
    threads = [threading.Thread(target=barrier.wait, args=(30,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert trips.get() == 2


def test_lock_owner_timeout_and_release_rules(address: str) -> None:
    lock = state.Lock("t/lock", timeout=0.3, address=address)
    with lock:
        assert lock.locked()
        assert lock.owned()
        other: list[Any] = []
        t = threading.Thread(target=lambda: other.append((lock.owned(), lock.acquire(timeout=0.2))))
        t.start()
        t.join(10)
        assert other == [(False, False)]
        errors: list[BaseException] = []

        def enter() -> None:
            try:
                with lock:
                    pass
            except LockTimeout as exc:
                errors.append(exc)

        t = threading.Thread(target=enter)
        t.start()
        t.join(10)
        assert len(errors) == 1
        assert "t/lock" in str(errors[0])
        t = threading.Thread(target=lambda: other.append(_try_release(lock)))
        t.start()
        t.join(10)
        assert isinstance(other[-1], NotLockOwner)
    assert not lock.locked()
    sem = state.Semaphore("t/sem", 2, bound=2, address=address)
    assert sem.acquire()
    assert sem.acquire()
    assert not sem.acquire(timeout=0.1)
    sem.release(2)
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()


def _try_release(lock: state.Lock) -> BaseException | None:
    try:
        lock.release()
    except NotLockOwner as exc:
        return exc
    return None


def _hold(lock: state.Lock, sem: state.Semaphore, ready: state.Event) -> None:
    lock.acquire()
    sem.acquire()
    ready.set()
    time.sleep(600)


def test_a_killed_holder_releases_its_lock_and_permits(address: str) -> None:
    lock = state.Lock("t/held", address=address)
    sem = state.Semaphore("t/held-sem", 1, address=address)
    ready = state.Event("t/held-ready", address=address)
    child = multiprocessing.get_context("spawn").Process(target=_hold, args=(lock, sem, ready))
    child.start()
    try:
        assert ready.wait(60)
        assert lock.locked()
        assert not lock.acquire(timeout=0.2)
        assert sem.get_value() == 0
        os.kill(child.pid or 0, signal.SIGKILL)
        assert lock.acquire(timeout=10), "the service released the dead holder's lock"
        assert sem.acquire(timeout=10)
        lock.release()
    finally:
        child.kill()
        child.join()


def test_service_killed_gives_a_typed_error_not_a_hang(own_service: ServiceProcess) -> None:
    address = own_service.address
    counter = state.Counter("t/dies", address=address)
    barrier = state.Barrier("t/dies-barrier", 2, address=address)
    counter.add()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            barrier.wait()  # no timeout: only the service's death ends it
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    own_service.stop(kill=True)
    waiter.join(20)
    assert not waiter.is_alive()
    assert isinstance(outcome[0], StateUnavailable)
    with pytest.raises(StateUnavailable):
        counter.add()
    assert issubclass(StateUnavailable, StateError)
    assert issubclass(StateUnavailable, ConnectionError)


def test_a_service_without_state_handlers_or_bad_names(address: str) -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        state.Counter("", address=address)
    with pytest.raises(StateUnavailable):
        state.Counter("x", address="127.0.0.1:1")
