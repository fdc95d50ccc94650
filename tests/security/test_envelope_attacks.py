"""Attacks on encrypted objects: each fails with an IntegrityError naming the object and chunk, never a key."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from xtremehub import storage
from xtremehub.config import EncryptionSettings, Settings
from xtremehub.errors import IntegrityError
from xtremehub.security.envelope import HEADER_SIZE, TAG_SIZE
from xtremehub.security.keyring import MemoryKeyring, open_keys
from xtremehub.storage._memory import MemoryStore
from xtremehub.storage.encrypted import EncryptedStore

CHUNK = 1024
STEP = CHUNK + TAG_SIZE
PAYLOAD = os.urandom(5 * CHUNK + 100)  # 6 chunks, the last one short


@pytest.fixture
def env() -> Iterator[tuple[Settings, str]]:
    source = f"mem://attacks-{uuid.uuid4().hex}"
    settings = Settings(encryption=EncryptionSettings(keys=source, dataset="d", chunk_size=CHUNK))
    bucket = f"attacks-{uuid.uuid4().hex[:8]}"
    storage.put(f"enc+mem://{bucket}/a.bin", PAYLOAD, settings=settings)
    storage.put(f"enc+mem://{bucket}/b.bin", PAYLOAD[::-1], settings=settings)
    return settings, bucket


def raw(bucket: str, key: str) -> bytes:
    return MemoryStore(bucket).get(key)


def plant(bucket: str, key: str, blob: bytes) -> None:
    MemoryStore(bucket).put(key, blob)


def keys_of(settings: Settings) -> list[bytes]:
    ring = open_keys(settings.encryption.keys or "")
    assert isinstance(ring, MemoryKeyring)
    return [k for versions in ring._keks.values() for k in versions.values()]


def assert_refused(settings: Settings, url: str, chunk: int, start: int = 0, end: int | None = None) -> None:
    end = len(PAYLOAD) if end is None else end
    for read in (
        lambda: storage.get(url, settings=settings),
        lambda: storage.get_range(url, start, end, settings=settings),
    ):
        with pytest.raises(IntegrityError) as info:
            read()
        message = str(info.value)
        assert url in message, message
        assert f"chunk {chunk} of" in message, message
        for key in keys_of(settings):  # no key material in the message or the traceback text
            assert key.hex() not in message
            assert repr(key) not in message


def test_plain_round_trip(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    assert storage.get(f"enc+mem://{bucket}/a.bin", settings=settings) == PAYLOAD
    assert PAYLOAD[:64] not in raw(bucket, "a.bin")


def test_tampered_chunk(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    blob = bytearray(raw(bucket, "a.bin"))
    blob[HEADER_SIZE + 3 * STEP + 10] ^= 0x01
    plant(bucket, "a.bin", bytes(blob))
    assert_refused(settings, f"enc+mem://{bucket}/a.bin", 3, 3 * CHUNK, 3 * CHUNK + 5)
    # the chunks around it still read: damage is contained and located
    assert storage.get_range(f"enc+mem://{bucket}/a.bin", 0, CHUNK, settings=settings) == PAYLOAD[:CHUNK]


def test_chunks_reordered(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    blob = raw(bucket, "a.bin")
    chunks = [blob[HEADER_SIZE + i * STEP : HEADER_SIZE + (i + 1) * STEP] for i in range(6)]
    chunks[1], chunks[2] = chunks[2], chunks[1]
    plant(bucket, "a.bin", blob[:HEADER_SIZE] + b"".join(chunks))
    assert_refused(settings, f"enc+mem://{bucket}/a.bin", 1, CHUNK, CHUNK + 1)


def test_truncated_object(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    blob = raw(bucket, "a.bin")
    plant(bucket, "a.bin", blob[:-40])  # cut inside the final chunk
    assert_refused(settings, f"enc+mem://{bucket}/a.bin", 5, 5 * CHUNK, 5 * CHUNK + 10)
    plant(bucket, "a.bin", blob[: HEADER_SIZE + 2 * STEP + 500])  # cut inside chunk 2
    assert_refused(settings, f"enc+mem://{bucket}/a.bin", 2, 2 * CHUNK, 2 * CHUNK + 10)


def test_final_chunk_dropped(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    blob = raw(bucket, "a.bin")
    plant(bucket, "a.bin", blob[: HEADER_SIZE + 5 * STEP])  # chunk 4 now looks last, but is not final
    assert storage.head(f"enc+mem://{bucket}/a.bin", settings=settings).size == 5 * CHUNK
    assert_refused(settings, f"enc+mem://{bucket}/a.bin", 4, 4 * CHUNK, 5 * CHUNK)


def test_all_chunks_dropped(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    plant(bucket, "a.bin", raw(bucket, "a.bin")[:HEADER_SIZE])
    with pytest.raises(IntegrityError, match="truncated encrypted object"):
        storage.get(f"enc+mem://{bucket}/a.bin", settings=settings)


def test_ciphertext_of_a_served_as_b(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    plant(bucket, "b.bin", raw(bucket, "a.bin"))  # same dataset and KEK: only the binding tells
    assert_refused(settings, f"enc+mem://{bucket}/b.bin", 0)
    # chunks of A spliced into B (same chunk index) are refused too
    a, b = raw(bucket, "a.bin"), bytearray(raw(bucket, "b.bin"))
    storage.put(f"enc+mem://{bucket}/b.bin", PAYLOAD[::-1], settings=settings)
    b = bytearray(raw(bucket, "b.bin"))
    b[HEADER_SIZE + STEP : HEADER_SIZE + 2 * STEP] = a[HEADER_SIZE + STEP : HEADER_SIZE + 2 * STEP]
    plant(bucket, "b.bin", bytes(b))
    assert_refused(settings, f"enc+mem://{bucket}/b.bin", 1, CHUNK, CHUNK + 1)


def test_replaced_object_is_read_fresh_not_from_a_stale_header(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    url = f"enc+mem://{bucket}/a.bin"
    assert storage.get_range(url, 0, 10, settings=settings) == PAYLOAD[:10]  # caches a's header
    store, key = storage.open_store(url, settings)
    store2 = EncryptedStore(MemoryStore(bucket), open_keys(settings.encryption.keys or ""), chunk_size=CHUNK)
    store2.put(key, b"new content entirely")  # replaced behind the cached store's back
    assert store.get_range(key, 0, 11) == b"new content"
    store2.put(key, PAYLOAD)
    assert store.get_range(key, 4000, 4010) == PAYLOAD[4000:4010]  # past the short object's end


def test_rotated_kek_old_objects_readable_and_rewrap(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    url = f"enc+mem://{bucket}/a.bin"
    ring = open_keys(settings.encryption.keys or "")
    assert isinstance(ring, MemoryKeyring)
    assert ring.rotate("d") == 2
    storage.put(f"enc+mem://{bucket}/c.bin", b"written after rotation", settings=settings)
    assert storage.get(url, settings=settings) == PAYLOAD  # old object, KEK version 1
    assert storage.get(f"enc+mem://{bucket}/c.bin", settings=settings) == b"written after rotation"
    before = raw(bucket, "a.bin")
    store, key = storage.open_store(url, settings)
    assert isinstance(store, EncryptedStore)
    store.rewrap(key)
    after = raw(bucket, "a.bin")
    assert after[HEADER_SIZE:] == before[HEADER_SIZE:]  # data not re-encrypted
    assert after[:HEADER_SIZE] != before[:HEADER_SIZE]  # only the wrapped key changed
    ring.retire("d", 1)
    assert storage.get(url, settings=settings) == PAYLOAD  # readable without the retired KEK


def test_header_tampering_is_refused(env: tuple[Settings, str]) -> None:
    settings, bucket = env
    blob = bytearray(raw(bucket, "a.bin"))
    blob[12] ^= 0x01  # chunk size field (part of every chunk's associated data)
    blob[0] = ord("Y")
    plant(bucket, "a.bin", bytes(blob))
    with pytest.raises(IntegrityError, match="bad magic"):
        storage.get(f"enc+mem://{bucket}/a.bin", settings=settings)
    blob[0] = ord("X")
    blob[HEADER_SIZE - 600] = 0  # padding is not read; the object id is
    blob[20] ^= 0x80  # object id
    blob[12] ^= 0x01
    plant(bucket, "a.bin", bytes(blob))
    assert_refused(settings, f"enc+mem://{bucket}/a.bin", 0)
