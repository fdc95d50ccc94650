"""Storage actions on the ephemeral store: transforms, views, reducers, limits and failures, real processes."""

from __future__ import annotations

import ctypes
import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from xtremehub import storage
from xtremehub.cli import cli
from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.ephemeral import actions
from xtremehub.ephemeral.actions import ActionLimits, Reducer
from xtremehub.errors import (
    ActionFailed,
    ActionMemoryExceeded,
    ActionTimeout,
    InvalidAction,
    ObjectNotFound,
)

MiB = 1 << 20


def bucket() -> str:
    return f"act-{uuid.uuid4().hex[:8]}"


def upper(data: bytes) -> bytes:
    return data.upper()


def columns(data: bytes, *, cols: list[int], sep: str = ",") -> bytes:
    rows = [line.split(sep.encode()) for line in data.splitlines()]
    return b"\n".join(sep.encode().join(row[c] for c in cols) for row in rows) + b"\n"


def explode(data: bytes) -> bytes:
    raise KeyError(f"no field in {len(data)} bytes")


def sleepy(data: bytes) -> bytes:
    time.sleep(60)
    return data


def hog(data: bytes) -> bytes:
    block = bytearray(512 * MiB)
    return bytes(block[:1])


def segfault(data: bytes) -> bytes:
    return ctypes.string_at(0)


def put_json(settings: Settings, url: str, value: object) -> None:
    storage.put(url, json.dumps(value).encode(), settings=settings)


def get_json(settings: Settings, url: str) -> object:
    return json.loads(storage.get(url, settings=settings))


def test_reducer_sums_counts_as_partials_arrive_and_a_rewrite_replaces_its_contribution(
    eph_settings: Settings,
) -> None:
    b = bucket()
    info = actions.register(
        f"xhub-eph://{b}/partials/", reducer="sum_counts", into=f"xhub-eph://{b}/total.json", settings=eph_settings
    )
    assert info["kinds"] == ["reducer"]
    assert get_json(eph_settings, f"xhub-eph://{b}/total.json") == {}  # the identity, before any partial
    put_json(eph_settings, f"xhub-eph://{b}/partials/0", {"AC": 2, "GT": 1})
    assert get_json(eph_settings, f"xhub-eph://{b}/total.json") == {"AC": 2, "GT": 1}
    put_json(eph_settings, f"xhub-eph://{b}/partials/1", {"AC": 5})
    assert get_json(eph_settings, f"xhub-eph://{b}/total.json") == {"AC": 7, "GT": 1}
    put_json(eph_settings, f"xhub-eph://{b}/partials/0", {"AC": 1})  # a retry with other data: replaces
    assert get_json(eph_settings, f"xhub-eph://{b}/total.json") == {
        "AC": 6
    }  # exactly the reduction of the partials there
    storage.delete(f"xhub-eph://{b}/partials/1", settings=eph_settings)  # leaves the sum
    assert get_json(eph_settings, f"xhub-eph://{b}/total.json") == {"AC": 1}
    put_json(eph_settings, f"xhub-eph://{b}/elsewhere", {"AC": 100})  # not under the prefix
    assert get_json(eph_settings, f"xhub-eph://{b}/total.json") == {"AC": 1}
    listed = {a["url"]: a for a in actions.list_actions(b, settings=eph_settings)}
    assert listed[f"xhub-eph://{b}/partials/"]["partials"] == 1
    assert listed[f"xhub-eph://{b}/partials/"]["rebuilds"] >= 2


def test_partials_already_there_are_merged_at_registration(eph_settings: Settings) -> None:
    b = bucket()
    for i in range(3):
        put_json(eph_settings, f"xhub-eph://{b}/p/{i}", {"x": i + 1})
    actions.register(f"xhub-eph://{b}/p/", reducer="sum", into=f"xhub-eph://{b}/sum", settings=eph_settings)
    assert get_json(eph_settings, f"xhub-eph://{b}/sum") == {"x": 6}


def write_partial(task: int, url: str) -> int:
    """An executor task: a wrong first attempt, then the real partial under the same key (a retry)."""
    if task % 3 == 0:
        storage.put(url, json.dumps({"a": 1000, "junk": 1}).encode())
    storage.put(url, json.dumps({"a": task, "b": 1, f"k{task % 4}": 2}).encode())
    return task


