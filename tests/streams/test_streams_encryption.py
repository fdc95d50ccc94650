"""Per-stream encryption: a stream created with ``encryption=<dataset>`` holds ciphertext only.

Real parts: an embedded segment store with LTS on local disk, a file keyring shared with local
worker processes, and a stream server in its own thread for the remote path.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xtremehub import FunctionExecutor
from xtremehub.errors import IntegrityError, KeyReleaseDenied
from xtremehub.security.keyring import FileKeyring
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.sealing import StreamSealer
from xtremehub.streams.history import StreamHistory, StreamSlice

MARK = b"patient-0042 vitals"


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def _drain(manager: StreamManager, group: str, stream: str) -> list[tuple[str | None, bytes]]:
    reader = manager.create_reader_group(group, "icu", [stream]).create_reader("r")
    out = []
    while (event := reader.read_next(timeout=1.0)) is not None:
        out.append((event.routing_key, event.data))
    reader.close()
    return out


@pytest.fixture
def keys_url(tmp_path: Path) -> str:
    FileKeyring(tmp_path / "keyring.json").create("icu")
    return f"file://{tmp_path / 'keyring.json'}"


@pytest.fixture
def manager(tmp_path: Path, keys_url: str) -> Iterator[StreamManager]:
    lts = f"{tmp_path / 'lts'}/"
    with StreamManager.embedded(
        tmp_path / "data", lts, lts_flush_delay=0.0, lts_chunk_size=4 << 10, keys=keys_url
    ) as m:
        m.create_scope("icu")
        yield m


def test_an_encrypted_stream_stores_ciphertext_and_reads_back_plaintext(manager: StreamManager, tmp_path: Path) -> None:
    manager.create_stream("icu", "vitals", scaling_policy=ScalingPolicy.fixed(2), encryption="icu")
    manager.create_stream("icu", "plain")
    sent = [(f"bed-{i % 5}", MARK + b" #%d" % i) for i in range(200)]
    with manager.create_writer("icu", "vitals") as writer, manager.create_writer("icu", "plain") as plain:
        for key, data in sent:
            writer.write_event(data, routing_key=key)
        plain.write_event(b"plain marker", routing_key="x")
    txn = manager.create_transaction_writer("icu", "vitals").begin_txn()
    txn.write_event(MARK + b" in a transaction", "bed-9")
    txn.commit()
    got = _drain(manager, "g", "vitals")
    assert sorted(got) == sorted([*sent, ("bed-9", MARK + b" in a transaction")])
    assert _drain(manager, "p", "plain") == [("x", b"plain marker")]  # per stream: the other stays plain
    manager.seal_stream("icu", "vitals")
    StreamHistory(manager, "icu", "vitals", f"{tmp_path / 'lts'}/", wait=30)  # waits until LTS has it all
    on_disk = _all_bytes(tmp_path / "data") + _all_bytes(tmp_path / "lts")
    assert MARK not in on_disk  # segments, WAL, LTS, controller metadata: no plaintext
    assert b"plain marker" in on_disk
    config = manager.get_stream("icu", "vitals").config
    assert config.encryption is not None
    assert config.encryption.dataset == "icu"
    assert len(config.encryption.wrapped_key) > 32  # wrapped, never the raw key


def _read(piece: StreamSlice) -> list[bytes]:
    return [e.data for e in piece.events()]


def test_history_slices_decrypt_in_the_workers(manager: StreamManager, tmp_path: Path, keys_url: str) -> None:
    manager.create_stream("icu", "video", encryption="icu")
    with manager.create_writer("icu", "video") as writer:
        for i in range(300):
            writer.write_event(json.dumps({"frame": i}).encode() + MARK, routing_key=f"cam-{i % 3}")
    manager.seal_stream("icu", "video")
    history = StreamHistory(manager, "icu", "video", f"{tmp_path / 'lts'}/", wait=30)
    slices = history.partition(bytes_per_slice=4 << 10)
    assert len(slices) > 1
    assert all(s.keys == keys_url for s in slices)
    assert all(s.encryption is not None for s in slices)
    with FunctionExecutor(workers=2, progress=False) as fexec:
        parts = fexec.get_result(fexec.map(_read, slices))
    frames = sorted(json.loads(d.removesuffix(MARK))["frame"] for part in parts for d in part)
    assert frames == list(range(300))


def test_a_reader_without_the_kek_gets_no_plaintext(manager: StreamManager, tmp_path: Path) -> None:
    manager.create_stream("icu", "vitals", encryption="icu")
    with manager.create_writer("icu", "vitals") as writer:
        writer.write_event(MARK, routing_key="bed-1")
    other = FileKeyring(tmp_path / "other.json", create=False)
    outsider = StreamManager(manager.controller, manager.store, keys=other)
    reader = outsider.create_reader_group("outsider", "icu", ["vitals"]).create_reader("r")
    with pytest.raises(KeyReleaseDenied, match="icu"):
        reader.read_next(timeout=2.0)
    # the raw segment bytes it could fetch are ciphertext
    segment = manager.get_stream("icu", "vitals").active_segments[0].name
    raw = manager.store.read(segment, 0, 1 << 20).data
    assert raw
    assert MARK not in raw


def test_tampered_or_moved_events_fail_authentication() -> None:
    sealer = StreamSealer("icu", "vitals", b"k" * 32)
    blob = bytearray(sealer.seal(MARK, "bed-1"))
    assert sealer.open(bytes(blob), "bed-1", "s@0") == MARK
    with pytest.raises(IntegrityError, match="s@0"):
        StreamSealer("icu", "other", b"k" * 32).open(bytes(blob), "bed-1", "s@0")  # copied to another stream
    blob[-1] ^= 1
    with pytest.raises(IntegrityError, match="failed authentication"):
        sealer.open(bytes(blob), "bed-1", "s@0")
    with pytest.raises(IntegrityError, match="not an encrypted event"):
        sealer.open(MARK, "bed-1", "s@0")
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(sealer)


def test_through_a_stream_server(tmp_path: Path, keys_url: str) -> None:
    from xtremehub.streams.server import ServerConfig, serve_background

    with StreamManager.embedded(tmp_path / "server") as embedded:  # the server's side: no keys given
        with (
            serve_background(embedded.store, embedded.controller, ServerConfig(shutdown_grace=5.0)) as server,
            StreamManager(server.url, keys=keys_url) as client,
        ):
            client.create_scope("icu")
            client.create_stream("icu", "vitals", encryption="icu")
            with client.create_writer("icu", "vitals") as writer:
                for i in range(50):
                    writer.write_event(MARK + b" %d" % i, routing_key=f"bed-{i % 4}")
            got = _drain(client, "g", "vitals")
        assert sorted(d for _, d in got) == sorted(MARK + b" %d" % i for i in range(50))
        assert embedded.get_stream("icu", "vitals").config.encryption is not None  # travelled over the wire
    assert MARK not in _all_bytes(tmp_path / "server")


class _FlakyKeys:
    """Refuses the first key release (a key service that is briefly down), then allows."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def wrap(self, dataset: str, data_key: bytes) -> bytes:
        return bytes(self.inner.wrap(dataset, data_key))

    def unwrap(self, dataset: str, wrapped: bytes) -> bytes:
        self.calls += 1
        if self.calls == 1:
            raise KeyReleaseDenied("key service unreachable (simulated outage)")
        return bytes(self.inner.unwrap(dataset, wrapped))


