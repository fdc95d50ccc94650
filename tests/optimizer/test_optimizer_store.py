"""The telemetry store loads the executor's JSON lines, names bad files by line, and answers queries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from optimizer_synthetic import synthetic_calls

from xtremehub import FunctionExecutor
from xtremehub.compute.telemetry import to_jsonl
from xtremehub.config import Settings
from xtremehub.errors import ConfigError, TelemetryCorrupt
from xtremehub.optimizer import TelemetryStore
from xtremehub.optimizer.simulator import ScalingRule, SimConfig, StaticPolicy, simulate
from xtremehub.optimizer.store import write_job_meta


def test_load_directory_with_sidecar_meta(tmp_path: Path) -> None:
    rows, sizes = synthetic_calls(10)
    (tmp_path / "syn-M000.jsonl").write_bytes(to_jsonl(rows))
    write_job_meta(tmp_path, "syn-M000", function="pkg.scan", format="fastq", input_bytes=[s + 1 for s in sizes])
    store = TelemetryStore(tmp_path / "t.sqlite")
    assert store.load(tmp_path) == 10
    (job,) = store.jobs()
    assert (job.job_id, job.function, job.format, job.calls, job.failures) == ("syn-M000", "pkg.scan", "fastq", 10, 0)
    assert job.input_bytes == sum(sizes) + 10
    obs = store.observations("pkg.scan")
    assert obs.input_bytes.tolist() == [float(s + 1) for s in sizes]
    assert obs.duration == pytest.approx([r.duration for r in rows])
    assert store.calls("syn-M000")[3]["line"] == 4
    store.close()
    reopened = TelemetryStore(tmp_path / "t.sqlite")
    assert reopened.functions() == ["pkg.scan"]


def test_empty_file_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"\n")
    with pytest.raises(TelemetryCorrupt, match=r"a\.jsonl: empty telemetry file") as info:
        TelemetryStore().load(tmp_path / "a.jsonl")
    assert info.value.line == 0


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b'{"schema":"1","job_id":"j","call_id":1,', "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"schema":"2","job_id":"j","call_id":1,"status":"success"}', "schema '2'"),
        (b'{"schema":"1","job_id":"j","call_id":1,"status":"success","cost":3}', "unknown field"),
        (b'{"schema":"1","job_id":"j","status":"success"}', "call_id"),
    ],
)
def test_corrupt_line_names_file_and_line(tmp_path: Path, line: bytes, detail: str) -> None:
    rows, _ = synthetic_calls(2)
    path = tmp_path / "job.jsonl"
    path.write_bytes(to_jsonl(rows) + line + b"\n")
    with pytest.raises(TelemetryCorrupt, match=detail) as info:
        TelemetryStore().load(tmp_path)
    assert info.value.line == 3
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}:3: ")


def test_missing_path_and_directory_without_telemetry(tmp_path: Path) -> None:
    with pytest.raises(TelemetryCorrupt, match="no such file"):
        TelemetryStore().load(tmp_path / "nope")
    with pytest.raises(TelemetryCorrupt, match=r"no \*\.jsonl"):
        TelemetryStore().load(tmp_path)


def _square(n: int) -> int:
    return n * n


def test_loads_what_a_real_executor_wrote(tmp_path: Path) -> None:
    settings = Settings.load(config_file=None, telemetry={"dir": str(tmp_path)})
    with FunctionExecutor(max_workers=2, settings=settings, progress=False) as fexec:
        fexec.get_result(fexec.map(_square, range(6)))
    store = TelemetryStore()
    assert store.load(tmp_path, function="test._square") == 6
    (job,) = store.jobs()
    assert job.backend == "local"
    assert job.calls == 6
    assert job.wall > 0
    assert json.loads((next(tmp_path.glob("*.jsonl"))).read_text().splitlines()[0])["schema"] == "1"


@pytest.mark.parametrize(("meta", "detail"), [(b"[1, 2]", "JSON object"), (b"\xff\xfe", "UTF-8")])
def test_a_bad_sidecar_is_a_typed_error_naming_it(tmp_path: Path, meta: bytes, detail: str) -> None:
    rows, _ = synthetic_calls(3)
    (tmp_path / "syn-M001.jsonl").write_bytes(to_jsonl(rows))
    (tmp_path / "syn-M001.meta.json").write_bytes(meta)
    with pytest.raises(TelemetryCorrupt, match=detail) as info:
        TelemetryStore(tmp_path / "t.sqlite").load(tmp_path)
    assert "syn-M001.meta.json" in str(info.value)


def _nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_recorded_calls_replay_through_the_simulator(tmp_path: Path) -> None:
    settings = Settings.load(config_file=None, telemetry={"dir": str(tmp_path)})
    with FunctionExecutor(max_workers=2, settings=settings, progress=False) as fexec:
        for burst in (4, 8, 2):  # three jobs, a second apart
            fexec.get_result(fexec.map(_nap, [0.05] * burst))
            time.sleep(1.0)
    store = TelemetryStore()
    store.load(tmp_path, function="test._nap")
    load = store.recorded_load(1.0, function="test._nap")
    assert load.calls == 14
    assert int(load.counts.sum()) == 14
    assert len(load.counts) >= 3  # the bursts fall into different windows
    assert 0.04 <= load.task_seconds < 0.5
    rule = ScalingRule(task_seconds=load.task_seconds, window_seconds=1.0)
    result = simulate(load.counts, StaticPolicy(rule, 2), SimConfig(task_seconds=load.task_seconds, window_seconds=1.0))
    assert result.tasks == 14
    with pytest.raises(ConfigError, match="no stored calls of other"):
        store.recorded_load(1.0, function="other")
