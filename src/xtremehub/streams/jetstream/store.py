"""The segment store contract on NATS JetStream: each segment is one subject of one JetStream stream.

Layout (``ns`` is the URL's namespace): one JetStream stream ``<NS>_SEGMENTS`` with subjects
``<ns>.seg.<hex of the segment name>``, replicated ``replicas`` times (Raft). A segment is the
sequence of messages on its subject; every message says what it is in an ``Xh-Op`` header:

- ``c`` create: the segment's first message (published expecting no message on the subject);
- ``d`` data: the bytes of one or more appends (a group commit) starting at byte offset
  ``Xh-Off``; ``Xh-W`` holds, per writer id, its last event number and that event's offset,
  so exactly-once state is stored atomically with the data and survives any restart;
- ``m`` merge: a whole transaction segment's bytes (``Xh-Src`` names it), one atomic message;
- ``s`` seal; ``t`` truncate: the new start offset plus the writer and merge state of the
  purged messages (the messages wholly below the new start are then purged from the subject).

Every message is published with ``Nats-Expected-Last-Subject-Sequence`` (optimistic
concurrency per subject): the offsets, seal and writer checks of a client are only applied if
no other client wrote to the segment since the state it computed them from; otherwise it
catches up and recomputes. ``Nats-Msg-Id`` makes a publish retried after a lost ack (node
failure, leader election) land once. Byte offsets are mapped to messages by an index each client
builds from the subject (``next_by_subj`` look-ups from the last sequence it knows).

Example (needs a running ``nats-server -js``)::

    store = JetStreamSegmentStore.open("nats://127.0.0.1:4222")
    store.create_segment("s")
    store.append("s", b"hello")
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from xtremehub.errors import (
    ConditionalCheckFailed,
    EventTooLarge,
    InvalidOffset,
    NotSupported,
    SegmentNotFound,
    SegmentSealed,
    SegmentTruncated,
    StoreClosed,
)
from xtremehub.streams.controller.model import MAX_EVENT_SIZE
from xtremehub.streams.jetstream.connection import BACKEND, REQUEST_TIMEOUT, JetStreamConnection
from xtremehub.streams.segmentstore.contract import (
    AppendResult,
    ReadResult,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
)

__all__ = ["JetStreamSegmentStore"]

log = logging.getLogger(__name__)

#: Appends packed into one message (one publish, one Raft commit) up to this many bytes.
BATCH_BYTES = 1 << 20
#: Message bodies kept in memory for readers of this process.
BODY_CACHE_BYTES = 64 << 20
#: Tail reads poll the subject this often while waiting for data.
TAIL_POLL = 0.01
_WRONG_LAST_SEQUENCE = 10071


@dataclass
class _Segment:
    """What one client knows of a segment: a fold over its subject's messages up to ``last_seq``."""

    last_seq: int = 0
    exists: bool = False
    start: int = 0
    length: int = 0
    sealed: bool = False
    #: writer id -> (last event number, offset of that event)
    writers: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: source segment -> offset its bytes start at (merges done)
    merged: dict[str, int] = field(default_factory=dict)
    #: (offset, length, sequence) of the data and merge messages, by offset
    index: list[tuple[int, int, int]] = field(default_factory=list)
    #: False until the fold has a base offset: a create, a truncation, or the first message kept
    #: by a truncation (which may start past 0)
    based: bool = False
    #: Nats-Msg-Id -> sequence of recent messages that are part of the segment (to recognise
    #: a publish whose ack was lost, or that a read-back must confirm)
    ids: dict[str, int] = field(default_factory=dict)

    def apply(self, seq: int, headers: dict[str, str], data: bytes) -> None:
        """Fold one message in. A data or merge message whose offset claim is not the current
        length (or that follows a seal) lost a race the server should have refused: it is not
        part of the segment, for every client alike (the same rule on the same message order).
        """
        op = headers.get("Xh-Op", "")
        if op == "c":
            self.__init__()  # type: ignore[misc]  # a create starts a new incarnation (after a delete)
            self.based = True
        self.exists = True
        self.last_seq = seq
        if op in ("d", "m"):
            offset = int(headers["Xh-Off"])
            if self.based and (offset != self.length or self.sealed):
                log.debug("message %d claims offset %d at length %d: not part of the segment", seq, offset, self.length)
                return
            self.based = True
            self.index.append((offset, len(data), seq))
            self.length = offset + len(data)
            for writer, (number, at) in json.loads(headers.get("Xh-W", "{}")).items():
                self.writers[writer] = (int(number), int(at))
            if op == "m":
                self.merged[headers["Xh-Src"]] = offset
        elif op == "s":
            self.sealed = True
        elif op == "t":
            state = json.loads(data)
            self.based = True
            self.start = max(self.start, int(headers["Xh-Start"]))
            self.length = max(self.length, int(state["length"]))
            self.sealed = self.sealed or bool(state["sealed"])
            for writer, (number, at) in state["writers"].items():
                if number > self.writers.get(writer, (-1, 0))[0]:
                    self.writers[writer] = (int(number), int(at))
            self.merged.update(state["merged"])
            self.index = [e for e in self.index if e[0] + e[1] > self.start]
        if "Nats-Msg-Id" in headers:
            if len(self.ids) > 4096:
                self.ids.clear()
            self.ids[headers["Nats-Msg-Id"]] = seq


