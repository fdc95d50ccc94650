"""The two-stage k-mer job: a reducer action in the ephemeral store vs partials through SeaweedFS,
and a node service killed while a reducer merges."""

from __future__ import annotations

import gzip
import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
from xtremehub.demo.ephemeral_job import run_two_stage
from xtremehub.ephemeral import NodeService, ServiceProcess, TierConfig, actions, client_for
from xtremehub.ephemeral.client import reset_clients
from xtremehub.errors import StorageError, StorageUnavailable


def sequential_kmers(path: Path, k: int) -> dict[str, int]:
    """The reference: every read's k-mers over ACGT, one read at a time, in plain Python."""
    counts: Counter[str] = Counter()
    with gzip.open(path, "rt") as fh:
        for i, line in enumerate(fh):
            if i % 4 == 1:
                seq = line.strip()
                for j in range(len(seq) - k + 1):
                    kmer = seq[j : j + k]
                    if set(kmer) <= set("ACGT"):
                        counts[kmer] += 1
    return dict(counts)


@pytest.mark.s3
def test_two_stage_job_reducer_action_and_s3_give_the_sequential_counts(
    testdata: Path, eph_service: NodeService, s3_settings: Settings, s3_root: str
) -> None:
    path = testdata / "fastq" / "Illimina1.8.fq.gz"
    settings = s3_settings.replace(home=eph_service.settings.home)  # S3 credentials and the node service
    co = CloudObject.from_path(FASTQGZip, str(path), settings=settings).preprocess()
    slices = co.partition(partition_reads_batches, num_batches=6)
    with FunctionExecutor(workers=2, settings=settings) as fexec:
        ours = run_two_stage(fexec, slices, via="actions", root="xhub-eph://kmers/", k=5, settings=settings)
        s3 = run_two_stage(fexec, slices, via="store", root=s3_root, k=5, settings=settings)
    expected = sequential_kmers(path, 5)
    assert ours.counts == expected
    assert s3.counts == expected
    assert sum(expected.values()) > 1_000_000
    assert ours.bytes_written == s3.bytes_written  # the same partials
    assert s3.bytes_read == s3.bytes_written  # stage 2 read every partial
    assert ours.bytes_read == len(json.dumps(expected, sort_keys=True))  # one merged object
    assert ours.bytes_read < s3.bytes_read / 3
    assert len(list(storage.list(s3.prefix, settings=settings))) == 6


def slow_partials(settings: Settings, start: int, acknowledged: list[int], errors: list[BaseException]) -> None:
    i = start
    try:
        while True:
            storage.put(f"xhub-eph://job/parts/{i:04d}", json.dumps({"n": 1, f"p{i}": i}).encode(), settings=settings)
            acknowledged.append(i)
            i += 1
    except BaseException as exc:
        errors.append(exc)


def test_service_killed_mid_reduce(tmp_path: Path) -> None:
    """Writers get StorageUnavailable; the registry is gone after a restart; registering the reducer
    again rebuilds the merged object from the partials that survived (every relocated one)."""
    settings = Settings(home=tmp_path / "home")
    config = TierConfig(memory_limit="64MiB", persist_url=str(tmp_path / "persist"))
    reset_clients()
    proc = ServiceProcess.start(config, settings)
    try:
        actions.register("xhub-eph://job/parts/", reducer="sum_counts", into="xhub-eph://job/n.json", settings=settings)
        for i in range(10):
            storage.put(f"xhub-eph://job/parts/{i:04d}", json.dumps({"n": 1, f"p{i}": i}).encode(), settings=settings)
        relocated = client_for(settings).relocate("job", "parts/")
        assert len(relocated) == 10
        acknowledged: list[int] = []
        errors: list[BaseException] = []
        writer = threading.Thread(target=slow_partials, args=(settings, 10, acknowledged, errors))
        writer.start()
        while len(acknowledged) < 20:  # the reducer is busy merging
            writer.join(0.01)
        proc.stop(kill=True)
        writer.join(30)
        assert len(errors) == 1
        assert isinstance(errors[0], StorageError)
        assert isinstance(errors[0], StorageUnavailable) or "connection" in str(errors[0])
    finally:
        proc.stop(kill=True)
    reset_clients()
    with ServiceProcess.start(config, settings):
        assert actions.list_actions(settings=settings) == []  # registrations live in the service's memory
        actions.register("xhub-eph://job/parts/", reducer="sum_counts", into="xhub-eph://job/n.json", settings=settings)
        merged = json.loads(storage.get("xhub-eph://job/n.json", settings=settings))
        survivors = [info.key for info in storage.list("xhub-eph://job/parts/", settings=settings)]
        assert [f"parts/{i:04d}" for i in range(10)] == survivors[:10]  # every relocated partial survived
        assert merged["n"] == len(survivors)
        assert merged == {"n": len(survivors), **{f"p{int(k[-4:])}": int(k[-4:]) for k in survivors}}
    reset_clients()
