"""The futures of a ``map`` are made only when asked for: results, errors and telemetry stay the same."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import FunctionExecutor
from xtremehub.compute import FuturesList, ResponseFuture
from xtremehub.compute.batch import KEPT_PAYLOAD, OutcomeBlock
from xtremehub.errors import TaskError


def square(x: int) -> int:
    return x * x


def big(x: int) -> bytes:
    return bytes(KEPT_PAYLOAD * 4 + x)


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"no {x}")
    return x


def slow(x: int) -> int:
    time.sleep(0.05)
    return x


@pytest.fixture(scope="module")
def fexec() -> Iterator[FunctionExecutor]:
    with FunctionExecutor(max_workers=2, progress=False) as fexec:
        yield fexec


def test_get_result_makes_no_future_and_keeps_telemetry(fexec: FunctionExecutor) -> None:
    futures = fexec.map(square, range(50))
    batch = futures.batch
    assert batch is not None
    assert fexec.get_result(futures) == [x * x for x in range(50)]
    assert batch.futures is None  # delivered from the slots
    assert fexec.get_result(futures) == [x * x for x in range(50)]  # again: the same values
    assert all(f is not batch for f in fexec.futures)  # delivered: no longer held
    rows = [r for r in fexec.job_summary().rows if r.job_id == batch.job_id]
    assert sorted(r.call_id for r in rows) == list(range(50))
    assert all(r.status == "success" and r.attempts == 1 and r.result_size > 0 for r in rows)
    # asked for afterwards, the futures are there, finished and read, with their values
    assert isinstance(futures, list)
    assert len(futures) == 50
    assert all(isinstance(f, ResponseFuture) for f in futures)
    assert [f.result() for f in futures] == [x * x for x in range(50)]
    assert not any(f.ready for f in futures)
    assert futures[7].stats["result_size"] == len(pickle.dumps(49, protocol=pickle.HIGHEST_PROTOCOL))


def test_large_results_are_not_kept_but_their_size_is(fexec: FunctionExecutor) -> None:
    futures = fexec.map(big, range(3))
    job_id = futures.batch.job_id
    assert [len(v) for v in fexec.get_result(futures)] == [KEPT_PAYLOAD * 4 + x for x in range(3)]
    rows = sorted((r for r in fexec.job_summary().rows if r.job_id == job_id), key=lambda r: r.call_id)
    assert [r.result_size > KEPT_PAYLOAD * 4 + i for i, r in enumerate(rows)] == [True] * 3
    assert all(len(futures.batch.outcome(i).payload) == 0 for i in range(3))
    assert [len(f.result()) for f in futures] == [KEPT_PAYLOAD * 4 + x for x in range(3)]
    assert futures[2].stats["result_size"] == rows[2].result_size


def test_a_failed_call_raises_as_with_futures(fexec: FunctionExecutor) -> None:
    futures = fexec.map(fails_on_three, range(6))
    with pytest.raises(ValueError, match="no 3") as info:
        fexec.get_result(futures)
    assert any("Remote traceback" in note for note in getattr(info.value, "__notes__", []))
    assert futures[3].error
    assert fexec.get_result(futures, throw_except=False) == [0, 1, 2, None, 4, 5]
    assert fexec.job_summary(futures).jobs()[0].failures == 1


def test_unpicklable_result_is_a_task_error(fexec: FunctionExecutor) -> None:
    futures = fexec.map(threading.Lock, [()])
    with pytest.raises((TaskError, TypeError), match="cannot be pickled"):
        fexec.get_result(futures)


def test_futures_made_while_calls_run(fexec: FunctionExecutor) -> None:
    futures = fexec.map(slow, range(8))
    first = futures[0]  # made now, most calls still queued or running
    assert futures.batch is None
    assert [f.call_id for f in futures] == list(range(8))
    assert first.result(timeout=30) == 0
    assert fexec.get_result(futures) == list(range(8))
    assert all(f.done and not f.ready for f in futures)
    assert not [f for f in fexec.futures if f in futures]


def test_fexec_futures_and_wait_see_the_calls() -> None:
    with FunctionExecutor(max_workers=2, progress=False) as fexec:
        futures = fexec.map(slow, range(4))
        assert [f.call_id for f in fexec.futures] == [0, 1, 2, 3]
        done, not_done = fexec.wait(futures)
        assert (len(done), not_done) == (4, [])
        assert fexec.get_result() == [0, 1, 2, 3]
        assert fexec.futures == []
        late = fexec.map(slow, range(2))
        assert fexec.get_result() == [0, 1]  # every unread output: makes the futures
        assert [(f.done, f.ready) for f in late] == [(True, False)] * 2  # made, and read
        assert len(fexec.job_summary()) == 6


def test_a_lazy_list_behaves_as_a_list(fexec: FunctionExecutor) -> None:
    def lazy() -> FuturesList:
        futures = fexec.map(square, range(3))
        assert futures.batch is not None
        return futures

    assert len(lazy()) == 3
    assert bool(lazy())
    assert lazy() != []
    a = lazy()
    assert a == list(a)
    assert len([*lazy()]) == 3
    assert len([None] + lazy()) == 4  # noqa: RUF005 - the operator is what is tested
    assert len(lazy() + [None]) == 4  # noqa: RUF005
    assert len(lazy() + lazy()) == 6  # both made
    assert lazy() != lazy()  # other futures
    c = lazy()
    assert [f.call_id for f in c + c] == [0, 1, 2, 0, 1, 2]
    assert lazy()[1:] != []
    x, y, z = lazy()
    assert (x.call_id, y.call_id, z.call_id) == (0, 1, 2)
    b = lazy()
    b.append(x)
    assert len(b) == 4
    assert repr(lazy()).startswith("[<ResponseFuture")
    fexec.wait(a)
    copy = pickle.loads(pickle.dumps(a))
    assert [f.result() for f in copy] == [0, 1, 4]
    assert lazy().map(square).get_result() == [0, 1, 16]
    assert fexec.get_result(fexec.map(square, lazy())) == [0, 1, 16]


def test_futures_made_by_another_thread_during_get_result(fexec: FunctionExecutor) -> None:
    for round_ in range(30):
        futures = fexec.map(square, range(200))
        batch = futures.batch

        def look(futures: FuturesList = futures, round_: int = round_) -> None:
            time.sleep(0.0002 * (round_ % 10))
            assert len(futures) == 200  # makes the futures at some point of the delivery

        other = threading.Thread(target=look)
        other.start()
        assert fexec.get_result(futures) == [x * x for x in range(200)]
        other.join()
        made = batch.materialize()
        assert [f.result() for f in made] == [x * x for x in range(200)]
        assert all(f.done and not f.ready for f in made)
    assert not [f for f in fexec.futures if f.job_id == batch.job_id]


def test_plain_items_settle_as_blocks_of_columns(fexec: FunctionExecutor) -> None:
    futures = fexec.map(square, range(300))
    batch = futures.batch
    assert fexec.get_result(futures) == [x * x for x in range(300)]
    # the local backend's fast path: slots refer to the column blocks the workers sent
    assert all(isinstance(r, OutcomeBlock) for r in batch.results)
    outcome = batch.outcome(123)
    assert (outcome.job_id, outcome.call_id, outcome.ok, outcome.attempt) == (batch.job_id, 123, True, 0)
    assert outcome.start <= outcome.end
    assert outcome.worker.startswith("local-")
    rows = {r.call_id: r for r in fexec.job_summary().rows if r.job_id == batch.job_id}
    assert sorted(rows) == list(range(300))
    assert rows[123].attempts == 1
    assert rows[123].result_size > 0


def test_a_failure_among_plain_items_is_retried_from_its_span(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"

    def fails_once_on_five(x: int) -> int:
        if x == 5 and not marker.exists():
            marker.write_text("x")
            raise ValueError("first try")
        return -x

    with FunctionExecutor(max_workers=2, retries=1, progress=False) as fe:
        assert fe.get_result(fe.map(fails_once_on_five, range(40))) == [-x for x in range(40)]
        rows = {r.call_id: r for r in fe.job_summary().rows}
    assert rows[5].attempts == 2
    assert rows[4].attempts == 1


def test_map_each_passes_items_as_they_are(fexec: FunctionExecutor) -> None:
    items = [(1, 2), {"a": 1}, "s3://not/cut", [4, 5], None]
    futures = fexec.map_each(repr, items)
    batch = futures.batch
    assert fexec.get_result(futures) == [repr(i) for i in items]  # no tuple/dict expanded, no URL cut
    assert batch is not None
    assert batch.futures is None
    assert all(isinstance(r, OutcomeBlock) for r in batch.results)  # the items path: blocks of columns


def test_map_each_failure_raises_like_map(fexec: FunctionExecutor) -> None:
    with pytest.raises(ValueError, match="no 3"):
        fexec.get_result(fexec.map_each(fails_on_three, range(6)))
