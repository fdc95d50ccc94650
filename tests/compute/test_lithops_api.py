"""Lithops's API shapes on XtremeHub's executor (issue 21, items 1-15), on the local backend.

Lithops's own tests run in tests/compat/lithops; these pin the same behaviour in
XtremeHub's terms, plus what Lithops's tests do not check (memory, pickling).
"""

from __future__ import annotations

import gc
import os
import pickle
import threading
import time
import tracemalloc
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.compute import ALL_COMPLETED, ALWAYS, ANY_COMPLETED, FuturesList, ResponseFuture
from xtremehub.compute.partitioner import ObjectPart
from xtremehub.errors import ConfigError


def add(x: int, y: int) -> int:
    return x + y


def length(items: list[Any]) -> int:
    return len(items)


def total(results: list[int]) -> int:
    return sum(results)


def env_flag(_: Any) -> str | None:
    return os.environ.get("XHUB_TEST_FLAG")


def star(a: int, *args: int, **kwargs: int) -> tuple[int, tuple[int, ...], dict[str, int]]:
    return a, args, kwargs


def megabytes(i: int) -> bytes:
    return bytes([i % 256]) * (1 << 20)


def nested_map(n: int) -> list[ResponseFuture]:
    inner = FunctionExecutor(max_workers=1)
    return inner.map(partial(add, 1), range(n))


def nested_call(n: int) -> ResponseFuture:
    inner = FunctionExecutor(max_workers=1)
    return inner.call_async(add, (n, n))


def flaky(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).write_text("failed once")
        raise RuntimeError("first attempt fails on purpose")
    return "ok"


def put_and_name(x: int, storage: Any) -> Any:
    return storage.put_cloudobject(str(x).encode())


def chunk_size_of(obj: ObjectPart) -> int | None:
    return obj.chunk_size


def words(obj: ObjectPart) -> int:
    return len(obj.read().split())


@pytest.fixture
def fexec() -> Iterator[FunctionExecutor]:
    with FunctionExecutor(max_workers=2, progress=False) as ex:
        yield ex


def test_one_result_is_the_value_not_a_list(fexec: FunctionExecutor) -> None:
    future = fexec.call_async(add, (1, 2))
    assert fexec.get_result() == 3
    assert fexec.get_result(future) == 3
    fexec.map(add, [(1, 1)])
    assert fexec.get_result() == [2]  # after map a list, even of one (as Lithops's last_call rule)
    fexec.map_reduce(add, [(1, 1), (2, 2)], total)
    assert fexec.get_result() == 6


def test_only_tuples_are_unpacked(fexec: FunctionExecutor) -> None:
    assert fexec.get_result(fexec.map(length, [[1, 2], [3]])) == [2, 1]
    assert fexec.get_result(fexec.map(add, [(1, 2), {"x": 3, "y": 4}])) == [3, 7]
    assert fexec.call_async(length, [1, 2, 3]).result() == 3


def test_dict_items_fill_var_parameters_by_name(fexec: FunctionExecutor) -> None:
    items = [{"a": 1, "args": (2, 3)}, {"a": 1, "kwargs": {"b": 2}}, {"args": (7,)}]
    assert fexec.get_result(fexec.map(star, items)) == [(1, (2, 3), {}), (1, (), {"b": 2}), (7, (), {})]
    with pytest.raises(ValueError, match="args names"):
        fexec.map(add, [{"x": 1, "z": 2}])


def test_tasks_return_futures_and_get_result_resolves_them(fexec: FunctionExecutor) -> None:
    fexec.call_async(nested_map, 3)
    assert fexec.get_result() == [1, 2, 3]
    fexec.call_async(nested_call, 4)
    assert fexec.get_result() == 8


def test_futures_pickle_with_their_result_not_their_lock(fexec: FunctionExecutor) -> None:
    future = fexec.call_async(add, (20, 22))
    future.result()
    copy = pickle.loads(pickle.dumps(future))
    assert (copy.done, copy.error, copy.result()) == (True, False, 42)
    slow = fexec.call_async(time.sleep, 0.5)  # unfinished when pickled; the teardown waits for it
    with pytest.raises(TypeError, match="unfinished future"):
        pickle.dumps(slow)


def test_futures_as_iterdata_and_chaining(fexec: FunctionExecutor) -> None:
    first = fexec.map(partial(add, 1), [1, 2, 3])
    assert isinstance(first, FuturesList)
    assert fexec.get_result(fexec.map(partial(add, 10), first)) == [12, 13, 14]
    assert fexec.map(partial(add, 1), [1, 2]).map(partial(add, 100)).get_result() == [102, 103]
    with pytest.raises(ConfigError, match="mixes futures"):
        fexec.map(length, [first[0], 5])


def test_max_workers_and_the_workers_alias() -> None:
    with FunctionExecutor(max_workers=3) as a, FunctionExecutor(workers=3) as b:
        a.call_async(add, (1, 1)).result()
        b.call_async(add, (1, 1)).result()
        assert a.backend.workers == b.backend.workers == 3
    with pytest.raises(ConfigError, match="disagree"):
        FunctionExecutor(max_workers=2, workers=3)


