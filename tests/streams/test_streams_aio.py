"""The asyncio client on the embedded store."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from xtremehub.streams import aio
from xtremehub.streams.aio import AsyncStreamManager
from xtremehub.streams.client.bytestream import ByteStream
from xtremehub.streams.client.manager import StreamManager
from xtremehub.streams.client.reader import EventStreamReader, ReaderGroup
from xtremehub.streams.client.transactions import Transaction, TransactionalEventStreamWriter
from xtremehub.streams.client.writer import EventStreamWriter


def test_async_writers_readers_transactions_and_byte_streams(tmp_path: Path) -> None:
    async def main() -> None:
        async with await AsyncStreamManager.embedded(tmp_path / "data") as manager:
            await manager.create_scope("lab")
            await manager.create_stream("lab", "s")
            writers = [await manager.create_writer("lab", "s", max_in_flight=4) for _ in range(3)]
            await asyncio.gather(
                *(
                    w.write_event(f"{n}-{i}".encode(), routing_key=str(n))
                    for n, w in enumerate(writers)
                    for i in range(5)
                )
            )
            for w in writers:
                await w.close()
            txn = await (await manager.create_transaction_writer("lab", "s")).begin_txn()
            await txn.write_event(b"txn")
            await txn.commit()
            group = await manager.create_reader_group("g", "lab", ["s"])
            reader = await group.create_reader("r", sync_interval=0.05)
            got = []
            while (event := await reader.read_next(timeout=0.5)) is not None:
                got.append(event.data)
            await reader.reader_offline()
            assert sorted(got) == sorted([f"{n}-{i}".encode() for n in range(3) for i in range(5)] + [b"txn"])
            assert len(await group.stream_cuts()) == 1
            bs = await manager.create_byte_stream("lab", "bytes")
            await bs.write(b"hello world")
            await bs.flush()
            bs.seek(6)
            assert await bs.read(5) == b"world"
            assert (await manager.get_stream("lab", "bytes")).config.scaling.min_segments == 1
            await manager.seal_stream("lab", "s")
            await manager.delete_stream("lab", "s")

    asyncio.run(main())


def test_async_checkpoint_while_a_reader_coroutine_reads(tmp_path: Path) -> None:
    async def main() -> None:
        async with await AsyncStreamManager.embedded(tmp_path / "data") as manager:
            await manager.create_scope("lab")
            await manager.create_stream("lab", "s")
            writer = await manager.create_writer("lab", "s")
            for i in range(20):
                await writer.write_event(str(i).encode())
            await writer.close()
            group = await manager.create_reader_group("g", "lab", ["s"])
            reader = await group.create_reader("r", sync_interval=0.02)
            processed: list[int] = []
            saved: dict[str, list[int]] = {}

            async def consume() -> None:
                while (event := await reader.read_next(timeout=0.5)) is not None:
                    if event.is_checkpoint:
                        assert event.checkpoint_name is not None
                        saved[event.checkpoint_name] = list(processed)
                    else:
                        processed.append(int(event.data))

            checkpoint, _ = await asyncio.gather(group.initiate_checkpoint("cp", timeout=20), consume())
            assert checkpoint.completed
            assert processed == list(range(20))
            assert [c.name for c in await group.list_checkpoints()] == ["cp"]
            assert (await group.get_checkpoint("cp")).stream_cuts == checkpoint.stream_cuts
            await reader.reader_offline()
            await group.reset_to_checkpoint(checkpoint)
            again = await group.create_reader("r2", sync_interval=0.02)
            replay = []
            while (event := await again.read_next(timeout=0.3)) is not None:
                replay.append(int(event.data))
            assert sorted(saved["cp"] + replay) == list(range(20))

    asyncio.run(main())


SYNC_CLASSES = [
    StreamManager,
    ReaderGroup,
    EventStreamWriter,
    EventStreamReader,
    TransactionalEventStreamWriter,
    Transaction,
    ByteStream,
]


def _public(cls: type) -> dict[str, object]:
    """Public methods and properties a class defines or inherits (not plain data attributes)."""
    names: dict[str, object] = {}
    for klass in reversed(cls.__mro__[:-1]):  # object's own members are not the client's API
        for name, member in vars(klass).items():
            if name.startswith("_") and name not in ("__enter__", "__exit__"):
                continue
            if isinstance(member, (property, classmethod, staticmethod)) or inspect.isfunction(member):
                names[name] = member
    return names


@pytest.mark.parametrize("sync_cls", SYNC_CLASSES, ids=lambda c: c.__name__)
def test_every_public_sync_method_has_an_async_twin(sync_cls: type) -> None:
    async_cls = aio.MIRRORS[sync_cls]
    missing, not_async, changed = [], [], []
    for name, member in _public(sync_cls).items():
        twin_name = {"__enter__": "__aenter__", "__exit__": "__aexit__"}.get(name, name)
        twin = inspect.getattr_static(async_cls, twin_name, None)
        if twin is None:
            missing.append(name)
            continue
        if isinstance(member, property):
            if not isinstance(twin, property):
                not_async.append(name)
            continue
        if name in async_cls.sync_twins:
            continue
        func = twin.__func__ if isinstance(twin, (classmethod, staticmethod)) else twin
        if not inspect.iscoroutinefunction(func):
            not_async.append(name)
        elif getattr(func, "__wrapped__", None) is not None:  # generated by awaited(): same signature and doc
            sync_func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            if inspect.signature(func) != inspect.signature(sync_func) or func.__doc__ != sync_func.__doc__:
                changed.append(name)
    assert missing == [], f"{sync_cls.__name__}: no async twin in {async_cls.__name__}"
    assert not_async == [], f"{async_cls.__name__}: not awaitable (and not listed in sync_twins)"
    assert changed == [], f"{async_cls.__name__}: signature or docstring differs from {sync_cls.__name__}"


def test_sync_twins_are_public_members_of_the_sync_class() -> None:
    for sync_cls in SYNC_CLASSES:
        assert set(aio.MIRRORS[sync_cls].sync_twins) <= set(_public(sync_cls))


def test_parity_check_catches_a_missing_twin() -> None:
    class Sync:
        def ping(self) -> None:
            """Ping."""

        def pong(self) -> None:
            """Pong."""

    class AsyncSync(aio.AsyncMirror[Sync], mirrors=Sync):
        ping = aio.awaited(Sync.ping)

    try:
        with pytest.raises(AssertionError, match="no async twin"):
            test_every_public_sync_method_has_an_async_twin(Sync)
    finally:
        del aio.MIRRORS[Sync]


def test_async_manager_covers_the_admin_calls(tmp_path: Path) -> None:
    async def main() -> None:
        async with await AsyncStreamManager.embedded(tmp_path / "data") as manager:
            assert await manager.create_scope("lab") is True
            assert await manager.list_scopes() == ["lab"]
            await manager.create_stream("lab", "s")
            assert await manager.list_streams("lab") == ["s"]
            async with await manager.create_writer("lab", "s") as writer:
                await writer.write_event(b"one")
                assert writer.next_event_number == 1
            cut = await manager.get_tail_cut("lab", "s")
            async with await manager.create_writer("lab", "s") as writer:
                await writer.write_event(b"two")
            await manager.truncate_stream("lab", "s", cut)
            assert await manager.get_head_cut("lab", "s") == cut
            group = await manager.create_reader_group("g", "lab", ["s"])
            assert await manager.list_reader_groups("lab") == ["g"]
            again = await manager.get_reader_group("g", "lab")
            async with await again.create_reader("r", sync_interval=0.05) as reader:
                event = await reader.read_next(timeout=5.0)
                assert event is not None
                assert event.data == b"two"
                assert len(reader.segments) == 1
            assert (await group.state()).readers == ()
            assert await group.delete_checkpoint("none") is False
            await group.delete()
            assert await manager.list_reader_groups("lab") == []
            txn_writer = await manager.create_transaction_writer("lab", "s")
            txn = await txn_writer.begin_txn()
            assert (await txn_writer.get_txn(txn.txn_id)).txn_id == txn.txn_id
            await txn.abort()
            assert await txn.state() == "aborted"
            await manager.delete_stream("lab", "s")
            async with await manager.create_byte_stream("lab", "bytes") as bs:
                await bs.write(b"0123456789")
                await bs.flush()
                assert await bs.tail_offset() == 10
                await bs.truncate(4)
                assert await bs.head_offset() == 4
                assert bs.seek(4) == 4
                assert bs.tell() == 4
                assert await bs.read(3) == b"456"
            await manager.delete_stream("lab", "bytes")
            assert await manager.delete_scope("lab") is True

    asyncio.run(main())


def test_a_subclass_of_an_async_class_needs_no_mirrors_argument(tmp_path: Path) -> None:
    class MyManager(AsyncStreamManager):
        async def scopes(self) -> list[str]:
            return await self.list_scopes()

    async def main() -> list[str]:
        async with MyManager(StreamManager.embedded(tmp_path / "data")) as manager:
            await manager.create_scope("lab")
            return await manager.scopes()

    assert asyncio.run(main()) == ["lab"]
    assert aio.MIRRORS[StreamManager] is AsyncStreamManager
