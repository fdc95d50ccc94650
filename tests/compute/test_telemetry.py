"""Task telemetry, job_summary(), JSON lines and plot() on the local backend (real worker processes)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.compute.summary import JobSummary
from xtremehub.compute.task import Outcome, run_calls
from xtremehub.compute.telemetry import SCHEMA_VERSION, TaskTelemetry
from xtremehub.config import Settings, TelemetrySettings, use_process_settings
from xtremehub.errors import ConfigError, MissingDependency, WorkerDied
from xtremehub.storage import iostats
from xtremehub.storage._memory import MemoryStore
from xtremehub.testing.executor import fail_until_marker, fail_with_value_error, kill_self, square

MB = 1024 * 1024


def read_object(url: str) -> int:
    """Read an object twice: whole, then as ranges through a file object."""
    n = len(storage.get(url))
    with storage.open(url, block_size=256 * 1024) as fh:
        while fh.read(100_000):
            pass
    return n


def write_object(url: str, size: int) -> int:
    return storage.put(url, os.urandom(size)).size


def allocate(mb: int) -> int:
    block = bytearray(mb * MB)
    for i in range(0, len(block), 4096):  # touch every page so it is resident
        block[i] = 1
    return len(block)


def busy(seconds: float) -> int:
    n, deadline = 0, time.process_time() + seconds
    while time.process_time() < deadline:
        n += 1
    return n


@pytest.fixture
def fexec() -> Iterator[FunctionExecutor]:
    with FunctionExecutor(workers=2, progress=False) as ex:
        yield ex


def only(fexec: FunctionExecutor) -> TaskTelemetry:
    rows = list(fexec.job_summary())
    assert len(rows) == 1
    return rows[0]


def test_bytes_read_and_written_through_storage(fexec: FunctionExecutor, tmp_path: Path) -> None:
    url = str(tmp_path / "blob.bin")
    size = 3 * MB + 17
    storage.put(url, os.urandom(size))
    future = fexec.call_async(read_object, url)
    assert future.result(timeout=60) == size
    t = future.telemetry
    assert t is not None
    assert t.bytes_read >= 2 * size  # read whole, then again in ranges
    assert t.bytes_read < 2 * size + 512 * 1024  # and not much more
    assert t.bytes_written == 0
    w = fexec.call_async(write_object, (str(tmp_path / "out.bin"), 1_500_000))
    w.result(timeout=60)
    assert w.telemetry is not None
    assert w.telemetry.bytes_written == 1_500_000
    assert w.telemetry.bytes_read == 0
    assert w.stats["bytes_written"] == 1_500_000  # the old stats dict keeps working and gains the counters


@pytest.mark.s3
def test_bytes_read_from_s3(s3_default: Settings, s3_root: str) -> None:
    url = s3_root + "blob.bin"
    storage.put(url, os.urandom(2 * MB))
    with FunctionExecutor(workers=1, settings=s3_default, progress=False) as fexec:
        future = fexec.call_async(read_object, url)
        assert future.result(timeout=60) == 2 * MB
        assert future.telemetry is not None
        assert future.telemetry.bytes_read >= 4 * MB


def test_peak_rss_is_per_task(tmp_path: Path) -> None:
    with FunctionExecutor(workers=1, progress=False) as fexec:  # one worker: both calls share a process
        big = fexec.call_async(allocate, 200)
        assert big.result(timeout=120) == 200 * MB
        small = fexec.call_async(square, 3)
        assert small.result(timeout=60) == 9
    assert big.telemetry is not None
    assert small.telemetry is not None
    assert big.telemetry.peak_rss > 200 * MB
    if sys.platform.startswith("linux"):  # the high-water mark is reset before each call
        # Relative to the big call: a forked worker's baseline RSS is whatever the parent had (a full
        # pytest run has imported pandas, matplotlib, pysam ...), but without the reset the small
        # call would report the big call's peak.
        assert small.telemetry.peak_rss < big.telemetry.peak_rss - 150 * MB
    assert big.telemetry.worker == small.telemetry.worker


def test_cpu_time_and_times(fexec: FunctionExecutor) -> None:
    t0 = time.time()
    future = fexec.call_async(busy, 0.3)
    assert future.result(timeout=60) > 0
    t = future.telemetry
    assert t is not None
    assert t.cpu_user + t.cpu_system >= 0.25
    assert t.submit is not None
    assert t.start is not None
    assert t.end is not None
    assert t0 <= t.submit <= t.start < t.end <= time.time()
    assert t.duration is not None
    assert t.duration >= 0.25
    assert t.status == "success"
    assert t.error_type == ""
    assert t.backend == "local"
    assert t.worker.startswith("local-")
    assert t.host
    assert t.attempts == 1
    assert t.retries == 0
    assert t.result_size > 0
    assert t.schema == SCHEMA_VERSION == "1"


def test_retries_are_counted(tmp_path: Path) -> None:
    with FunctionExecutor(workers=1, retries=2, progress=False) as fexec:
        future = fexec.call_async(fail_until_marker, str(tmp_path / "marker"))
        assert future.result(timeout=60) == "recovered"
    t = future.telemetry
    assert t is not None
    assert t.attempts == 2
    assert t.retries == 1
    assert t.status == "success"


def test_failures_are_rows_with_their_type(fexec: FunctionExecutor) -> None:
    futures = fexec.map(fail_with_value_error, [1, 2])
    fexec.wait(futures, throw_except=False)
    killed = fexec.call_async(kill_self, 0)
    with pytest.raises(WorkerDied):
        killed.result(timeout=60)
    summary = fexec.job_summary()
    assert [r.status for r in summary] == ["error"] * 3
    assert {r.error_type for r in summary[:2]} == {"builtins.ValueError"}
    dead = summary[2]
    assert dead.error_type == "xtremehub.errors.WorkerDied"
    assert dead.start is None
    assert dead.duration is None
    assert dead.worker == ""
    jobs = summary.jobs()
    assert [(j.tasks, j.failures) for j in jobs] == [(2, 2), (1, 1)]


def test_job_summary_aggregates_and_table(fexec: FunctionExecutor) -> None:
    fexec.get_result(fexec.map(busy, [0.05] * 6))
    fexec.get_result(fexec.map(square, range(10)))
    summary = fexec.job_summary()
    assert isinstance(summary, JobSummary)
    assert len(summary) == 16
    first, second = summary.jobs()
    assert (first.tasks, second.tasks) == (6, 10)
    assert first.failures == second.failures == 0
    durations = [r.duration for r in summary[:6]]
    assert first.total_seconds == pytest.approx(sum(d for d in durations if d is not None))
    assert first.mean_seconds == pytest.approx(first.total_seconds / 6)
    assert first.cpu_seconds >= 6 * 0.04
    assert first.peak_rss == max(r.peak_rss for r in summary[:6]) > 0
    assert 1 <= first.workers <= 2
    text = str(summary)
    assert first.job_id in text
    assert second.job_id in text
    assert text.splitlines()[-1].startswith("all")  # two jobs: a total line
    assert f"{first.total_seconds:.3f}" in text
    third = fexec.map(square, [5])
    fexec.wait(third)
    assert [r.job_id for r in fexec.job_summary(third)] == [third[0].job_id]  # a selection of futures


def test_to_pandas(fexec: FunctionExecutor) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is in the test extra")
    fexec.get_result(fexec.map(square, range(5)))
    df = fexec.job_summary().to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 5
    assert list(df["call_id"]) == [0, 1, 2, 3, 4]
    assert set(df["status"]) == {"success"}
    assert (df["duration"] == df["end"] - df["start"]).all()
    assert {"schema", "bytes_read", "peak_rss", "queued"} <= set(df.columns)


def test_to_pandas_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    summary = JobSummary([TaskTelemetry(job_id="j", call_id=0, status="success")])
    with pytest.raises(MissingDependency, match="pandas"):
        summary.to_pandas()


def test_json_lines_written_per_job(tmp_path: Path) -> None:
    settings = Settings().replace(telemetry=TelemetrySettings(dir=str(tmp_path / "telemetry")))
    with FunctionExecutor(workers=2, settings=settings, progress=False) as fexec:
        maps = fexec.map(square, range(7))
        reducer = fexec.map_reduce(square, range(3), sum)
        assert fexec.get_result(maps) == [x * x for x in range(7)]
        assert fexec.get_result(reducer) == 5
        job_ids = sorted({f.job_id for f in [*maps, *reducer]})
    files = sorted((tmp_path / "telemetry").iterdir())
    assert len(files) == 3  # the map, the map of map_reduce, and its reducer
    assert files[0].name == f"{job_ids[0]}.jsonl"
    lines = files[0].read_text().splitlines()
    assert len(lines) == 7
    records = [json.loads(line) for line in lines]
    assert all(r["schema"] == "1" for r in records)
    assert [r["call_id"] for r in records] == list(range(7))
    assert [TaskTelemetry.from_json(line).status for line in lines] == ["success"] * 7


@pytest.mark.s3
def test_json_lines_to_s3(s3_default: Settings, s3_root: str) -> None:
    settings = s3_default.replace(telemetry=TelemetrySettings(dir=s3_root + "telemetry/"))
    with FunctionExecutor(workers=1, settings=settings, progress=False) as fexec:
        futures = fexec.map(square, range(4))
        fexec.get_result(futures)
    body = storage.get(f"{s3_root}telemetry/{futures[0].job_id}.jsonl")
    assert [TaskTelemetry.from_json(line).call_id for line in body.decode().splitlines()] == [0, 1, 2, 3]


def test_telemetry_dir_precedence(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[telemetry]\ndir = "/from/toml"\n')
    assert Settings.load(config_file=config, env={}).telemetry.dir == "/from/toml"
    env = {"XHUB_TELEMETRY_DIR": "s3://bucket/from-env/"}
    assert Settings.load(config_file=config, env=env).telemetry.dir == "s3://bucket/from-env/"
    explicit = Settings.load(config_file=config, env=env, telemetry={"dir": "/from/args"})
    assert explicit.telemetry.dir == "/from/args"
    assert Settings.load(config_file=None, env={}).telemetry.dir is None
    with pytest.raises(ConfigError, match="telemetry: unknown setting"):
        Settings.load(config_file=None, env={}, telemetry={"directory": "/x"})


def test_records_refuse_other_schema_versions() -> None:
    line = TaskTelemetry(job_id="j", call_id=0, status="success").to_json()
    with pytest.raises(ConfigError, match="schema '2'"):
        TaskTelemetry.from_json(line.replace('"schema":"1"', '"schema":"2"'))


def test_plot_writes_two_real_pngs(fexec: FunctionExecutor, tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image", reason="pillow comes with matplotlib")
    fexec.get_result(fexec.map(busy, [0.02] * 12))
    timeline, histogram = fexec.plot(dst=tmp_path)
    assert timeline == str(tmp_path / f"{fexec.executor_id}_timeline.png")
    assert histogram == str(tmp_path / f"{fexec.executor_id}_histogram.png")
    for path in (timeline, histogram):
        assert os.path.getsize(path) > 10_000
        with image.open(path) as img:
            assert img.format == "PNG"
            assert img.size[0] >= 800
            assert img.size[1] >= 500
            assert len(img.convert("L").getcolors(maxcolors=1 << 16) or []) > 10  # more than a blank canvas
    prefixed = fexec.plot(dst=tmp_path / "run1")
    assert prefixed == (str(tmp_path / "run1_timeline.png"), str(tmp_path / "run1_histogram.png"))


def test_every_store_is_counted_including_third_party_ones() -> None:
    class ThirdPartyStore(MemoryStore):
        def get(self, key: str) -> bytes:  # an override is counted once, even calling super()
            return super().get(key)

    store = ThirdPartyStore("iostats-third-party")
    store.create_bucket()
    before = iostats.snapshot()
    store.put("k", b"x" * 1000)
    assert store.get("k") == b"x" * 1000
    assert store.get_ranges("k", [(0, 10), (500, 600), (990, 2000)]) == [b"x" * 10, b"x" * 100, b"x" * 10]
    after = iostats.snapshot()
    assert after.bytes_written - before.bytes_written == 1000
    assert after.bytes_read - before.bytes_read == 1000 + 120


@pytest.fixture(autouse=True)
def _reset_process_settings() -> Iterator[None]:
    yield
    use_process_settings(None)


def spin(seconds: float) -> float:
    """Burn CPU for ``seconds`` of process time (module level: run in this process by run_calls)."""
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass
    return seconds


def test_short_calls_share_telemetry_windows_and_long_ones_are_alone() -> None:
    windows: list[list[tuple[object, ...]]] = []
    calls = [("j", 0, (0.05,), {}, 0)] + [("j", i, (0.0,), {}, 0) for i in range(1, 201)]
    run_calls(calls, lambda job: spin, "w", windows.append)
    outcomes = [Outcome._make(o) for w in windows for o in w]
    assert [o.call_id for o in outcomes] == list(range(201))  # every call, in order
    assert all(o.ok for o in outcomes)
    first = windows[0]
    assert len(first) == 1  # a call of 50 ms that opened its window is measured alone
    long = Outcome._make(first[0])
    assert long.cpu_user + long.cpu_system >= 0.04
    assert long.peak_rss > 0
    assert len(windows) < 100  # 200 calls of microseconds: a few windows, not one per call
    for window in windows[1:]:
        rows = [Outcome._make(o) for o in window]
        assert len({o.peak_rss for o in rows}) == 1  # the window's peak, for each of its calls
        assert all(o.cpu_user >= 0 and o.cpu_system >= 0 and o.start <= o.end for o in rows)


def test_a_new_job_closes_the_window_and_unknown_jobs_fail_with_a_reason() -> None:
    windows: list[list[tuple[object, ...]]] = []
    funcs: dict[str, object] = {"a": abs}

    def function_of(job_id: str) -> object:
        return funcs.get(job_id) or (KeyError(job_id), "unknown job")

    run_calls(
        [("a", 0, (-1,), {}, 0), ("b", 0, (-2,), {}, 1), ("a", 1, (-3,), {}, 0)], function_of, "w", windows.append
    )  # type: ignore[arg-type]
    assert [[o[0] for o in w] for w in windows] == [["a"], ["b"], ["a"]]
    failed = Outcome._make(windows[1][0])
    assert (failed.ok, failed.error_type, failed.attempt) == (False, "builtins.KeyError", 1)
    assert failed.error_message == "unknown job: 'b'"
