"""kill -9 of a process appending continuously: every acknowledged append is present exactly once.

A child process appends framed events (``length | event number | payload``) with a stable
writer id, 32 in flight, and prints each acknowledgement. The parent kills it with SIGKILL at
a random moment, restarts it from a little *before* the last acknowledged event (so stored
events are retried and must be deduplicated), and repeats. Small WAL files and chunks make
rolls, tiering and WAL reclaim happen while the child is killed.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig

FRAME = struct.Struct(">IQ")
CONFIG = {"tiering_interval": 0.02, "lts_flush_delay": 0.0, "lts_chunk_size": 64 * 1024, "wal_file_size": 128 * 1024}

CHILD = """
import collections, json, random, struct, sys
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig

data_dir, start = sys.argv[1], int(sys.argv[2])
store = SegmentStore(SegmentStoreConfig(data_dir=data_dir, **json.loads(sys.argv[3])))
store.create_segment("crash")
print("ready", flush=True)
window = collections.deque()
n = start
while True:
    while len(window) < 32:
        payload = random.Random(n).randbytes(random.Random(-n).randint(10, 3000))
        frame = struct.pack(">IQ", len(payload), n) + payload
        window.append((n, store.append_async("crash", frame, writer_id="stable-writer", event_number=n)))
        n += 1
    number, future = window.popleft()
    result = future.result()
    print(number, result.offset, int(result.duplicate), flush=True)
"""


def _payload(n: int) -> bytes:
    return random.Random(n).randbytes(random.Random(-n).randint(10, 3000))


def _run_until_killed(data_dir: Path, start: int, run_for: float) -> list[tuple[int, int, bool]]:
    """Start the child, read acknowledgements for ``run_for`` seconds after it is ready, SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), str(start), json.dumps(CONFIG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    acks: list[tuple[int, int, bool]] = []
    buffer = b""
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    ready_at: float | None = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if ready_at is not None and time.monotonic() > ready_at + run_for:
                break
            if not selector.select(timeout=0.05):
                if child.poll() is not None:
                    break
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line == b"ready":
                    ready_at = time.monotonic()
                else:
                    number, offset, dup = line.split()
                    acks.append((int(number), int(offset), dup == b"1"))
        child.send_signal(signal.SIGKILL)
        # acknowledgements already in the pipe were printed before the kill: they count too
        rest = child.stdout.read()
        for line in (buffer + rest).split(b"\n")[:-1]:
            number, offset, dup = line.split()
            acks.append((int(number), int(offset), dup == b"1"))
    finally:
        selector.close()
        child.kill()
        child.wait()
        stderr = child.stderr.read() if child.stderr else b""
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")[-3000:]
    assert ready_at is not None, stderr.decode(errors="replace")[-3000:]
    return acks


def _parse(data: bytes) -> list[tuple[int, int]]:
    """(offset, event number) of each frame; asserts every frame's payload is intact."""
    frames, pos = [], 0
    while pos < len(data):
        length, number = FRAME.unpack_from(data, pos)
        payload = data[pos + FRAME.size : pos + FRAME.size + length]
        assert payload == _payload(number), f"event {number} at offset {pos} is damaged"
        frames.append((pos, number))
        pos += FRAME.size + length
    assert pos == len(data), "a partial frame at the end of the segment"
    return frames


@pytest.mark.slow
def test_sigkill_loop_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    acked: dict[int, int] = {}  # event number -> offset (non-duplicate acknowledgements)
    acked_any: set[int] = set()
    start = 0
    for _ in range(5):
        acks = _run_until_killed(tmp_path, start, run_for=rng.uniform(0.2, 1.5))
        assert acks, f"the child acknowledged nothing (seed {seed})"
        for number, offset, duplicate in acks:
            acked_any.add(number)
            if not duplicate:
                assert acked.setdefault(number, offset) == offset, f"event {number} acknowledged at two offsets"
        start = max(0, max(acked_any) + 1 - rng.randint(0, 40))  # retry some stored events
    config = SegmentStoreConfig(data_dir=tmp_path, **CONFIG)  # type: ignore[arg-type]
    with SegmentStore(config) as store:
        info = store.info("crash")
        data = b""
        while len(data) < info.length:  # one read returns cached/WAL bytes or LTS bytes, not both
            data += store.read("crash", len(data), info.length).data
        frames = _parse(data)
        numbers = [n for _, n in frames]
        assert numbers == list(range(len(numbers))), f"events missing or duplicated (seed {seed})"
        assert acked_any <= set(numbers), f"acknowledged events lost (seed {seed})"
        where = {n: off for off, n in frames}
        assert all(where[n] == off for n, off in acked.items()), f"events moved (seed {seed})"
        assert store.writer_event_number("crash", "stable-writer") == numbers[-1]
