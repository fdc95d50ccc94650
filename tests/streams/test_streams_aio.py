"""The asyncio client on the embedded store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from xtremehub.streams.aio import AsyncStreamManager


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