def test_a_failed_key_release_loses_no_event(manager: StreamManager, keys_url: str) -> None:
    from xtremehub.security.keyring import open_keys

    manager.create_stream("icu", "vitals", encryption="icu")
    with manager.create_writer("icu", "vitals") as writer:
        for i in range(5):
            writer.write_event(MARK + b" %d" % i, routing_key="bed-1")
    flaky = _FlakyKeys(open_keys(keys_url))
    reader = (
        StreamManager(manager.controller, manager.store, keys=flaky)
        .create_reader_group("flaky", "icu", ["vitals"])
        .create_reader("r")
    )
    with pytest.raises(KeyReleaseDenied, match="outage"):
        reader.read_next(timeout=2.0)
    got = []
    while (event := reader.read_next(timeout=1.0)) is not None:
        got.append(event.data)
    assert got == [MARK + b" %d" % i for i in range(5)]  # the first event was given again, once


def test_a_pinned_stream_reported_plain_is_refused(manager: StreamManager, keys_url: str) -> None:
    manager.create_stream("icu", "vitals")  # plain: as a downgrading server would report it
    pinned = StreamManager(manager.controller, manager.store, keys=keys_url, require_encryption=["icu/vitals"])
    with pytest.raises(IntegrityError, match="must be encrypted"):
        pinned.create_writer("icu", "vitals")
    with manager.create_writer("icu", "vitals") as writer:
        writer.write_event(b"injected in plaintext", routing_key="bed-1")
    reader = pinned.create_reader_group("pinned", "icu", ["vitals"]).create_reader("r")
    with pytest.raises(IntegrityError, match="must be encrypted"):
        reader.read_next(timeout=2.0)
