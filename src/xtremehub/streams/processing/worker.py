"""A processing worker: one long-running executor task reading the input's reader group.

Each worker is one reader of the job's reader group. It keeps one output transaction per input
segment it read since its last checkpoint marker (so that the driver can commit them in the
order of the inputs, see :func:`~xtremehub.streams.processing._state.commit_order`). At a
marker it flushes them and records their ids under ``rec/<checkpoint>/<reader>`` in the state
table *before* its next ``read_next`` records the checkpoint: once a checkpoint is complete,
the transactions holding the outputs of every event before its cut are recorded. The driver
commits them; the worker never commits.

When the group is reset (a worker failed: the driver moves the group back to the last
committed checkpoint), the worker aborts every transaction not committed yet and joins again.
When told to retire, it leaves the group at its next marker, right after recording it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass

from xtremehub.errors import ReaderGroupReset, StreamError
from xtremehub.streams.client.reader import EventRead, EventStreamReader, ReaderGroup
from xtremehub.streams.client.transactions import Transaction, TransactionalEventStreamWriter
from xtremehub.streams.kvtable import KeyValueTable
from xtremehub.streams.processing._state import TxnRecord, encode_records, key
from xtremehub.streams.processing.config import ProcessFn, ProcessorConfig, Source, iter_outputs, open_manager

__all__ = ["WorkerSpec", "WorkerStats", "run_worker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs; pickled to wherever the executor runs it."""

    source: Source
    scope: str
    group: str
    table: str
    output: str
    name: str
    session: str
    func: ProcessFn
    config: ProcessorConfig


@dataclass(slots=True)
class WorkerStats:
    """What a worker did, returned when it ends."""

    name: str
    events: int = 0
    outputs: int = 0
    checkpoints: int = 0
    resets: int = 0


@dataclass(slots=True)
class _Open:
    """A transaction holding the outputs of one contiguous run of one input segment."""

    txn: Transaction
    segment: str
    start: int
    next_offset: int
    pinged: float


class _Interval:
    """The transactions of one reader between two checkpoint markers."""

    def __init__(self, writer: TransactionalEventStreamWriter, table: KeyValueTable, spec: WorkerSpec) -> None:
        self._writer, self._table, self._spec = writer, table, spec
        self.open: dict[str, _Open] = {}  # the current run of each segment read in this interval
        self.closed: list[_Open] = []  # earlier runs (the segment went to another reader and came back)
        self.recorded: list[Transaction] = []  # recorded at the last marker, committed by the driver

    def _all(self) -> list[_Open]:
        return self.closed + list(self.open.values())

    def _note_open(self) -> None:
        ids = [o.txn.txn_id for o in self._all()] + [t.txn_id for t in self.recorded]
        self._table.put(key("open", self._spec.name), json.dumps(ids).encode())

    def process(self, event: EventRead, stats: WorkerStats) -> None:
        position = event.position
        run = self.open.get(position.segment)
        now = time.monotonic()
        if run is not None and run.next_offset != position.offset:
            # The group gave the segment to another reader and back: that reader's transaction
            # holds the events between, so this run must commit after it, as a transaction of its own.
            self.closed.append(run)
            run = None
        if run is None:
            txn = self._writer.begin_txn(self._spec.config.txn_lease)
            run = self.open[position.segment] = _Open(txn, position.segment, position.offset, position.offset, now)
            self._note_open()
            log.debug("worker %s: transaction %s for %s from %d", self._spec.name, txn.txn_id, run.segment, run.start)
        elif now - run.pinged > self._spec.config.txn_lease / 4:
            run.txn.ping(self._spec.config.txn_lease)
            run.pinged = now
        for payload, routing_key in iter_outputs(self._spec.func(event), event.routing_key):
            run.txn.write_event(payload, routing_key)
            stats.outputs += 1
        run.next_offset = position.next_offset
        stats.events += 1

    def record(self, checkpoint: str) -> None:
        """Flush the open transactions and record them for ``checkpoint``."""
        runs = self._all()
        for run in runs:
            run.txn.flush()
        records = [TxnRecord(run.segment, run.start, run.txn.txn_id) for run in runs]
        self._table.put(key("rec", checkpoint, self._spec.name), encode_records(records))
        log.debug("worker %s: at %s recorded %s", self._spec.name, checkpoint, records)
        self.recorded = [run.txn for run in runs]
        self.open, self.closed = {}, []

    def abort_open(self) -> None:
        """Abort the transactions not recorded at a marker yet."""
        for run in self._all():
            with contextlib.suppress(StreamError):
                run.txn.abort()
        self.open, self.closed = {}, []

    def abort(self) -> None:
        """Abort every transaction not committed (after a reset: their events are read again)."""
        self.abort_open()
        for txn in self.recorded:
            with contextlib.suppress(StreamError):  # committed by the driver already, or expired
                txn.abort()
        self.recorded = []


def run_worker(spec: WorkerSpec) -> WorkerStats:
    """The worker task: read, process, write transactionally, record at checkpoints (see module doc)."""
    stats = WorkerStats(spec.name)
    manager = open_manager(spec.source)
    try:
        table = KeyValueTable(manager, spec.scope, spec.table)
        where = {"pid": os.getpid(), "host": socket.gethostname()}
        table.put(key("worker", spec.name), json.dumps(where).encode())
        writer = manager.create_transaction_writer(spec.scope, spec.output, writer_id=f"{spec.group}.{spec.name}")
        group = manager.get_reader_group(spec.group, spec.scope)
        while True:
            interval = _Interval(writer, table, spec)
            try:
                if _read(group, table, interval, spec, stats):
                    return stats
            except ReaderGroupReset:
                stats.resets += 1
                log.info("worker %s: group %s reset; aborting and joining again", spec.name, spec.group)
            interval.abort()
    finally:
        manager.close()


def _read(group: ReaderGroup, table: KeyValueTable, interval: _Interval, spec: WorkerSpec, stats: WorkerStats) -> bool:
    """Read until retired at a marker (True) or stopped (True); ``ReaderGroupReset`` propagates."""
    reader: EventStreamReader = group.create_reader(spec.name, sync_interval=spec.config.sync_interval)
    retiring, next_look = False, 0.0
    while True:
        if time.monotonic() >= next_look:
            if table.get(key("stop", spec.session)) is not None:
                interval.abort()  # the driver gave up on this session: nothing more is committed
                reader.reader_offline()
                return True
            retiring = table.get(key("retire", spec.name)) is not None
            next_look = time.monotonic() + spec.config.control_interval
        event = reader.read_next(timeout=spec.config.control_interval)
        if event is None:
            continue
        if event.checkpoint_name is not None:
            interval.record(event.checkpoint_name)
            stats.checkpoints += 1
            if retiring:
                reader.reader_offline()  # records the checkpoint at the marker's positions
                return True
            continue
        try:
            interval.process(event, stats)
        except ReaderGroupReset:
            raise
        except BaseException:
            # The driver resets the group to the last committed checkpoint; the open transactions
            # hold only events after it. Recorded ones may belong to a completed checkpoint the
            # driver is committing: leave those alone.
            interval.abort_open()
            raise
