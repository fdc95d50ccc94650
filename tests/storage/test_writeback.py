"""Large local writes reach the disk in steps (``storage.writeback``), bytes and durability unchanged."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import pytest

from xtremehub.errors import StorageError
from xtremehub.storage import writeback
from xtremehub.storage._local import LocalStore
from xtremehub.streams.segmentstore.lts import ChunkStore


def test_write_in_steps_writes_every_byte_and_syncs_each_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    real = writeback.write_back

    def spy(fd: int, offset: int, length: int) -> None:
        # the step's bytes are in the file (not in Python's buffer) when its writeback starts
        calls.append((offset, length, os.fstat(fd).st_size))
        real(fd, offset, length)

    monkeypatch.setattr(writeback, "write_back", spy)
    pieces = [os.urandom(n) for n in (3, 10, 1, 0, 7)]
    with open(tmp_path / "f", "wb") as fh:
        assert writeback.write_in_steps(fh, pieces, step=4) == 21
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)
    assert calls == [(0, 4, 4), (4, 4, 8), (8, 4, 12), (12, 4, 16), (16, 4, 20)]  # the last byte: the caller's fsync


def test_local_put_of_a_large_object_in_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[int] = []
    real = writeback.write_back
    monkeypatch.setattr(writeback, "write_back", lambda fd, off, n: (steps.append(n), real(fd, off, n)))
    data = [os.urandom(700_000) for _ in range(5)]  # 3.5 MB in pieces of any size
    store = LocalStore(tmp_path)
    assert store.put("a/chunk", data).size == 3_500_000
    assert store.get("a/chunk") == b"".join(data)
    assert steps == [writeback.WRITEBACK_STEP] * 3
    assert store.put("a/small", b"xyz").size == 3  # under one step: no writeback before the fsync
    assert len(steps) == 3


def test_chunks_go_to_a_local_directory_one_at_a_time(tmp_path: Path) -> None:
    local = ChunkStore(str(tmp_path))
    memory = ChunkStore("mem://xhub-test-writeback/")
    try:
        assert local.upload_concurrency == 1  # its fsyncs share the disk with the WAL
        assert memory.upload_concurrency == 4
    finally:
        local.close()
        memory.close()


def test_a_failed_writeback_fails_the_put_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error of a step is raised (the kernel reports it once: a later fsync would succeed)."""

    def eio(fd: int, offset: int, length: int, flags: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", eio)
    store = LocalStore(tmp_path)
    with pytest.raises(StorageError, match="writeback of bytes 0-1048576 failed"):
        store.put("a/chunk", [os.urandom(700_000) for _ in range(3)])
    assert not store.exists("a/chunk")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []  # no temporary file left


def test_an_unsupported_writeback_turns_into_plain_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def enosys(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append(offset)
        ctypes.set_errno(errno.ENOSYS)
        return -1

    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", enosys)
    store = LocalStore(tmp_path)
    data = os.urandom(3_000_000)
    assert store.put("b", data).size == len(data)
    assert store.get("b") == data
    assert calls == [0]  # tried once, then plain writes
    assert writeback._SYNC_FILE_RANGE is None


def test_puts_and_copies_are_durable_with_their_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is fsynced before its rename and the directory after it (else a crash can lose it)."""
    from xtremehub.storage import _local

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    monkeypatch.setattr(_local.os, "fsync", spy)
    store = LocalStore(tmp_path)
    store.put("a/x", b"data")
    assert synced == ["file", "dir"]
    store.copy("a/x", "b/y")
    assert synced == ["file", "dir", "file", "dir"]
    assert store.get("b/y") == b"data"