def test_concurrent_writers_from_executor_workers_lose_nothing_and_count_nothing_twice(
    eph_settings: Settings,
) -> None:
    b = bucket()
    actions.register(
        f"xhub-eph://{b}/parts/", reducer="sum_counts", into=f"xhub-eph://{b}/merged", settings=eph_settings
    )
    n = 60
    expected: Counter[str] = Counter()
    for task in range(n):
        expected.update({"a": task, "b": 1, f"k{task % 4}": 2})
    with FunctionExecutor(workers=3, settings=eph_settings) as fexec:
        futures = fexec.map(write_partial, [(i, f"xhub-eph://{b}/parts/{i:03d}") for i in range(n)])
        threads = [  # and writers in this process at the same time, on the same prefix
            threading.Thread(target=put_json, args=(eph_settings, f"xhub-eph://{b}/parts/t{i}", {"t": 1}))
            for i in range(10)
        ]
        for t in threads:
            t.start()
        assert sorted(fexec.get_result(futures)) == list(range(n))
        for t in threads:
            t.join()
    expected["t"] = 10
    merged = get_json(eph_settings, f"xhub-eph://{b}/merged")
    assert merged == dict(expected)  # each junk contribution was replaced by its retry
    partials = [get_json(eph_settings, i.url) for i in storage.list(f"xhub-eph://{b}/parts/", settings=eph_settings)]
    recount: Counter[str] = Counter()
    for p in partials:
        assert isinstance(p, dict)
        recount.update(p)
    assert merged == dict(recount)


def test_builtin_reducers_concatenate_sort_merge_top_k_and_a_user_merge(eph_settings: Settings) -> None:
    b = bucket()
    reg = actions.register
    reg(f"xhub-eph://{b}/cat/", reducer="concatenate", into=f"xhub-eph://{b}/cat.out", settings=eph_settings)
    reg(f"xhub-eph://{b}/srt/", reducer=actions.sort_merge(), into=f"xhub-eph://{b}/srt.out", settings=eph_settings)
    reg(
        f"xhub-eph://{b}/top/",
        reducer=actions.top_k(2, key=lambda r: r[1]),
        into=f"xhub-eph://{b}/top.out",
        settings=eph_settings,
    )
    reg(
        f"xhub-eph://{b}/max/",
        reducer=Reducer(merge=lambda a, c: a if a >= c else c, codec="json", name="max"),
        into=f"xhub-eph://{b}/max.out",
        settings=eph_settings,
    )
    for key, data in (("2", b"cc"), ("0", b"aa"), ("1", b"bb")):  # arrive out of key order
        storage.put(f"xhub-eph://{b}/cat/{key}", data, settings=eph_settings)
    assert storage.get(f"xhub-eph://{b}/cat.out", settings=eph_settings) == b"aabbcc"  # key order
    storage.put(f"xhub-eph://{b}/srt/a", b"apple\nmango\n", settings=eph_settings)
    storage.put(f"xhub-eph://{b}/srt/b", b"banana\nzucchini\n", settings=eph_settings)
    assert storage.get(f"xhub-eph://{b}/srt.out", settings=eph_settings) == b"apple\nbanana\nmango\nzucchini\n"
    with pytest.raises(ActionFailed, match="not sorted") as err:
        storage.put(f"xhub-eph://{b}/srt/c", b"zz\naa\n", settings=eph_settings)
    assert "_SortMerge" in err.value.remote_traceback or "not sorted" in err.value.remote_traceback
    with pytest.raises(ObjectNotFound):  # a refused partial is not stored
        storage.get(f"xhub-eph://{b}/srt/c", settings=eph_settings)
    put_json(eph_settings, f"xhub-eph://{b}/top/0", [["x", 5], ["y", 1]])
    put_json(eph_settings, f"xhub-eph://{b}/top/1", [["z", 9]])
    assert get_json(eph_settings, f"xhub-eph://{b}/top.out") == [["z", 9], ["x", 5]]
    with pytest.raises(ObjectNotFound):  # no identity: no merged object before the first partial
        storage.get(f"xhub-eph://{b}/max.out", settings=eph_settings)
    for i, v in enumerate((3, 11, 7)):
        put_json(eph_settings, f"xhub-eph://{b}/max/{i}", v)
    assert get_json(eph_settings, f"xhub-eph://{b}/max.out") == 11


def test_on_write_transforms_before_storing_and_on_read_serves_a_view_with_parameters(
    eph_settings: Settings,
) -> None:
    b = bucket()
    actions.register(f"xhub-eph://{b}/up/", on_write=upper, settings=eph_settings)
    storage.put(f"xhub-eph://{b}/up/x.txt", b"hello tier zero", settings=eph_settings)
    assert storage.get(f"xhub-eph://{b}/up/x.txt", settings=eph_settings) == b"HELLO TIER ZERO"
    storage.put(f"xhub-eph://{b}/other.txt", b"untouched", settings=eph_settings)
    assert storage.get(f"xhub-eph://{b}/other.txt", settings=eph_settings) == b"untouched"

    actions.register(f"xhub-eph://{b}/tables/", on_read=columns, settings=eph_settings)
    table = b"id,name,score\n1,ada,9\n2,bob,7\n"
    storage.put(f"xhub-eph://{b}/tables/t.csv", table, settings=eph_settings)
    assert storage.get(f"xhub-eph://{b}/tables/t.csv", settings=eph_settings) == table  # plain reads: as stored
    view = actions.read_view(f"xhub-eph://{b}/tables/t.csv", cols=[0, 2], settings=eph_settings)
    assert view == b"id,score\n1,9\n2,7\n"
    assert actions.read_view(f"xhub-eph://{b}/tables/t.csv", cols=[1], settings=eph_settings) == b"name\nada\nbob\n"
    with pytest.raises(InvalidAction, match="no on_read action"):
        actions.read_view(f"xhub-eph://{b}/other.txt", settings=eph_settings)
    with pytest.raises(ObjectNotFound):
        actions.read_view(f"xhub-eph://{b}/tables/missing.csv", cols=[0], settings=eph_settings)


