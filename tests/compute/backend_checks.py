"""Checks every distributed-engine backend shares beyond the conformance suite.

Mixed into each engine's test class next to :class:`ExecutorTests`; the class
provides ``make_executor`` and names its backend in ``backend``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings, default_settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import FASTQGZip, FASTQGZipSlice, partition_reads_batches
from xtremehub.errors import ConfigError
from xtremehub.testing.executor import line_records, square, total

SPACING = 64 * 1024

# The engines' workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def mixed(x: int) -> Any:
    """Results of several types, and a failure, so comparisons are not trivial."""
    if x == 7:
        raise KeyError(f"no {x}")
    return {"n": x, "sq": x * x, "s": str(x) * (x % 4), "t": (x, float(x) / 3)}


def count_reads(data_slice: FASTQGZipSlice) -> tuple[int, int]:
    reads = list(data_slice.iter_records())
    return len(reads), sum(len(seq) for _, seq, _ in reads)


def worker_s3_view(_: Any) -> tuple[str | None, bool, bool]:
    s3 = default_settings().s3
    return s3.endpoint_url, s3.access_key_id is not None, s3.secret_access_key is not None


class BackendChecks:
    backend: str = ""

    def test_results_identical_to_the_local_backend(self, executor_factory: Any) -> None:
        fexec = executor_factory()
        items = list(range(12))
        with FunctionExecutor("local", workers=2) as local:
            expected = local.get_result(local.map(mixed, items), throw_except=False)
            expected_error = type(local.map(mixed, [7])[0].exception(timeout=60))
            expected_reduced = local.get_result(local.map_reduce(square, items, total))
        got_futures = fexec.map(mixed, items)
        assert fexec.get_result(got_futures, throw_except=False) == expected
        error = got_futures[7].exception(timeout=60)
        assert type(error) is expected_error
        assert "mixed" in getattr(error, "remote_traceback", "")
        assert fexec.get_result(fexec.map_reduce(square, items, total)) == expected_reduced
        assert all(f.stats["worker"].startswith(self.backend) for i, f in enumerate(got_futures) if i != 7)

    def test_engine_tasks_sized_from_call_durations_unless_chunksize_is_given(self, executor_factory: Any) -> None:
        fexec = executor_factory()
        fexec._ensure_started()
        backend = fexec.backend
        sizes: list[int] = []
        launch = backend._launch

        def counting(job: Any, batches: list[list[Any]], settings: Any, packed: Any = None) -> Any:
            sizes.extend(len(b) for b in batches)
            return launch(job, batches, settings, packed)

        backend._launch = counting  # counts the engine tasks; the engine runs them as before
        assert fexec.get_result(fexec.map(square, range(300))) == [i * i for i in range(300)]
        assert sum(sizes) == 300
        if backend.adaptive_chunks:  # Ray, Dask: calls of microseconds share engine tasks
            assert len(sizes) < 60, sizes
            assert sizes[0] == 1  # the first calls go alone: their durations size the rest
        sizes.clear()
        assert fexec.get_result(fexec.map(square, range(20), chunksize=7)) == [i * i for i in range(20)]
        assert sizes == [7, 7, 6]  # an explicit chunksize wins
        sizes.clear()
        assert fexec.get_result(fexec.map(square, range(5), timeout=60)) == [0, 1, 4, 9, 16]
        assert sizes == [1] * 5  # a time limit is per call: one call per engine task

    def test_map_over_fastq_slices(self, executor_factory: Any, testdata: Path, tmp_path: Path) -> None:
        facts = json.loads((testdata / "FACTS.json").read_text())["fastq/sample.fastq.bgz"]
        co = CloudObject.from_path(
            FASTQGZip, str(testdata / "fastq" / "sample.fastq.bgz"), metadata_url=str(tmp_path / "i"), spacing=SPACING
        ).preprocess()
        slices = co.partition(partition_reads_batches, num_batches=3)
        fexec = executor_factory()
        counts = fexec.get_result(fexec.map(count_reads, slices))
        assert [c[0] for c in counts] == [s.num_reads for s in slices]
        assert sum(c[0] for c in counts) == facts["reads"]
        assert sum(c[1] for c in counts) == facts["total_bases"]

    @pytest.mark.s3
    def test_s3_objects_and_slices_resolve_on_workers_without_shipped_secrets(
        self, executor_factory: Any, s3_default: Settings, s3_root: str, testdata: Path
    ) -> None:
        """Settings travel without secrets; workers take credentials from their own environment."""
        fexec = executor_factory(settings=s3_default)
        endpoint, has_key, has_secret = fexec.call_async(worker_s3_view, None).result(timeout=120)
        assert (endpoint, has_key, has_secret) == (s3_default.s3.endpoint_url, True, True)
        # plain objects, cut into newline-aligned parts
        lines = [f"line-{i:05d}-" + "y" * (i % 13) for i in range(400)]
        storage.put(s3_root + "lines.txt", ("\n".join(lines) + "\n").encode())
        futures = fexec.map(line_records, s3_root + "lines.txt", obj_chunk_number=3)
        assert [line for part in fexec.get_result(futures) for line in part] == lines
        # connector slices of a FASTQ.gz object
        facts = json.loads((testdata / "FACTS.json").read_text())["fastq/sample.fastq.bgz"]
        url = s3_root + "sample.fastq.bgz"
        storage.put(url, (testdata / "fastq" / "sample.fastq.bgz").read_bytes())
        co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
        slices = co.partition(partition_reads_batches, num_batches=2)
        counts = fexec.get_result(fexec.map(count_reads, slices))
        assert sum(c[0] for c in counts) == facts["reads"]
        assert sum(c[1] for c in counts) == facts["total_bases"]

    def test_missing_extra_names_it(self, tmp_path: Path) -> None:
        module = {"ray": "ray", "dask": "distributed", "lithops": "lithops"}[self.backend]
        script = (
            "import sys\n"
            f"sys.modules[{module!r}] = None  # as if the extra were not installed\n"
            "from xtremehub import FunctionExecutor\n"
            "from xtremehub.errors import MissingDependency\n"
            "try:\n"
            f"    FunctionExecutor({self.backend!r})\n"
            "except MissingDependency as exc:\n"
            "    print(exc)\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
        assert f"pip install 'xtremehub[{self.backend}]'" in result.stdout
        assert f"compute backend {self.backend!r}" in result.stdout

    def test_options_cannot_be_applied_to_an_instance(self) -> None:
        from xtremehub.compute import create_backend

        backend = create_backend(self.backend)
        with pytest.raises(ConfigError, match="existing backend instance"):
            FunctionExecutor(backend, workers=3)
