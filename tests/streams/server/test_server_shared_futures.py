"""The futures of a remote store's ``append_runs`` share one condition and still answer each batch."""

from __future__ import annotations

from concurrent.futures import wait

from server_test_store import DictSegmentStore

from xtremehub.streams.remote.store import RemoteSegmentStore
from xtremehub.streams.segmentstore.contract import SegmentBatch
from xtremehub.streams.server import StreamServer


def test_append_runs_futures_share_the_store_condition(dict_server: StreamServer, dict_store: DictSegmentStore) -> None:
    client = RemoteSegmentStore(dict_server.url)
    try:
        for name in ("a", "b"):
            client.create_segment(name)
        lone = client.append_runs([SegmentBatch("a", [b"x"], 0)], writer_id="w")  # a plain APPEND
        single = client.append_runs([SegmentBatch("a", [b"yy", b"z"], 1)], writer_id="w")  # one APPEND_BATCH part
        split = client.append_runs(  # one frame, answered per batch
            [SegmentBatch("a", [b"1234"], 3), SegmentBatch("b", [b"p", b"qq"], 4)], writer_id="w"
        )
        futures = lone + single + split
        _done, not_done = wait(futures, timeout=10)
        assert not not_done
        assert {id(f._condition) for f in futures} == {id(client._runs)}, "a request made its own condition"
        runs = [f.result() for f in futures]
        assert [(r.segment, list(r.offsets), list(r.lengths), r.ok) for r in runs] == [
            ("a", [0], [1], True),
            ("a", [1, 3], [2, 1], True),
            ("a", [4], [4], True),
            ("b", [0, 1], [1, 2], True),
        ]
        assert client.read("a", 0, 100).data == b"xyyz1234"
        assert client.read("b", 0, 100).data == b"pqq"
    finally:
        client.close()