def test_obj_reduce_by_key_chunk_size_and_map_futures(fexec: FunctionExecutor, tmp_path: Path) -> None:
    for name, n in (("a.txt", 300), ("b.txt", 120)):
        storage.put(str(tmp_path / name), b"".join(b"word%d\n" % i for i in range(n)))
    futures = fexec.map_reduce(words, f"{tmp_path}/", total, obj_chunk_size=500, obj_reduce_by_key=True)
    reducers = [f for f in futures if f.produce_output]
    assert len(reducers) == 2
    assert len(futures) > len(reducers)  # the map futures come first, as in Lithops
    assert sorted(fexec.get_result(futures)) == [120, 300]
    assert set(fexec.get_result(fexec.map(chunk_size_of, f"{tmp_path}/", obj_chunk_size=500))) == {500}
    with pytest.warns(DeprecationWarning, match="obj_reduce_by_key"):
        fexec.map_reduce(words, f"{tmp_path}/", total, reducer_one_per_object=True)
    assert sorted(fexec.get_result()) == [120, 300]


def test_storage_parameter_and_clean(fexec: FunctionExecutor) -> None:
    objects = fexec.get_result(fexec.map(put_and_name, [1, 2]))
    assert [fexec.storage.get_cloudobject(co) for co in objects] == [b"1", b"2"]
    fexec.clean(cs=objects[:1])
    assert fexec.storage.list_keys(objects[0].bucket, objects[0].key) == []
    fexec.clean()  # the other cloud object was put through this executor: found and deleted
    assert fexec.storage.list_keys(objects[1].bucket, objects[1].key) == []


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_http_objects_are_readable(fexec: FunctionExecutor, tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_bytes(b"".join(b"w%d\n" % i for i in range(1000)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/words.txt"
        assert storage.head(url).size == (tmp_path / "words.txt").stat().st_size
        # this server ignores Range headers: parts are cut from the full body, still correct
        assert fexec.get_result(fexec.map_reduce(words, [url], total, obj_chunk_number=3)) == 1000
    finally:
        server.shutdown()
        server.server_close()


def test_per_map_retries(fexec: FunctionExecutor, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="on purpose"):
        fexec.call_async(flaky, str(tmp_path / "a")).result()
    assert fexec.map(flaky, [str(tmp_path / "b")], retries=1)[0].result() == "ok"


def test_extra_env(fexec: FunctionExecutor) -> None:
    assert fexec.get_result(fexec.map(env_flag, [1, 2], extra_env={"XHUB_TEST_FLAG": "on"})) == ["on", "on"]
    assert fexec.get_result(fexec.map(env_flag, [1])) == [None]  # set for those calls only


def test_future_state_properties(fexec: FunctionExecutor) -> None:
    slow = fexec.call_async(time.sleep, 0.5)
    assert not slow.done  # a property: `if f.done:` means what it says
    assert slow.invoked or slow.running
    slow.result()
    assert (slow.done, slow.success, slow.error, slow.running) == (True, True, False, False)
    failed = fexec.call_async(length, 5)
    failed.exception()
    assert (failed.done, failed.error, failed.success) == (True, True, True)  # Lithops: success = finished


def test_wait_takes_lithops_integer_constants(fexec: FunctionExecutor) -> None:
    assert (ALWAYS, ANY_COMPLETED, ALL_COMPLETED) == (0, -1, 100)
    futures = fexec.map(time.sleep, [0.0, 0.0, 1.5, 1.5])
    done, not_done = fexec.wait(futures, return_when=ALWAYS)
    assert len(done) + len(not_done) == 4
    done, _ = fexec.wait(futures, return_when=50)  # half of them, as Lithops's percentages
    assert len(done) >= 2
    done, not_done = fexec.wait(futures, return_when=ALL_COMPLETED)
    assert (len(done), not_done) == (4, [])
    assert fexec.wait(futures, return_when="ALL_COMPLETED")[1] == []  # the old names still work
    with pytest.raises(ConfigError, match="return_when"):
        fexec.wait(futures, return_when=101)


def test_futures_config_and_lithops_positional_order(fexec: FunctionExecutor, tmp_path: Path) -> None:
    futures = fexec.map(add, [1, 2], None, (10,))  # map(f, data, chunksize, extra_args, ...)
    assert fexec.futures == list(futures)
    assert fexec.get_result() == [11, 12]
    assert fexec.futures == []  # delivered results are no longer held
    assert fexec.config["lithops"]["backend"] == "local"
    assert fexec.call_async(env_flag, 1, {"XHUB_TEST_FLAG": "x"}).result() == "x"  # call_async(f, data, extra_env)
    timeline, histogram = fexec.plot(futures, tmp_path)
    assert Path(timeline).stat().st_size > 0
    assert Path(histogram).stat().st_size > 0


def test_delivered_results_are_not_kept() -> None:
    """30 maps of 10 x 1 MiB results, read and dropped: the client does not grow by their size."""
    with FunctionExecutor(max_workers=2, progress=False) as fexec:
        fexec.get_result(fexec.map(megabytes, range(10)))  # warm up: workers and buffers exist
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(15):
                assert len(fexec.get_result(fexec.map(megabytes, range(10)))) == 10
            for _ in range(15):  # read through the futures themselves, as multiprocessing.Pool does
                futures = fexec.map(megabytes, range(10))
                assert all(len(f.result()) == 1 << 20 for f in futures)
                del futures
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert fexec.futures == []
        assert len(fexec.job_summary()) == 310  # telemetry of the dropped calls is kept (small)
    assert grown < 20 * (1 << 20), f"client grew by {grown / (1 << 20):.0f} MiB for 300 MiB of dropped results"
