"""``kill -9`` of a process writing through the client API: every acknowledged event survives once."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.testing.streams import read_events

WRITER = textwrap.dedent(
    """
    import sys
    from xtremehub.streams import ScalingPolicy, StreamManager

    manager = StreamManager.embedded(sys.argv[1])
    manager.create_scope("crash")
    manager.create_stream("crash", "s", scaling_policy=ScalingPolicy.fixed(3))
    writer = manager.create_writer("crash", "s", writer_id="stable-writer", max_in_flight=16)
    first = int(sys.argv[2])
    pending = []
    for i in range(first, first + 100_000):
        pending.append((i, writer.write_event(str(i).encode(), routing_key=f"k{i % 5}")))
        while pending and pending[0][1].done():
            number, future = pending.pop(0)
            future.result()
            print(number, flush=True)
    """
)


def _run_and_kill(data: Path, first: int, acks_before_kill: int) -> list[int]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(first)], stdout=subprocess.PIPE, text=True)
    acked: list[int] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while len(acked) < acks_before_kill and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    proc.kill()
    proc.wait(30)
    acked += [int(line) for line in proc.stdout.read().split()]  # printed before the kill landed
    proc.stdout.close()
    assert len(acked) >= acks_before_kill, "the writer process did not get going"
    return acked


@pytest.mark.slow
def test_acknowledged_events_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(4)
    acked: list[int] = []
    first = 0
    for _ in range(3):
        acked += _run_and_kill(data, first, rng.randint(50, 400))
        first = max(acked) + 1_000  # a new numbering range for each life, same writer id
    with StreamManager.embedded(data) as manager:
        assert manager.get_stream("crash", "s").config.scaling == ScalingPolicy.fixed(3)
        tail = manager.get_tail_cut("crash", "s")
        stored = sum(tail.offsets.values())
        group = manager.create_reader_group("check", "crash", ["s"])
        reader = group.create_reader("r", sync_interval=0.05)
        numbers = []
        while (event := reader.read_next(timeout=1.0)) is not None:
            numbers.append(int(event.data))
        reader.reader_offline()
        counts = Counter(numbers)
        assert not [n for n, c in counts.items() if c > 1], "an event is stored twice"
        assert set(acked) <= set(counts), "an acknowledged event was lost"
        assert stored > 0
        writer = manager.create_writer("crash", "s", writer_id="stable-writer")
        assert writer.next_event_number >= len(numbers)  # resumes after every stored number
        writer.close()
        assert len(read_events(manager.create_reader_group("again", "crash", ["s"]), len(numbers))) == len(numbers)