def test_an_action_that_raises_is_action_failed_with_the_remote_traceback(eph_settings: Settings) -> None:
    b = bucket()
    actions.register(f"xhub-eph://{b}/bad/", on_write=explode, settings=eph_settings)
    with pytest.raises(ActionFailed, match="KeyError") as err:
        storage.put(f"xhub-eph://{b}/bad/k", b"data", settings=eph_settings)
    assert "in explode" in err.value.remote_traceback
    assert err.value.url == f"xhub-eph://{b}/bad/k"
    with pytest.raises(ObjectNotFound):
        storage.get(f"xhub-eph://{b}/bad/k", settings=eph_settings)


def test_time_and_memory_limits(eph_settings: Settings) -> None:
    b = bucket()
    actions.register(f"xhub-eph://{b}/slow/", on_write=sleepy, limits=ActionLimits(timeout=1), settings=eph_settings)
    actions.register(f"xhub-eph://{b}/hog/", on_write=hog, limits=ActionLimits(memory="64MiB"), settings=eph_settings)
    t = time.monotonic()
    with pytest.raises(ActionTimeout, match="time limit of 1s"):
        storage.put(f"xhub-eph://{b}/slow/k", b"x", settings=eph_settings)
    assert time.monotonic() - t < 10
    with pytest.raises(ActionMemoryExceeded, match="memory limit") as err:
        storage.put(f"xhub-eph://{b}/hog/k", b"x", settings=eph_settings)
    assert isinstance(err.value, MemoryError)
    assert "in hog" in err.value.remote_traceback
    actions.register(  # the same function with room enough succeeds
        f"xhub-eph://{b}/hog/", on_write=hog, limits=ActionLimits(memory="2GiB"), settings=eph_settings
    )
    storage.put(f"xhub-eph://{b}/hog/k", b"x", settings=eph_settings)
    assert storage.get(f"xhub-eph://{b}/hog/k", settings=eph_settings) == b"\x00"


def test_a_crashing_action_is_a_typed_error_and_the_service_keeps_serving(eph_settings: Settings) -> None:
    b = bucket()
    actions.register(f"xhub-eph://{b}/crash/", on_write=segfault, settings=eph_settings)
    actions.register(f"xhub-eph://{b}/up/", on_write=upper, settings=eph_settings)
    with pytest.raises(ActionFailed, match="SIGSEGV"):
        storage.put(f"xhub-eph://{b}/crash/k", b"x", settings=eph_settings)
    storage.put(f"xhub-eph://{b}/up/k", b"still here", settings=eph_settings)  # a fresh worker takes over
    assert storage.get(f"xhub-eph://{b}/up/k", settings=eph_settings) == b"STILL HERE"


def test_a_slow_action_never_blocks_other_keys(eph_settings: Settings) -> None:
    b = bucket()
    limits = ActionLimits(timeout=12, concurrency=2)  # the test waits for it: as short as the checks allow
    actions.register(f"xhub-eph://{b}/slow/", on_write=sleepy, limits=limits, settings=eph_settings)
    actions.register(f"xhub-eph://{b}/up/", on_write=upper, settings=eph_settings)
    storage.put(f"xhub-eph://{b}/up/warm", b"w", settings=eph_settings)  # a worker for the fast action exists
    errors: list[BaseException] = []

    def slow_writer(i: int) -> None:
        try:
            storage.put(f"xhub-eph://{b}/slow/{i}", b"x", settings=eph_settings)
        except BaseException as exc:
            errors.append(exc)

    slow = [threading.Thread(target=slow_writer, args=(i,)) for i in range(2)]
    started = time.monotonic()
    for t in slow:
        t.start()
    time.sleep(1.0)  # both slow runs are in their workers now
    t0 = time.monotonic()
    for i in range(20):
        storage.put(f"xhub-eph://{b}/plain/{i}", b"p" * 1000, settings=eph_settings)
        assert storage.get(f"xhub-eph://{b}/plain/{i}", settings=eph_settings) == b"p" * 1000
    plain = time.monotonic() - t0
    t0 = time.monotonic()
    storage.put(f"xhub-eph://{b}/up/k", b"fast", settings=eph_settings)
    fast_action = time.monotonic() - t0
    assert storage.get(f"xhub-eph://{b}/up/k", settings=eph_settings) == b"FAST"
    assert all(t.is_alive() for t in slow)  # done while the slow ones are still running: they waited for none
    assert time.monotonic() - started < 12
    assert plain < 10.0, plain  # 20 writes and reads (milliseconds each, seconds on a saturated 2-CPU machine)
    assert fast_action < 10.0, fast_action
    for t in slow:
        t.join(60)
    assert len(errors) == 2
    assert all(isinstance(e, ActionTimeout) for e in errors)


