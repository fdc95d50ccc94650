"""Connector slices over encrypted objects read, on workers, exactly the records of the plain objects.

Each format is stored twice -- plain and through ``enc+`` -- partitioned the same way and read
on a local-backend executor with 2 workers; the per-slice digests must be equal. The index
sidecars of encrypted objects are encrypted too, and no plaintext sample is in the stored bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.config import EncryptionSettings, Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import VCF, FASTQGZip, FASTQGZipSlice
from xtremehub.connectors.imaging import ImzML
from xtremehub.connectors.pointcloud import LAS
from xtremehub.connectors.raster import COG
from xtremehub.storage import iostats

SPACING = 64 * 1024


def _digest(data_slice: Any) -> str:
    """A digest of every record a slice reads, whatever its format (runs on the workers)."""
    h = hashlib.sha256()
    if isinstance(data_slice, FASTQGZipSlice):
        for record in data_slice.iter_records():
            h.update(b"\0".join(record) + b"\n")
        return h.hexdigest()
    if hasattr(data_slice, "records"):  # VCF
        for row in data_slice.records():
            h.update("\t".join(row).encode() + b"\n")
        return h.hexdigest()
    got = data_slice.get()
    if hasattr(got, "intensities"):  # imzML spectra
        for name in ("indices", "coords", "mz", "intensities", "offsets"):
            h.update(np.ascontiguousarray(getattr(got, name)).tobytes())
    elif hasattr(got, "array"):  # LAS/LAZ points
        h.update(np.ascontiguousarray(got.array).tobytes())
    else:  # COG window
        h.update(np.ascontiguousarray(got.data).tobytes())
    return h.hexdigest()


CASES: list[tuple[str, type[Any], list[str], dict[str, Any], dict[str, Any]]] = [
    ("fastq/Illimina1.8.fq.gz", FASTQGZip, [], {"spacing": SPACING}, {"strategy": "reads_batches", "num_batches": 4}),
    ("vcf/test.vcf.gz", VCF, [], {"spacing": SPACING}, {"strategy": "records", "num_batches": 4}),
    ("vcf/index.vcf", VCF, [], {"spacing": SPACING}, {"strategy": "records", "num_batches": 3}),
    ("imzml/Example_Processed.imzML", ImzML, [".ibd"], {}, {"strategy": "spectra", "num_batches": 3}),
    ("las/autzen_trim.laz", LAS, [], {}, {"strategy": "points", "num_batches": 3}),
    ("las/test1_4.las", LAS, [], {}, {"strategy": "grid", "cols": 2, "rows": 2}),
    ("cog/cog.tif", COG, [], {}, {"strategy": "grid", "n_rows": 2, "n_cols": 2}),
]


def _place(testdata: Path, rel: str, companions: list[str], root: str, settings: Settings) -> str:
    src = testdata / rel
    url = root + src.name
    storage.put(url, src.read_bytes(), settings=settings)
    for suffix in companions:
        storage.put(root + src.with_suffix(suffix).name, src.with_suffix(suffix).read_bytes(), settings=settings)
    return url


def _digests(url: str, fmt: type[Any], options: dict[str, Any], plan: dict[str, Any], settings: Settings) -> list[str]:
    co = CloudObject.from_path(fmt, url, settings=settings, **options).preprocess()
    params = dict(plan)
    slices = co.partition(params.pop("strategy"), **params)
    with FunctionExecutor(workers=2, settings=settings) as fexec:
        return list(fexec.get_result(fexec.map(_digest, slices)))


@pytest.mark.parametrize(("rel", "fmt", "companions", "options", "plan"), CASES, ids=[c[0] for c in CASES])
def test_encrypted_slices_read_the_same_records_on_workers(
    testdata: Path,
    tmp_path: Path,
    rel: str,
    fmt: type[Any],
    companions: list[str],
    options: dict[str, Any],
    plan: dict[str, Any],
) -> None:
    settings = Settings(
        encryption=EncryptionSettings(keys=f"file://{tmp_path}/keyring.json", dataset="connectors", chunk_size=16384)
    )
    plain = _digests(_place(testdata, rel, companions, f"{tmp_path}/plain/", settings), fmt, options, plan, settings)
    url = _place(testdata, rel, companions, f"enc+file://{tmp_path}/enc/", settings)
    encrypted = _digests(url, fmt, options, plan, settings)
    assert len(plain) >= 2
    assert encrypted == plain
    # The index sidecar of the encrypted object is encrypted as well.
    index_url = CloudObject.from_path(fmt, url, settings=settings, **options).metadata_url
    assert index_url.startswith(f"enc+file://{tmp_path}/enc/.xhub/")
    stored_index = Path(index_url.removeprefix("enc+file://")).read_bytes()
    assert stored_index.startswith(b"XHUBENC")
    plain_index = storage.get(index_url, settings=settings)
    assert plain_index[:64] not in stored_index
    # No sample of the data appears anywhere in what the encrypted directory holds.
    data = (testdata / rel).read_bytes()
    samples = [data[i : i + 32] for i in range(0, len(data) - 32, max(1, len(data) // 50))]
    for stored in (tmp_path / "enc").rglob("*"):
        if stored.is_file():
            blob = stored.read_bytes()
            assert not any(sample in blob for sample in samples), stored


@pytest.mark.s3
def test_encrypted_fastq_gz_on_s3_with_two_workers(
    testdata: Path, tmp_path: Path, s3_root: str, s3_settings: Settings
) -> None:
    # Only the key-source URL travels with the settings; each worker opens the keyring itself.
    encryption = EncryptionSettings(keys=f"file://{tmp_path}/keyring.json", dataset="reads", chunk_size=65536)
    settings = s3_settings.replace(encryption=encryption)
    rel, options, plan = "fastq/sample.fastq.bgz", {"spacing": SPACING}, {"strategy": "reads_batches", "num_batches": 4}
    plain = _digests(_place(testdata, rel, [], s3_root + "plain/", settings), FASTQGZip, options, plan, settings)
    url = _place(testdata, rel, [], "enc+" + s3_root + "enc/", settings)
    encrypted = _digests(url, FASTQGZip, options, plan, settings)
    assert encrypted == plain
    shipped = pickle.dumps(CloudObject.from_path(FASTQGZip, url, settings=settings, **options).partition(**plan))
    assert b"keyring.json" in shipped
    ring = json.loads(Path(f"{tmp_path}/keyring.json").read_text())
    for kek in ring["datasets"]["reads"]["versions"].values():
        assert kek.encode() not in shipped
        assert base64.b64decode(kek) not in shipped
    raw = storage.get(s3_root + "enc/sample.fastq.bgz", settings=settings)
    assert raw.startswith(b"XHUBENC")
    assert (testdata / rel).read_bytes()[:64] not in raw


def test_ranged_reads_fetch_only_the_chunks_under_the_range(tmp_path: Path) -> None:
    chunk = 64 * 1024
    settings = Settings(encryption=EncryptionSettings(keys=f"file://{tmp_path}/ring.json", chunk_size=chunk))
    payload = np.random.default_rng(1).bytes(40 * chunk + 123)
    url = f"enc+file://{tmp_path}/big.bin"
    storage.put(url, payload, settings=settings)
    store, key = storage.open_store(url, settings)
    store.get_range(key, 0, 1)  # open once (header and size are cached per store)
    cases = [(10, 20, 1), (chunk - 1, chunk + 1, 2), (5 * chunk, 7 * chunk, 2), (40 * chunk, 40 * chunk + 123, 1)]
    for start, end, chunks in cases:
        before = iostats.snapshot()
        assert store.get_range(key, start, end) == payload[start:end]
        fetched = iostats.snapshot().bytes_read - before.bytes_read
        expected = sum(min(chunk, len(payload) - i * chunk) + 16 for i in range(start // chunk, (end - 1) // chunk + 1))
        assert fetched == expected, (start, end, fetched)
        assert chunks == -(-fetched // (chunk + 16))
