"""Event framing: frames cut back out of segment bytes however the reads split them."""

from __future__ import annotations

import random

import pytest

from xtremehub.errors import CorruptData
from xtremehub.streams.client._framing import HEADER, EventDecoder, encode_event


@pytest.mark.parametrize("seed", range(5))
def test_events_survive_any_split_of_the_reads(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        sizes = [0, 1, 5, 100, 3000, 70_000]
        events = [(rng.randbytes(rng.choice(sizes)), rng.choice([None, "k", "sensor-7"])) for _ in range(30)]
        blob = b"".join(encode_event(data, key) for data, key in events)
        decoder, out, i = EventDecoder("s/st/0.#epoch.0", 100), [], 0
        while i < len(blob):
            n = rng.choice([1, 2, 5, 7, 64, 1000, 100_000])
            decoder.feed(blob[i : i + n])
            i += n
            while (event := decoder.next_event()) is not None:
                out.append(event)
        assert [(payload, key) for _, _, key, payload in out] == events
        assert decoder.buffered == 0
        assert decoder.offset == 100 + len(blob)
        # offsets chain: each event starts where the previous one ended
        assert [start for start, *_ in out[1:]] == [end for _, end, *_ in out[:-1]]


def test_a_frame_claiming_more_than_8_mib_is_corrupt_data() -> None:
    decoder = EventDecoder("s/st/0.#epoch.0", 42)
    decoder.feed(HEADER.pack(9 * 1024 * 1024, 0xFFFF) + b"x")
    with pytest.raises(CorruptData, match="over the 8 MiB maximum"):
        decoder.next_event()


def test_reads_fed_before_the_events_are_taken_give_the_same_events() -> None:
    """Several reads fed back to back (whole frames, then split ones, kept as views) cut the same events."""
    rng = random.Random(7)
    events = [(rng.randbytes(rng.choice([0, 3, 900, 40_000])), rng.choice([None, "key"])) for _ in range(40)]
    blob = b"".join(encode_event(data, key) for data, key in events)
    decoder, i = EventDecoder("s/st/0.#epoch.0", 0), 0
    while i < len(blob):
        n = rng.choice([1, 6, 50, 5000, 60_000])
        decoder.feed(blob[i : i + n])
        i += n
    assert decoder.buffered == len(blob)
    out = []
    while (event := decoder.next_event()) is not None:
        out.append(event)
    assert [(payload, key) for _, _, key, payload in out] == events
    assert all(type(payload) is bytes for *_, payload in out)
    assert decoder.buffered == 0
    assert decoder.offset == len(blob)