def test_registration_errors_are_clear(eph_settings: Settings) -> None:
    b = bucket()
    lock = threading.Lock()
    with pytest.raises(InvalidAction, match="cannot be pickled"):
        actions.register(f"xhub-eph://{b}/x/", on_write=lambda d: bytes(d) if lock else d, settings=eph_settings)
    with pytest.raises(InvalidAction, match="into="):
        actions.register(f"xhub-eph://{b}/x/", reducer="sum_counts", settings=eph_settings)
    with pytest.raises(InvalidAction, match="unknown reducer"):
        actions.register(f"xhub-eph://{b}/x/", reducer="median", into=f"xhub-eph://{b}/m", settings=eph_settings)
    with pytest.raises(InvalidAction, match="under its own prefix"):
        actions.register(f"xhub-eph://{b}/x/", reducer="sum", into=f"xhub-eph://{b}/x/m", settings=eph_settings)
    with pytest.raises(InvalidAction, match="at least one"):
        actions.register(f"xhub-eph://{b}/x/", settings=eph_settings)
    assert actions.list_actions(b, settings=eph_settings) == []


def test_list_unregister_and_cli(eph_settings: Settings) -> None:
    b = bucket()
    actions.register(f"xhub-eph://{b}/up/", on_write=upper, settings=eph_settings)
    runner = CliRunner()
    home = ["--home", str(eph_settings.home)]
    result = runner.invoke(cli, [*home, "eph", "actions", "ls"])
    assert result.exit_code == 0, result.output
    assert f"xhub-eph://{b}/up/" in result.output
    assert "on_write" in result.output
    result = runner.invoke(cli, [*home, "eph", "actions", "rm", f"xhub-eph://{b}/up/"])
    assert result.exit_code == 0, result.output
    assert actions.list_actions(b, settings=eph_settings) == []
    storage.put(f"xhub-eph://{b}/up/k", b"as is", settings=eph_settings)  # no action any more
    assert storage.get(f"xhub-eph://{b}/up/k", settings=eph_settings) == b"as is"
    with pytest.raises(ObjectNotFound):
        actions.unregister(f"xhub-eph://{b}/up/", settings=eph_settings)
    assert runner.invoke(cli, [*home, "eph", "actions", "rm", f"xhub-eph://{b}/up/"]).exit_code != 0


def test_actions_work_over_tcp_from_another_node(eph_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from xtremehub.ephemeral.client import reset_clients

    monkeypatch.setenv("XHUB_EPH_LOCAL", "0")  # the bytes travel over the connection, as from another node
    reset_clients()
    try:
        b = bucket()
        actions.register(f"xhub-eph://{b}/p/", reducer="sum_counts", into=f"xhub-eph://{b}/t", settings=eph_settings)
        actions.register(f"xhub-eph://{b}/up/", on_write=upper, settings=eph_settings)
        put_json(eph_settings, f"xhub-eph://{b}/p/0", {"a": 1})
        put_json(eph_settings, f"xhub-eph://{b}/p/1", {"a": 2})
        storage.put(f"xhub-eph://{b}/up/k", b"remote", settings=eph_settings)
        assert get_json(eph_settings, f"xhub-eph://{b}/t") == {"a": 3}
        assert storage.get(f"xhub-eph://{b}/up/k", settings=eph_settings) == b"REMOTE"
    finally:
        reset_clients()


def test_merged_object_is_pinned_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    """The reducer's merged object is pinned in memory, partials are ordinary objects."""
    from xtremehub.ephemeral import NodeService, TierConfig, client_for

    settings = Settings(home=tmp_path / "home")
    with NodeService(TierConfig(memory_limit="16MiB"), settings).start():
        actions.register("xhub-eph://b/p/", reducer="sum_counts", into="xhub-eph://b/total", settings=settings)
        put_json(settings, "xhub-eph://b/p/0", {"a": 1})
        client = client_for(settings)
        assert client.locate("b", "total")["tier"] == "memory"
        assert [o["key"] for o in client.list("b", "")] == ["p/0", "total"]
        assert not list(client.tmp_dir.glob("w-*"))  # no temporary file left behind
