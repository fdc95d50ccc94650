"""EncryptedStore behaviour beyond the conformance suite: sizes, I/O counting, rotation of a prefix."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.config import EncryptionSettings, Settings
from xtremehub.errors import ConfigError, IntegrityError, UnsupportedURL
from xtremehub.security.envelope import HEADER_SIZE, ciphertext_size
from xtremehub.security.keyring import FileKeyring, open_keys, wrapped_version
from xtremehub.storage import iostats
from xtremehub.storage.encrypted import EncryptedStore


def _settings(tmp_path: Path, chunk_size: int = 1024) -> Settings:
    keys = f"file://{tmp_path}/ring.json"
    return Settings(encryption=EncryptionSettings(keys=keys, dataset="d", chunk_size=chunk_size))


def test_list_and_head_report_plaintext_sizes_whatever_the_chunk_size(tmp_path: Path) -> None:
    root = f"enc+file://{tmp_path}/data/"
    sizes = {"a": 0, "b": 1, "c": 5000, "d": 65536 * 3 + 7}
    for i, (name, size) in enumerate(sizes.items()):
        storage.put(root + name, os.urandom(size), settings=_settings(tmp_path, chunk_size=[16, 1024, 4096, 65536][i]))
    listed = {info.key.rsplit("/", 1)[1]: info.size for info in storage.list(root, settings=_settings(tmp_path))}
    assert listed == sizes
    for name, size in sizes.items():
        assert storage.head(root + name, settings=_settings(tmp_path)).size == size


def test_iostats_count_ciphertext_moved(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    before = iostats.snapshot()
    storage.put(f"enc+file://{tmp_path}/x", io.BytesIO(b"z" * 10_000), settings=settings)
    written = iostats.snapshot().bytes_written - before.bytes_written
    assert written == ciphertext_size(10_000, 1024) == HEADER_SIZE + 10_000 + 10 * 16


def test_streaming_put_from_a_generator(tmp_path: Path) -> None:
    pieces = [os.urandom(n) for n in (1, 1023, 1024, 1025, 70_000, 3)]
    url = f"enc+file://{tmp_path}/stream"
    assert storage.put(url, iter(pieces), settings=_settings(tmp_path)).size == sum(map(len, pieces))
    assert storage.get(url, settings=_settings(tmp_path)) == b"".join(pieces)


def test_rotation_of_a_whole_prefix(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    root = f"enc+file://{tmp_path}/rot/"
    payloads = {f"o{i}": os.urandom(3000 + i) for i in range(5)}
    for name, data in payloads.items():
        storage.put(root + name, data, settings=settings)
    ring = open_keys(f"file://{tmp_path}/ring.json")
    assert isinstance(ring, FileKeyring)
    ring.rotate("d")
    store, prefix = storage.open_store(root, settings)
    assert isinstance(store, EncryptedStore)
    assert store.rewrap_all(prefix) == 5
    for name in payloads:
        header = (tmp_path / "rot" / name).read_bytes()[:HEADER_SIZE]
        assert wrapped_version(header[header.index(b"XK1") :]) == 2
    ring.retire("d", 1)
    assert all(storage.get(root + n, settings=settings) == d for n, d in payloads.items())


def test_plain_object_under_an_enc_url_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_bytes(b"not encrypted at all" * 100)
    with pytest.raises(IntegrityError, match=r"plain\.txt: not an encrypted XtremeHub object"):
        storage.get(f"enc+file://{tmp_path}/plain.txt", settings=_settings(tmp_path))


def test_unknown_inner_scheme_and_key_source(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedURL, match="gopher"):
        storage.get("enc+gopher://x/y", settings=_settings(tmp_path))
    bad = Settings(encryption=EncryptionSettings(keys=f"vault-{uuid.uuid4().hex[:6]}://x"))
    with pytest.raises(ConfigError, match="unknown scheme"):
        storage.put(f"enc+file://{tmp_path}/y", b"y", settings=bad)


def test_default_key_source_is_a_file_keyring_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    storage.put(f"enc+file://{tmp_path}/z", b"zzz", settings=settings)
    ring = tmp_path / "home" / "keys" / "keyring.json"
    assert oct(ring.stat().st_mode & 0o777) == "0o600"
    assert storage.get(f"enc+file://{tmp_path}/z", settings=settings) == b"zzz"
