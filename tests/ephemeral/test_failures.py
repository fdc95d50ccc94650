"""Failure behaviour with real processes: a node service killed mid-write, a persistency tier that goes away."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.ephemeral import ServiceProcess, TierConfig, client_for
from xtremehub.ephemeral.client import reset_clients
from xtremehub.errors import ObjectNotFound, StorageError, StorageUnavailable, TierFull
from xtremehub.storage._s3 import S3Store
from xtremehub.testing.seaweedfs import SeaweedFS

MiB = 1 << 20


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    reset_clients()
    yield
    reset_clients()


@pytest.mark.parametrize("local", [False, True], ids=["tcp", "same-node"])
def test_service_killed_mid_write(tmp_path: Path, local: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer gets an error, no reader ever sees the partial object, relocated objects are intact."""
    monkeypatch.setenv("XHUB_EPH_LOCAL", "1" if local else "0")
    settings = Settings(home=tmp_path / "home")
    config = TierConfig(memory_limit="256MiB", persist_url=str(tmp_path / "persist"))
    safe = os.urandom(3 * MiB)
    proc = ServiceProcess.start(config, settings)
    try:
        client = client_for(settings)
        assert client.local is local
        client.put("b", "safe.bin", safe)
        assert client.relocate("b", "safe") == ["xhub-eph://b/safe.bin"]
        client.put("b", "victim.bin", b"old complete version")
        client.relocate("b", "victim")
        started, killed = threading.Event(), threading.Event()
        chunk = os.urandom(256 * 1024)

        def slow_chunks() -> Iterator[bytes]:
            # Writes on until the service is killed, then two chunks more, then ends: the write spans
            # the kill (a same-node writer only finds out at its commit; writing on to 400 chunks took
            # seconds, minutes on a loaded machine, and showed nothing more).
            after_kill = 0
            for i in range(400):
                if i == 2:
                    started.set()
                if killed.wait(0.01):
                    after_kill += 1
                    if after_kill > 2:
                        return
                yield chunk

        errors: list[BaseException] = []

        def writer() -> None:
            try:
                client.put("b", "victim.bin", slow_chunks())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        assert started.wait(10)
        proc.stop(kill=True)  # SIGKILL while the object is half written
        killed.set()
        thread.join(30)
        assert not thread.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], StorageError)  # StorageUnavailable: the connection was lost
    finally:
        proc.stop(kill=True)
    reset_clients()
    with ServiceProcess.start(config, settings):  # a new service on the same persistency tier
        assert storage.get("xhub-eph://b/safe.bin", settings=settings) == safe  # relocated: intact
        assert storage.get("xhub-eph://b/victim.bin", settings=settings) == b"old complete version"  # never partial
        assert not list((tmp_path / "home").glob("**/w-*"))
        stats = client_for(settings).stats()
        assert stats["read_through"] == 2
    shm_left = [p for p in Path("/dev/shm").glob("xhub-eph-*") if (p / ".pid").exists()]
    assert all(int((p / ".pid").read_text()) != proc.process.pid for p in shm_left)  # swept on the restart


def test_service_killed_before_commit_leaves_no_object(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    proc = ServiceProcess.start(TierConfig(memory_limit="64MiB"), settings)
    client = client_for(settings)
    try:
        client.put("b", "k", b"v1")
        proc.stop(kill=True)
        with pytest.raises(StorageUnavailable):
            client.put("b", "k", b"v2 never committed")
        assert not list(client.tmp_dir.glob("w-*"))  # the writer removed its uncommitted file
    finally:
        proc.stop(kill=True)
        shutil.rmtree(client.tmp_dir.parent, ignore_errors=True)  # what the next service would sweep


@pytest.mark.s3
@pytest.mark.slow
def test_persistency_tier_down_while_spilling(tmp_path: Path) -> None:
    """Tier 0 accepts writes up to its thresholds, then TierFull; spilling resumes when S3 returns; nothing lost."""
    server = SeaweedFS.start()  # a private server we stop and start (the session one serves other tests)
    try:
        s3 = server.settings(timeout=2.0, max_retries=0)
        S3Store("eph-persist", s3.s3).create_bucket()
        settings = s3.replace(home=tmp_path / "home")
        config = TierConfig(
            memory_limit=2 * MiB, disk_limit=2 * MiB, disk_dir=tmp_path / "disk",
            persist_url="s3://eph-persist/tier/", admit_timeout=1.0,
        )  # fmt: skip
        with ServiceProcess.start(config, settings, env=server.env()) as _proc:
            client = client_for(settings)
            blobs = {f"o{i}": os.urandom(MiB) for i in range(12)}
            client.put("b", "o0", blobs["o0"])
            client.put("b", "o1", blobs["o1"])
            time.sleep(0.5)
            server.process.kill()  # the persistency tier goes away
            server.process.wait()
            accepted = ["o0", "o1"]
            refused: TierFull | None = None
            for name in list(blobs)[2:]:
                try:
                    client.put("b", name, blobs[name])
                except TierFull as exc:
                    refused = exc
                    break
                accepted.append(name)
            assert refused is not None
            assert len(accepted) >= 4  # memory + disk thresholds: 4 MiB of 1 MiB objects
            assert "s3://eph-persist/tier/" in str(refused)
            assert "retry later" in str(refused)
            assert isinstance(refused, TimeoutError)
            deadline = time.monotonic() + 30
            while client.stats()["persist_available"]:  # the failed upload has been noticed
                assert time.monotonic() < deadline
                time.sleep(0.2)
            stats = client.stats()
            assert not stats["persist_available"]
            assert stats["memory_bytes"] + stats["disk_bytes"] <= 4 * MiB
            for name in accepted:  # everything accepted is readable meanwhile
                assert client.read("b", name, 0, 1 << 30) == blobs[name]

            restarted = SeaweedFS.start(server.data_dir, s3_port=server.s3_port)  # same data, same endpoint
            try:
                rest = [n for n in blobs if n not in accepted]
                for name in rest:  # writes succeed again as spilling frees room
                    for _ in range(20):
                        try:
                            client.put("b", name, blobs[name])
                            break
                        except TierFull:
                            time.sleep(0.5)
                    else:
                        pytest.fail(f"{name} still refused after the persistency tier returned")
                for name, data in blobs.items():  # nothing lost: Tier 0 or read through from S3
                    assert client.read("b", name, 0, 1 << 30) == data
                assert client.stats()["persist_available"]
                assert client.stats()["spills"] >= len(blobs) - 4
                spilled = {i.key for i in storage.list("s3://eph-persist/tier/b/", settings=s3)}
                assert len(spilled) >= len(blobs) - 4
            finally:
                restarted.stop(graceful=False)  # its data is not needed again
    finally:
        server.stop(graceful=False)  # its data is not needed again


def test_missing_object_after_restart_is_object_not_found(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with ServiceProcess.start(TierConfig(memory_limit="16MiB"), settings):
        storage.put("xhub-eph://b/k", b"x", settings=settings)
    reset_clients()
    with ServiceProcess.start(TierConfig(memory_limit="16MiB"), settings), pytest.raises(ObjectNotFound):
        storage.get("xhub-eph://b/k", settings=settings)  # Tier 0 alone does not survive a restart