@dataclass
class _Append:
    data: bytes
    writer: str | None
    number: int | None
    expected: int | None
    future: Future[AppendResult]


def _resolve(outcomes: Sequence[tuple[_Append, AppendResult | Exception]]) -> None:
    for op, outcome in outcomes:
        if op.future.done():
            continue
        if isinstance(outcome, Exception):
            op.future.set_exception(outcome)
        else:
            op.future.set_result(outcome)


class JetStreamSegmentStore(SegmentStoreContract):
    """:class:`SegmentStoreContract` over a JetStream cluster (see the module docstring for the mapping).

    All JetStream calls run on the connection's event loop thread; the state of each segment is
    touched only there, so no locks are needed beyond one asyncio lock per segment that orders
    appends, seals, merges, truncations and deletes.
    """

    def __init__(self, connection: JetStreamConnection, *, owns_connection: bool = True) -> None:
        self._conn = connection.acquire() if owns_connection else connection
        self._owns = owns_connection
        ns = connection.settings.namespace
        self._prefix = f"{ns}.seg."
        self.stream_name = f"{ns.upper()}_SEGMENTS"
        self._token = uuid.uuid4().hex[:12]
        self._published = 0
        self._segments: dict[str, _Segment] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._queues: dict[str, deque[_Append]] = {}
        self._flushing: set[str] = set()
        self._tasks: dict[str, asyncio.Future[None]] = {}
        self._resolver = ThreadPoolExecutor(1, thread_name_prefix="xhub-nats-acks")
        self._bodies: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._body_bytes = 0
        self._closed = False
        self.max_append = min(int(connection.nc.max_payload) - 16384, MAX_EVENT_SIZE + 65536)
        self._conn.call(
            lambda: connection.ensure_stream(
                self.stream_name, [f"{self._prefix}>"], allow_direct=True, duplicate_window=120.0
            ),
            "create the segments stream",
        )

    @classmethod
    def open(cls, url: str) -> JetStreamSegmentStore:
        """A store on its own connection to the cluster a ``nats://`` URL names."""
        connection = JetStreamConnection.open(url)
        return cls(connection)

    # -- naming and low-level access ------------------------------------------------------
    def _subject(self, name: str) -> str:
        return self._prefix + name.encode().hex()

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    async def _get(self, *, seq: int | None = None, subject: str | None = None, after: int | None = None) -> Any:
        """A raw message (None when there is none): by sequence, last on a subject, or next after ``after``."""
        import nats.js.errors

        js = self._conn.js
        try:
            if after is not None:
                return await js.get_msg(self.stream_name, seq=after + 1, subject=subject, next=True)
            if seq is not None:
                try:
                    return await js.get_msg(self.stream_name, seq=seq, direct=True)
                except nats.js.errors.NotFoundError:
                    pass  # a replica behind the leader: ask the leader
                return await js.get_msg(self.stream_name, seq=seq)
            return await js.get_msg(self.stream_name, subject=subject)
        except nats.js.errors.NotFoundError:
            return None

    async def _refresh(self, name: str) -> _Segment:
        """Bring this client's view of ``name`` up to the subject's last message."""
        subject = self._subject(name)
        last = await self._conn.retry(lambda: self._get(subject=subject), f"segment {name!r}")
        state = self._segments.get(name)
        if last is None:
            state = self._segments[name] = _Segment()
            return state
        if state is None or last.seq < state.last_seq or not state.exists:
            state = self._segments[name] = _Segment()
        while state.last_seq < last.seq:
            msg = await self._conn.retry(
                lambda after=state.last_seq: self._get(subject=subject, after=after),  # type: ignore[misc]
                f"segment {name!r}",
            )
            if msg is None:
                break
            if msg.seq <= state.last_seq:
                continue  # another coroutine caught up past it meanwhile: fold each message once
            data = msg.data or b""
            state.apply(msg.seq, dict(msg.headers or {}), data)
            self._remember(name, msg.seq, data)
        return state

    async def _state(self, name: str) -> _Segment:
        state = self._segments.get(name)
        return state if state is not None and state.exists else await self._refresh(name)

    def _remember(self, name: str, seq: int, data: bytes) -> None:
        if not data or len(data) > BODY_CACHE_BYTES // 4:
            return
        self._bodies[(name, seq)] = data
        self._body_bytes += len(data)
        while self._body_bytes > BODY_CACHE_BYTES:
            _, old = self._bodies.popitem(last=False)
            self._body_bytes -= len(old)

    async def _publish(self, name: str, state: _Segment, headers: dict[str, str], data: bytes) -> int | None:
        """Publish on ``name``'s subject after ``state.last_seq``; the new sequence, or None if someone wrote first."""
        import nats.js.errors

        self._published += 1
        msg_id = f"{self._token}:{self._published}"
        headers = {**headers, "Nats-Expected-Last-Subject-Sequence": str(state.last_seq), "Nats-Msg-Id": msg_id}
        subject = self._subject(name)
        try:
            ack = await self._conn.retry(
                lambda: self._conn.js.publish(subject, data, headers=headers, timeout=REQUEST_TIMEOUT),
                f"append to {name!r}",
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                # someone wrote first, or an earlier attempt of this very publish was stored and its ack lost
                return (await self._refresh(name)).ids.get(msg_id)
            raise
        expected = state.last_seq
        if ack.duplicate:  # an earlier attempt was stored: whether it counts, the fold says
            return (await self._refresh(name)).ids.get(msg_id)
        if self._conn.settings.replicas > 1:
            # nats-server 2.9's replicated streams can accept two publishes expecting the same last
            # subject sequence; read back which one came first and let the fold decide.
            first = await self._conn.retry(lambda: self._get(subject=subject, after=expected), f"append to {name!r}")
            if first is None or int(first.seq) != int(ack.seq):
                log.debug("%s: publish %d raced another client; re-reading the segment", name, ack.seq)
                return (await self._refresh(name)).ids.get(msg_id)
        if self._segments.get(name) is not state or state.last_seq != expected:
            return (await self._refresh(name)).ids.get(msg_id)
        state.apply(int(ack.seq), headers, data)
        self._remember(name, int(ack.seq), data)
        return int(ack.seq)

    def _call(self, make: Any, what: str) -> Any:
        if self._closed:
            raise StoreClosed(f"{BACKEND}: the segment store is closed")
        return self._conn.loop.run(make())

    # -- segments -------------------------------------------------------------------------
    def create_segment(self, name: str) -> bool:
        async def create() -> bool:
            async with self._lock(name):
                while True:
                    state = await self._refresh(name)
                    if state.exists:
                        return False
                    if await self._publish(name, state, {"Xh-Op": "c"}, b"") is not None:
                        return True

        return bool(self._call(create, f"create {name!r}"))

    def append(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
    ) -> AppendResult:
        return self.append_async(
            segment,
            data,
            writer_id=writer_id,
            event_number=event_number,
            expected_offset=expected_offset,
            timeout=timeout,
        ).result()

    def append_async(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
        previous_event_number: int | None = None,
    ) -> Future[AppendResult]:
        # ``previous_event_number`` is not checked, as for batches: this backend has no gap check.
        if self._closed:
            raise StoreClosed(f"{BACKEND}: the segment store is closed")
        if (writer_id is None) != (event_number is None):
            raise InvalidOffset(f"segment {segment!r}: writer_id and event_number must be given together")
        if len(data) > self.max_append:
            raise EventTooLarge(
                f"segment {segment!r}: append of {len(data)} bytes exceeds the {BACKEND}'s maximum of "
                f"{self.max_append} (the server's max_payload)"
            )
        future: Future[AppendResult] = Future()
        op = _Append(bytes(data), writer_id, event_number, expected_offset, future)
        self._conn.loop.loop.call_soon_threadsafe(self._enqueue, segment, op)
        return future

    def _enqueue(self, segment: str, op: _Append) -> None:
        self._queues.setdefault(segment, deque()).append(op)
        if segment not in self._flushing:
            self._flushing.add(segment)
            self._tasks[segment] = asyncio.ensure_future(self._flush(segment))

    async def _flush(self, segment: str) -> None:
        queue = self._queues[segment]
        try:
            while queue:
                async with self._lock(segment):
                    await self._commit_batch(segment, queue)
        except Exception as exc:  # fail everything still queued rather than leave callers waiting
            failed = [(op, exc) for op in queue]
            queue.clear()
            self._resolver.submit(_resolve, failed)
        finally:
            self._flushing.discard(segment)
            self._tasks.pop(segment, None)

    async def _commit_batch(self, segment: str, queue: deque[_Append]) -> None:
        """Pack the head of ``queue`` into one message and publish it; outcomes resolve once it is stored."""
        state = await self._state(segment)
        refreshed = False
        while True:
            ops, outcomes, body, writers = self._pack(segment, state, queue)
            if not refreshed and any(not isinstance(o, AppendResult) or o.duplicate for o in outcomes):
                state, refreshed = await self._refresh(segment), True  # refusals are decided on fresh state only
                continue
            if body or writers:
                headers = {"Xh-Op": "d", "Xh-Off": str(state.length)}
                if writers:
                    headers["Xh-W"] = json.dumps(writers, separators=(",", ":"))
                if await self._publish(segment, state, headers, body) is None:
                    state, refreshed = await self._refresh(segment), True
                    continue
            for _ in ops:
                queue.popleft()
            # resolved off the loop thread, in order: a caller's done-callback may call the store again
            self._resolver.submit(_resolve, list(zip(ops, outcomes, strict=True)))
            return

    def _pack(
        self, segment: str, state: _Segment, queue: deque[_Append]
    ) -> tuple[list[_Append], list[AppendResult | Exception], bytes, dict[str, tuple[int, int]]]:
        ops: list[_Append] = []
        outcomes: list[AppendResult | Exception] = []
        body = bytearray()
        writers: dict[str, tuple[int, int]] = {}
        for op in queue:
            if body and len(body) + len(op.data) > BATCH_BYTES:
                break
            ops.append(op)
            length = state.length + len(body)
            if not state.exists:
                outcomes.append(SegmentNotFound(f"segment {segment!r} does not exist"))
            elif (
                op.writer is not None
                and op.number is not None
                and (last := writers.get(op.writer, state.writers.get(op.writer))) is not None
                and op.number <= last[0]
            ):
                outcomes.append(AppendResult(segment, last[1], len(op.data), duplicate=True))
            elif state.sealed:
                outcomes.append(SegmentSealed(f"segment {segment!r} is sealed"))
            elif op.expected is not None and op.expected != length:
                outcomes.append(
                    ConditionalCheckFailed(f"segment {segment!r}: expected offset {op.expected}, length is {length}")
                )
            else:
                outcomes.append(AppendResult(segment, length, len(op.data)))
                body += op.data
                if op.writer is not None and op.number is not None:
                    writers[op.writer] = (op.number, length)
        return ops, outcomes, bytes(body), writers

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> ReadResult:
        return self._call(lambda: self._read(segment, offset, max_length, wait), f"read {segment!r}")  # type: ignore[no-any-return]

    async def _read(self, segment: str, offset: int, max_length: int, wait: float) -> ReadResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        state = self._segments.get(segment)
        if state is None or not state.exists or offset >= state.length or offset < state.start:
            state = await self._refresh(segment)
        while True:
            self._check_range(segment, state, offset)
            if offset < state.length or state.sealed or loop.time() >= deadline:
                break
            await asyncio.sleep(TAIL_POLL)
            state = await self._refresh(segment)
        out = bytearray()
        i = bisect.bisect_right(state.index, (offset, 1 << 62, 0)) - 1
        while 0 <= i < len(state.index) and len(out) < max_length:
            at, _, seq = state.index[i]
            body = self._bodies.get((segment, seq))
            if body is None:
                msg = await self._conn.retry(lambda s=seq: self._get(seq=s), f"read {segment!r}")  # type: ignore[misc]
                if msg is None:  # purged under us: truncated or deleted since
                    state = await self._refresh(segment)
                    self._check_range(segment, state, offset + len(out))
                    break
                body = msg.data or b""
                self._remember(segment, seq, body)
            position = offset + len(out)
            out += body[position - at : position - at + max_length - len(out)]
            i += 1
        end = state.sealed and offset + len(out) == state.length
        return ReadResult(segment, offset, bytes(out), end_of_segment=end)

    @staticmethod
    def _check_range(segment: str, state: _Segment, offset: int) -> None:
        if not state.exists:
            raise SegmentNotFound(f"segment {segment!r} does not exist")
        if offset < state.start:
            raise SegmentTruncated(f"segment {segment!r}: offset {offset} is below the start {state.start}")
        if offset > state.length:
            raise InvalidOffset(f"segment {segment!r}: offset {offset} is past the length {state.length}")

    def info(self, segment: str) -> SegmentInfo:
        async def info() -> SegmentInfo:
            state = await self._refresh(segment)
            if not state.exists:
                raise SegmentNotFound(f"segment {segment!r} does not exist")
            return SegmentInfo(segment, state.start, state.length, state.sealed, tiered_length=state.length)

        return self._call(info, f"info {segment!r}")  # type: ignore[no-any-return]

    def writer_event_number(self, segment: str, writer_id: str) -> int | None:
        async def number() -> int | None:
            state = await self._refresh(segment)
            if not state.exists:
                raise SegmentNotFound(f"segment {segment!r} does not exist")
            last = state.writers.get(writer_id)
            return None if last is None else last[0]

        return self._call(number, f"writer of {segment!r}")  # type: ignore[no-any-return]

    def seal(self, segment: str) -> int:
        async def seal() -> int:
            async with self._lock(segment):
                return await self._seal(segment)

        return int(self._call(seal, f"seal {segment!r}"))

    async def _seal(self, segment: str) -> int:
        while True:
            state = await self._refresh(segment)
            if not state.exists:
                raise SegmentNotFound(f"segment {segment!r} does not exist")
            if state.sealed or await self._publish(segment, state, {"Xh-Op": "s"}, b"") is not None:
                return self._segments[segment].length

    def merge(self, target: str, source: str) -> int:
        async def merge() -> int:
            first, second = sorted((target, source))
            async with self._lock(first), self._lock(second):
                return await self._merge(target, source)

        return int(self._call(merge, f"merge {source!r} into {target!r}"))

    async def _merge(self, target: str, source: str) -> int:
        while True:
            into = await self._refresh(target)
            if source in into.merged:
                return into.merged[source]
            if not into.exists:
                raise SegmentNotFound(f"merge target {target!r} does not exist")
            src = await self._refresh(source)
            if not src.exists:
                raise SegmentNotFound(f"merge source {source!r} does not exist")
            if into.sealed:
                raise SegmentSealed(f"merge target {target!r} is sealed")
            if src.start > 0:
                raise InvalidOffset(f"merge source {source!r} is truncated (starts at {src.start})")
            if src.length > self.max_append:
                raise NotSupported(
                    f"{BACKEND}: merging {src.length} bytes of {source!r} into {target!r}: a transaction is "
                    f"committed as one message, at most {self.max_append} bytes per segment"
                )
            length = (await self._seal(source)) if not src.sealed else src.length
            data = (await self._read(source, 0, length, 0.0)).data if length else b""
            headers = {"Xh-Op": "m", "Xh-Off": str(into.length), "Xh-Src": source}
            if await self._publish(target, into, headers, data) is None:
                continue
            offset = self._segments[target].merged[source]
            await self._purge(source)
            return offset

    async def _purge(self, segment: str, below: int | None = None) -> None:
        subject = self._subject(segment)
        await self._conn.retry(
            lambda: self._conn.js.purge_stream(self.stream_name, subject=subject, seq=below), f"purge {segment!r}"
        )
        if below is None:
            self._segments.pop(segment, None)
        for key in [k for k in self._bodies if k[0] == segment and (below is None or k[1] < below)]:
            self._body_bytes -= len(self._bodies.pop(key))

    def truncate(self, segment: str, offset: int) -> None:
        async def truncate() -> None:
            async with self._lock(segment):
                while True:
                    state = await self._refresh(segment)
                    self._check_range(segment, state, max(offset, state.start))
                    if offset <= state.start:
                        return
                    marker = {
                        "length": state.length,
                        "sealed": state.sealed,
                        "writers": state.writers,
                        "merged": state.merged,
                    }
                    body = json.dumps(marker).encode()
                    seq = await self._publish(segment, state, {"Xh-Op": "t", "Xh-Start": str(offset)}, body)
                    if seq is None:
                        continue
                    kept = [e[2] for e in state.index if e[0] + e[1] > offset]
                    await self._purge(segment, min(kept) if kept else seq)
                    return

        self._call(truncate, f"truncate {segment!r}")

    def delete(self, segment: str) -> None:
        async def delete() -> None:
            async with self._lock(segment):
                if not (await self._refresh(segment)).exists:
                    raise SegmentNotFound(f"segment {segment!r} does not exist")
                await self._purge(segment)

        self._call(delete, f"delete {segment!r}")

    def list_segments(self, prefix: str = "") -> list[str]:
        async def names() -> list[str]:
            info = await self._conn.retry(
                lambda: self._conn.js.stream_info(self.stream_name, subjects_filter=f"{self._prefix}>"),
                "list segments",
            )
            subjects = info.state.subjects or {}
            decoded = (bytes.fromhex(s[len(self._prefix) :]).decode() for s, n in subjects.items() if n)
            return sorted(n for n in decoded if n.startswith(prefix))

        return self._call(names, "list segments")  # type: ignore[no-any-return]

    def stats(self) -> StoreStats:
        connected = bool(self._conn.nc.is_connected)
        return StoreStats(0, 0, 0, 0, lts_available=connected, throttled=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def drain() -> None:
            while self._flushing:
                await asyncio.sleep(0.01)

        try:
            self._conn.loop.run(drain(), timeout=self._conn.settings.timeout)
        except Exception:
            log.warning("%s: closing with appends still unacknowledged", BACKEND, exc_info=True)
        self._resolver.shutdown(wait=True)
        if self._owns:
            self._conn.release()
