"""Explicit settings reach every data read: an object on a second S3 endpoint, read on every backend.

Two SeaweedFS servers with different credentials run; this process installs no settings
(no ``use_process_settings``, no ``XHUB_*`` variable for the second endpoint). A
:class:`CloudObject` built with the second endpoint's explicit settings is indexed,
partitioned and read serially, on the local backend, on Dask and on Ray. Slices carry the
settings without credentials; the workers complete them from their own configuration (the
engines start with ``XHUB_CONFIG`` naming the second endpoint's bucket, see conftest.py).
A slice that fell back to the process defaults would find no bucket ``xhub-second`` there.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import laspy
import numpy as np
import pytest
import tifffile

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings, configured_settings, default_settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.base import DataSlice
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
from xtremehub.connectors.pointcloud import LAS, partition_points
from xtremehub.connectors.raster import COG
from xtremehub.connectors.text import CSV
from xtremehub.testing.seaweedfs import SeaweedFS

pytestmark = pytest.mark.s3

SECOND_BUCKET = "xhub-second"  # tests/conftest.py creates it on the second server only
BACKENDS = [
    "serial",
    "local",
    pytest.param("dask", marks=pytest.mark.dask),
    pytest.param("ray", marks=pytest.mark.ray),
]


@pytest.fixture(scope="module")
def second(seaweedfs_second: SeaweedFS, seaweedfs: SeaweedFS) -> Settings:
    """The second endpoint's settings; the first server runs too (the workers' default store)."""
    settings = seaweedfs_second.settings()
    assert settings.s3.endpoint_url != seaweedfs.endpoint_url
    assert settings.s3.secret_access_key != seaweedfs.settings().s3.secret_access_key
    return settings


@pytest.fixture
def prefix(second: Settings) -> str:
    return f"s3://{SECOND_BUCKET}/{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def no_process_settings(second: Settings) -> None:
    """This process knows nothing of the second endpoint: only explicit settings can reach it."""
    assert default_settings().s3_for(SECOND_BUCKET).endpoint_url != second.s3.endpoint_url
    assert configured_settings().s3_for(SECOND_BUCKET).endpoint_url != second.s3.endpoint_url


def _reader(kind: str) -> Callable[[DataSlice], Any]:
    """What a worker computes from one slice (a nested function: cloudpickle ships it by value)."""

    def las(s: DataSlice) -> tuple[int, int]:
        points = s.get()
        return len(points), int(np.asarray(points.X, dtype=np.int64).sum())

    def cog(s: DataSlice) -> tuple[int, float]:
        window = s.get()
        return int(window.data.size), float(window.data.astype(np.float64).sum())

    def fastq(s: DataSlice) -> tuple[int, int]:
        text = s.get()
        lines = text.splitlines()
        return len(lines) // 4, sum(len(line) for line in lines[1::4])

    def csv(s: DataSlice) -> list[dict[str, str]]:
        return s.rows()  # type: ignore[attr-defined, no-any-return]

    return {"las": las, "cog": cog, "fastq": fastq, "csv": csv}[kind]


@pytest.fixture
def run(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, second_endpoint_config: Path
) -> Iterator[tuple[FunctionExecutor | None, Callable[..., list[Any]]]]:
    """``(executor or None, map)`` for the backend under test."""
    backend = request.param
    if backend == "serial":
        yield None, lambda f, slices: [f(s) for s in slices]
        return
    if backend == "local":
        fexec = FunctionExecutor("local", workers=2, settings=Settings(), progress=False)
        with monkeypatch.context() as env:  # the workers' own configuration, as on a real machine
            env.setenv("XHUB_CONFIG", str(second_endpoint_config))
            assert fexec.call_async(abs, -1).result(timeout=60) == 1  # forks the workers now
    elif backend == "dask":
        fexec = FunctionExecutor("dask", client=request.getfixturevalue("dask_client"), progress=False)
    else:
        request.getfixturevalue("ray_engine")
        fexec = FunctionExecutor("ray", progress=False)
    with fexec:
        yield fexec, lambda f, slices: fexec.get_result(fexec.map(f, slices))


def _put(testdata: Path, relative: str, prefix: str, second: Settings) -> tuple[Path, str]:
    path = testdata / relative
    url = prefix + path.name
    storage.put(url, path.read_bytes(), settings=second)
    return path, url


@pytest.mark.usefixtures("no_process_settings")
@pytest.mark.parametrize("run", BACKENDS, indirect=True)
def test_a_laz_object_on_a_second_endpoint_is_read_on_every_backend(
    run: tuple[FunctionExecutor | None, Callable[..., list[Any]]], testdata: Path, prefix: str, second: Settings
) -> None:
    fexec, mapper = run
    path, url = _put(testdata, "las/autzen_trim.laz", prefix, second)
    co = CloudObject(LAS, url, settings=second).preprocess(fexec)
    slices = co.partition(partition_points, num_batches=4)
    assert b"xhub-second-secret" not in cloudpickle.dumps(slices)  # no credential travels
    got = mapper(_reader("las"), slices)
    truth = laspy.read(path)
    assert sum(n for n, _ in got) == len(truth.points) == co["point_count"]
    assert sum(s for _, s in got) == int(np.asarray(truth.X, dtype=np.int64).sum())


@pytest.mark.usefixtures("no_process_settings")
@pytest.mark.parametrize("run", BACKENDS, indirect=True)
def test_a_cog_object_on_a_second_endpoint_is_read_on_every_backend(
    run: tuple[FunctionExecutor | None, Callable[..., list[Any]]], testdata: Path, prefix: str, second: Settings
) -> None:
    fexec, mapper = run
    path, url = _put(testdata, "cog/cog.tif", prefix, second)
    co = CloudObject(COG, url, settings=second).preprocess(fexec)
    slices = co.partition("grid", n_rows=2, n_cols=2)
    assert b"xhub-second-secret" not in pickle.dumps(slices)
    got = mapper(_reader("cog"), slices)
    truth = tifffile.imread(path)
    assert sum(n for n, _ in got) == truth.size
    assert sum(s for _, s in got) == pytest.approx(float(truth.astype(np.float64).sum()))


@pytest.mark.usefixtures("no_process_settings")
@pytest.mark.parametrize("run", BACKENDS, indirect=True)
def test_a_csv_object_on_a_second_endpoint_is_indexed_and_read_on_every_backend(
    run: tuple[FunctionExecutor | None, Callable[..., list[Any]]], prefix: str, second: Settings
) -> None:
    fexec, mapper = run
    rows = [{"id": str(i), "note": f"line {i}\nwith a newline, and a comma"} for i in range(500)]
    text = "id,note\n" + "".join(f'{r["id"]},"{r["note"]}"\n' for r in rows)
    url = prefix + "notes.csv"
    storage.put(url, text.encode(), settings=second)
    co = CloudObject(CSV, url, settings=second).preprocess(fexec)
    slices = co.partition("num_chunks", num_chunks=4)
    assert b"xhub-second-secret" not in cloudpickle.dumps(slices)
    got = [row for part in mapper(_reader("csv"), slices) for row in part]
    assert got == rows
    assert co["num_rows"] == len(rows)


@pytest.mark.usefixtures("no_process_settings")
@pytest.mark.parametrize("run", BACKENDS, indirect=True)
def test_a_fastq_gz_object_on_a_second_endpoint_is_indexed_and_read_on_every_backend(
    run: tuple[FunctionExecutor | None, Callable[..., list[Any]]], testdata: Path, prefix: str, second: Settings
) -> None:
    fexec, mapper = run
    _, url = _put(testdata, "fastq/Illimina1.8.fq.gz", prefix, second)
    co = CloudObject(FASTQGZip, url, settings=second, spacing=1 << 16).preprocess(fexec)
    slices = co.partition(partition_reads_batches, num_batches=3)
    assert b"xhub-second-secret" not in cloudpickle.dumps(slices)
    got = mapper(_reader("fastq"), slices)
    assert sum(n for n, _ in got) == co["num_reads"]
    assert sum(b for _, b in got) == co["num_bases"]


@pytest.mark.usefixtures("no_process_settings")
@pytest.mark.parametrize("run", BACKENDS, indirect=True)
def test_a_streams_history_in_lts_on_a_second_endpoint_is_read_on_every_backend(
    run: tuple[FunctionExecutor | None, Callable[..., list[Any]]], prefix: str, second: Settings, tmp_path: Path
) -> None:
    from xtremehub.streams import ScalingPolicy, StreamManager
    from xtremehub.streams.history import StreamHistory, StreamSlice

    _, mapper = run

    def events(s: StreamSlice) -> list[bytes]:  # nested: travels by value to Ray and Dask workers
        return [e.data for e in s.events()]

    options: dict[str, Any] = {"settings": second, "lts_flush_delay": 0.0, "lts_chunk_size": 8 << 10}
    with StreamManager.embedded(tmp_path / "streams", prefix, **options) as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(2))
        with manager.create_writer("lab", "s", max_in_flight=32) as writer:
            for n in range(300):
                writer.write_event(b"%05d" % n + b"." * 100, routing_key=f"k{n % 5}")
        manager.seal_stream("lab", "s")
        slices = StreamHistory(manager, "lab", "s", prefix, settings=second, wait=60).partition(16 << 10)
    assert len(slices) > 2
    assert b"xhub-second-secret" not in cloudpickle.dumps(slices)  # no credential travels
    got = sorted(int(data[:5]) for part in mapper(events, slices) for data in part)
    assert got == list(range(300))
