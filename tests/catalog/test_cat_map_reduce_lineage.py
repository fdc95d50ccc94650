"""``map_reduce`` lineage: the map job and the reduce job are both recorded.

Intermediates in storage: inputs -> map job -> intermediate objects -> reduce job -> final
outputs. In-memory intermediates (the map results themselves): the reduce job inherits the map
job's inputs, and names the map job in its ``after_job`` parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.catalog import open_catalog
from xtremehub.catalog.lineage import normalize_url
from xtremehub.catalog.store.catalog import SqlCatalog


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[SqlCatalog]:
    with open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        yield catalog


@pytest.fixture
def lines(tmp_path: Path) -> Path:
    src = tmp_path / "in" / "lines.txt"
    src.parent.mkdir()
    src.write_bytes(b"".join(b"row %04d\n" % i for i in range(600)))
    return src


def upper_part(obj: Any, work: str) -> str:
    """Map: upper-case one part into an intermediate object; returns its URL."""
    url = f"{work}/part-{obj.part}.txt"
    storage.put(url, obj.data_stream.read().upper())
    return url


def concat_parts(urls: list[str], out: str) -> int:
    """Reduce: concatenate the intermediate objects (in order) into the final one."""
    data = b"".join(storage.get(u) for u in urls)
    storage.put(out, data)
    return len(data)


def count_lines(obj: Any) -> int:
    """Map with an in-memory result: the number of lines of one part."""
    return int(obj.data_stream.read().count(b"\n"))


def write_total(counts: list[int], out: str) -> int:
    storage.put(out, b"lines,%d\n" % sum(counts))
    return sum(counts)


def _urls(cat: SqlCatalog, ids: Any) -> list[str]:
    return sorted(cat.get(i).url for i in ids)


def check_chained_through_intermediates(fexec: FunctionExecutor, cat: SqlCatalog, src: Path, tmp: Path) -> None:
    work, out = f"file://{tmp / 'work'}", f"file://{tmp / 'final.txt'}"
    size = fexec.get_result(
        fexec.map_reduce(
            upper_part, [str(src)], concat_parts, obj_chunk_number=3,
            extra_args={"work": work}, extra_args_reduce={"out": out},
        )
    )  # fmt: skip
    assert fexec.lineage is not None
    map_job, reduce_job = fexec.lineage.records
    assert size == src.stat().st_size
    parts = [f"{work}/part-{i}.txt" for i in range(3)]
    # the map job: the input (its parts) -> the intermediates
    assert map_job.function.endswith(":upper_part")
    assert [cat.get(r.dataset_id).url for r in map_job.inputs] == [normalize_url(str(src))]
    assert _urls(cat, map_job.outputs) == parts
    assert {cat.get(d).kind for d in map_job.outputs} == {"derived"}
    # the reduce job: the intermediates -> the final output, after the map job
    stored = cat.get_job(reduce_job.job_id)
    assert stored.function.endswith(":concat_parts")
    assert stored.status == "succeeded"
    assert stored.parameters["after_job"] == map_job.job_id
    assert stored.parameters["calls"] == 1
    assert stored.parameters["arg.out"] == out
    assert _urls(cat, (r.dataset_id for r in stored.inputs)) == parts
    assert _urls(cat, stored.outputs) == [out]
    assert stored.telemetry["bytes_written"] == src.stat().st_size
    # walking up from the final output: reduce job, intermediates, map job, the input
    final = cat.find_by_url(out)
    assert final is not None
    graph = cat.lineage(final.id, direction="up", depth=5)
    assert {j.job_id for j in graph.jobs} == {map_job.job_id, reduce_job.job_id}
    assert normalize_url(str(src)) in {d.url for d in graph.datasets}


def check_in_memory_intermediates(fexec: FunctionExecutor, cat: SqlCatalog, src: Path, tmp: Path) -> None:
    out = f"file://{tmp / 'total.csv'}"
    total = fexec.get_result(
        fexec.map_reduce(count_lines, [str(src)], write_total, obj_chunk_number=2, extra_args_reduce={"out": out})
    )
    assert fexec.lineage is not None
    map_job, reduce_job = fexec.lineage.records[-2:]
    assert total == 600
    assert map_job.outputs == ()  # in-memory results are no datasets
    assert reduce_job.parameters["after_job"] == map_job.job_id
    # the reduce job inherits the map job's input (with its slices), and wrote the total
    assert [cat.get(r.dataset_id).url for r in reduce_job.inputs] == [normalize_url(str(src))]
    assert sorted(s for s in reduce_job.inputs[0].slices if s.startswith("part")) == ["part 0/2", "part 1/2"]
    assert _urls(cat, reduce_job.outputs) == [out]
    source = cat.find_by_url(normalize_url(str(src)))
    assert source is not None
    down = cat.lineage(source.id, direction="down", depth=3)
    assert {j.job_id for j in down.jobs} >= {map_job.job_id, reduce_job.job_id}
    assert out in {d.url for d in down.datasets}


def test_map_reduce_records_the_reduce_job_after_the_map_job(cat: SqlCatalog, lines: Path, tmp_path: Path) -> None:
    with FunctionExecutor(backend="local", workers=2, catalog=cat, owner="alice") as fexec:
        check_chained_through_intermediates(fexec, cat, lines, tmp_path)
        check_in_memory_intermediates(fexec, cat, lines, tmp_path)


def test_a_failed_map_records_both_jobs_as_failed(cat: SqlCatalog, tmp_path: Path) -> None:
    def boom(x: int) -> int:
        raise ValueError(f"no {x}")

    with FunctionExecutor(backend="local", workers=1, catalog=cat, owner="alice", retries=0) as fexec:
        futures = fexec.map_reduce(boom, [1, 2], sum)
        fexec.get_result(futures, throw_except=False)
        fexec.wait(futures, throw_except=False)
    assert fexec.lineage is not None
    assert [(r.function.rsplit(":", 1)[-1], r.status) for r in fexec.lineage.records] == [
        ("test_a_failed_map_records_both_jobs_as_failed.<locals>.boom", "failed"),
        ("sum", "failed"),
    ]


@pytest.mark.dask
def test_map_reduce_lineage_on_dask(dask_client: Any, cat: SqlCatalog, lines: Path, tmp_path: Path) -> None:
    with FunctionExecutor(dask_client, catalog=cat, owner="erin") as fexec:
        check_chained_through_intermediates(fexec, cat, lines, tmp_path)
        check_in_memory_intermediates(fexec, cat, lines, tmp_path)
