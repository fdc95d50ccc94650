"""The chunked envelope format and the file keyring: round trips, ranges, rotation."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from xtremehub.config import EncryptionSettings, Settings
from xtremehub.errors import ConfigError, IntegrityError, KeyReleaseDenied
from xtremehub.security.envelope import HEADER_SIZE, TAG_SIZE, Envelope, ciphertext_size, plaintext_size
from xtremehub.security.keyring import FileKeyring, MemoryKeyring, open_keys, wrapped_version
from xtremehub.storage.access import StoreAccess


def seal(env: Envelope, payload: bytes) -> bytes:
    return env.header() + b"".join(env.encrypt_chunks([payload]))


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 64, 1000])
def test_round_trip_and_sizes_at_chunk_edges(size: int) -> None:
    keys = MemoryKeyring()
    payload = os.urandom(size)
    env = Envelope.new(keys, "d", "obj", chunk_size=16)
    blob = seal(env, payload)
    assert len(blob) == ciphertext_size(size, 16)
    assert plaintext_size(len(blob), 16) == size
    opened = Envelope.parse(blob[:HEADER_SIZE], keys, "obj")
    if size:
        for start, end in [(0, size), (size // 2, size), (0, 1), (size - 1, size)]:
            first, last, span = opened.chunk_span(start, end, size)
            plain = opened.decrypt_span(blob[HEADER_SIZE + span.start : HEADER_SIZE + span.end], first, last, size)
            assert plain[start - first * 16 : end - first * 16] == payload[start:end]
    else:
        assert opened.decrypt_span(blob[HEADER_SIZE:], 0, 0, 0) == b""


def test_encrypt_chunks_accepts_pieces_of_any_size() -> None:
    keys = MemoryKeyring()
    payload = os.urandom(5000)
    env = Envelope.new(keys, "d", "obj", chunk_size=256)
    pieces = [payload[i : i + 7] for i in range(0, 5000, 7)]
    chunks = list(env.encrypt_chunks(pieces))
    assert [len(c) for c in chunks] == [256 + TAG_SIZE] * 19 + [5000 - 19 * 256 + TAG_SIZE]
    assert b"".join(env.encrypt_chunks([payload]))[:0] == b""
    blob = env.header() + b"".join(chunks)
    assert Envelope.parse(blob[:HEADER_SIZE], keys, "obj").decrypt_span(blob[HEADER_SIZE:], 0, 19, 5000) == payload


def test_header_holds_no_key_and_repr_leaks_nothing() -> None:
    keys = MemoryKeyring()
    env = Envelope.new(keys, "genomes", "obj")
    data_key = keys.unwrap("genomes", env.wrapped_key)
    assert data_key not in env.header()
    assert data_key.hex() not in repr(env)
    assert "wrapped" not in repr(env)
    kek = keys._keks["genomes"][1]
    assert kek not in env.header()
    assert kek.hex() not in repr(keys)


def test_bad_magic_and_short_header() -> None:
    keys = MemoryKeyring()
    with pytest.raises(IntegrityError, match="obj: not an encrypted XtremeHub object"):
        Envelope.parse(b"plain text file".ljust(HEADER_SIZE), keys, "obj")
    with pytest.raises(IntegrityError, match="obj: truncated envelope header"):
        Envelope.parse(b"XHUBENC", keys, "obj")


def test_chunk_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        Envelope.new(MemoryKeyring(), "d", "o", chunk_size=0)
    with pytest.raises(ConfigError, match=r"encryption\.chunk_size"):
        EncryptionSettings(chunk_size=0)


def test_keyring_rotation_keeps_old_versions_and_retire(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys" / "ring.json")
    old = ring.wrap("genomes", b"a" * 32)
    assert ring.rotate("genomes") == 2
    new = ring.wrap("genomes", b"b" * 32)
    assert (wrapped_version(old), wrapped_version(new)) == (1, 2)
    assert ring.unwrap("genomes", old) == b"a" * 32
    # Another process (a fresh keyring on the same file) sees the rotation.
    other = FileKeyring(tmp_path / "keys" / "ring.json")
    assert other.current("genomes") == 2
    assert other.unwrap("genomes", new) == b"b" * 32
    with pytest.raises(ConfigError, match="is current"):
        ring.retire("genomes", 2)
    ring.retire("genomes", 1)
    with pytest.raises(KeyReleaseDenied, match="KEK version 1 of dataset 'genomes'"):
        FileKeyring(tmp_path / "keys" / "ring.json").unwrap("genomes", old)  # a process started after
    assert stat.S_IMODE((tmp_path / "keys" / "ring.json").stat().st_mode) == 0o600


def test_keyring_without_create_refuses_unknown_dataset() -> None:
    with pytest.raises(KeyReleaseDenied, match="dataset 'x'"):
        MemoryKeyring(create=False).wrap("x", b"k" * 32)


def test_tampered_wrapped_key_is_integrity_error() -> None:
    ring = MemoryKeyring()
    wrapped = bytearray(ring.wrap("d", b"k" * 32))
    wrapped[-1] ^= 1
    with pytest.raises(IntegrityError, match="wrapped data key"):
        ring.unwrap("d", bytes(wrapped))
    with pytest.raises(IntegrityError, match="malformed"):
        ring.unwrap("d", b"junk")


def test_settings_carry_the_key_source_not_keys(tmp_path: Path) -> None:
    source = f"file://{tmp_path}/ring.json"
    keys = open_keys(source)
    keys.wrap("d", b"k" * 32)
    assert isinstance(keys, FileKeyring)
    kek = keys._keks["d"][1]
    settings = Settings(encryption=EncryptionSettings(keys=source, dataset="d"))
    shipped = pickle.dumps(StoreAccess(settings))
    assert kek not in shipped
    assert source.encode() in shipped
    assert pickle.loads(shipped).settings.encryption == settings.encryption


def test_encryption_settings_from_environment() -> None:
    s = Settings.load(
        config_file=None,
        env={"XHUB_ENCRYPTION_KEYS": "mem://env", "XHUB_ENCRYPTION_DATASET": "g", "XHUB_ENCRYPTION_CHUNK_SIZE": "1024"},
    )
    assert s.encryption == EncryptionSettings(keys="mem://env", dataset="g", chunk_size=1024)
