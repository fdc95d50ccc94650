"""Connectors read ``xhub-eph://`` objects exactly as local ones: a FASTQ.gz held in Tier 0."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches


def test_fastq_gz_in_tier0_partitions_and_reads_like_local_disk(
    testdata: Path, tmp_path: Path, eph_settings: Settings
) -> None:
    name = "multimember_pigz.fastq.gz"
    fact = json.loads((testdata / "FACTS.json").read_text())[f"fastq/{name}"]
    local = tmp_path / name
    shutil.copy(testdata / "fastq" / name, local)
    eph = f"xhub-eph://genomics/run-1/{name}"
    storage.put(eph, local.read_bytes(), settings=eph_settings)

    on_disk = CloudObject.from_path(FASTQGZip, str(local), spacing=64 * 1024).preprocess()
    in_tier0 = CloudObject.from_path(FASTQGZip, eph, spacing=64 * 1024, settings=eph_settings).preprocess()
    assert in_tier0.metadata_url.startswith("xhub-eph://genomics/run-1/.xhub/")  # the index lives in Tier 0 too
    assert storage.exists(in_tier0.metadata_url, settings=eph_settings)
    for key in ("num_reads", "num_bases", "uncompressed_size", "gzip_flavour"):
        assert in_tier0[key] == on_disk[key], key
    assert in_tier0["num_reads"] == fact["reads"]
    for n in (1, 3, 7):
        a = on_disk.partition(partition_reads_batches, num_batches=n)
        b = in_tier0.partition(partition_reads_batches, num_batches=n)
        assert [(s.first_read, s.num_reads) for s in a] == [(s.first_read, s.num_reads) for s in b]
        parts = [s.get() for s in b]
        assert parts == [s.get() for s in a]
        assert hashlib.md5(b"".join(parts)).hexdigest() == fact["md5_uncompressed"]
