"""Recovery of a segment store from its WAL, and deletion of the WAL files nothing needs.

:func:`recover` rebuilds the in-memory :class:`~xtremehub.streams.segmentstore.state.StoreState`
from the last checkpoint and the records after it, rolls to a fresh WAL file and deletes the
files no segment refers to any more. :func:`delete_unreferenced` is also how tiering reclaims
WAL files once their bytes are in LTS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from xtremehub.streams.segmentstore.chunksum import ChunkSums
from xtremehub.streams.segmentstore.state import StoreState
from xtremehub.streams.segmentstore.wal import Record, RecordType, WalFiles, decode_append, decode_control

__all__ = ["delete_unreferenced", "recover", "replay"]

log = logging.getLogger(__name__)


def recover(wal: WalFiles, data_dir: Path | str) -> StoreState:
    """The state the WAL in ``wal`` describes (no reader or writer may run yet)."""
    checkpoint, records = wal.recover()
    state = StoreState() if checkpoint is None else StoreState.from_checkpoint(checkpoint)
    for record in records:
        replay(state, record)
    for file_id in state.refs:
        wal.check_complete(file_id)
    wal.roll(state.checkpoint())
    delete_unreferenced(wal, state, threading.RLock())  # no reader or writer runs yet
    log.info(
        "segment store %s: %d segments recovered from %d WAL records (%d bytes untiered)",
        data_dir,
        len(state.segments),
        len(records),
        state.untiered,
    )
    return state


def replay(state: StoreState, record: Record) -> None:
    """Apply one WAL record to ``state``."""
    if record.rtype == RecordType.APPEND:
        rec = decode_append(record.payload)
        state.apply_append(rec.name, rec.offset, rec.events, file_id=record.file_id, pos=record.pos + rec.data_at)
        return
    body = decode_control(record.payload)
    if record.rtype == RecordType.CREATE:
        state.apply_create(body["name"], body["cid"])
    elif record.rtype == RecordType.SEAL:
        state.apply_seal(body["name"])
    elif record.rtype == RecordType.MERGE:
        state.apply_seal(body["source"])
        state.apply_merge(body["target"], body["source"])
    elif record.rtype == RecordType.TRUNCATE:
        state.apply_truncate(body["name"], body["offset"])
    elif record.rtype == RecordType.DELETE:
        state.apply_delete(body["name"])
    elif record.rtype == RecordType.TIERED:
        sums = ChunkSums.from_json(body.get("sums"))  # none in records of older versions
        state.apply_tiered(body["name"], body["cid"], body["offset"], body["length"], body["key"], sums)


def delete_unreferenced(
    wal: WalFiles, state: StoreState, lock: threading.RLock, *, sync_first: Callable[[], None] | None = None
) -> int:
    """Remove WAL files before the current one that hold no untiered bytes; returns how many.

    No roll is needed first: recovery replays the current file's checkpoint and the records
    after it (including the TIERED records that released these files), and reads only the
    files the resulting state refers to. TIERED records are written without an fsync of
    their own (a lost one only means the chunk is written again), so ``sync_first`` (making
    the WAL durable) runs before any file they released is deleted. ``lock`` is the one
    readers hold while they read WAL files.
    """
    with lock:
        current, refs = wal.current, set(state.refs)
        victims = [f for f in wal.file_ids() if f < current and f not in refs]
    if victims and sync_first is not None:
        sync_first()
    with lock:  # readers pread under this lock, only from referenced files
        for file_id in victims:
            wal.forget(file_id)
    for file_id in victims:  # removing a large file is slow: outside the lock
        wal.remove(file_id)
        log.debug("WAL file %d deleted (all its bytes are in LTS)", file_id)
    return len(victims)
