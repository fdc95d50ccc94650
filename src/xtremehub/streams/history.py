"""Streams as data: the history of a stream between two cuts, cut into slices that batch jobs read.

:class:`StreamHistory` walks the stream's segments from a start cut to an end cut (following
successors across scaling), finds each segment's chunks in long-term storage (LTS), and cuts
the bytes between the cuts into :class:`StreamSlice` s at chunk boundaries. A slice is small
and picklable; on any worker of any backend it reads its chunk ranges straight from LTS (no
stream server involved) and yields the events in them, exactly once across slices and in
per-key order within a slice (a slice is one run of one segment).

Why chunk boundaries are event boundaries: writers append whole framed events, tiering moves
whole appends into a chunk (it never splits one), and cuts and truncation points are event
boundaries. A slice checks it anyway: its events must end exactly at its end, otherwise
:class:`~xtremehub.errors.CorruptData` names the segment and offset. Every chunk range is
verified against the chunk's CRC32C checksums listed in the segment's LTS metadata (see
:mod:`~xtremehub.streams.segmentstore.chunksum`): a chunk object changed, cut short or replaced
raises :class:`~xtremehub.errors.ChecksumMismatch`, a deleted one
:class:`~xtremehub.errors.ObjectNotFound`, both naming the segment, the object and the offset.
Chunks written before checksums existed are read unverified.

Arrow views (:meth:`StreamSlice.to_arrow`, :meth:`StreamHistory.to_arrow`) give one row per
event (routing key, segment, offset, payload, plus the columns a user decoder returns), so
DuckDB or pandas can query a stream's history.

Example:
    >>> import tempfile
    >>> from xtremehub.streams import StreamManager
    >>> root = tempfile.mkdtemp()
    >>> with StreamManager.embedded(root, lts=f"{root}/lts/", lts_flush_delay=0.0) as manager:
    ...     manager.create_scope("lab")
    ...     manager.create_stream("lab", "sensors")
    ...     with manager.create_writer("lab", "sensors") as writer:
    ...         for i in range(5):
    ...             _ = writer.write_event(f"reading-{i}".encode(), routing_key="s1")
    ...     manager.seal_stream("lab", "sensors")
    ...     history = StreamHistory(manager, "lab", "sensors", f"{root}/lts/", wait=30)
    ...     [e.data for s in history.partition() for e in s.events()]
    True
    True
    [b'reading-0', b'reading-1', b'reading-2', b'reading-3', b'reading-4']
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from xtremehub.config import Settings
from xtremehub.connectors.base import DataSlice
from xtremehub.errors import ChecksumMismatch, CorruptData, HistoryNotTiered, InvalidStreamArgument, ObjectNotFound
from xtremehub.storage.access import StoreAccess
from xtremehub.streams.client._framing import EventDecoder
from xtremehub.streams.controller.model import StreamCut, StreamEncryption
from xtremehub.streams.segmentstore.chunksum import ChunkSums, read_verified

if TYPE_CHECKING:
    import pyarrow as pa

    from xtremehub.streams.client.manager import StreamManager

__all__ = ["HistoryEvent", "StreamHistory", "StreamSlice"]

#: Decodes an event's payload into extra Arrow columns (``{column: value}``).
PayloadDecoder = Callable[[bytes], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One event read from a stream's history."""

    routing_key: str | None
    segment: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class StreamSlice(DataSlice):
    """Events of one segment between two offsets, read from LTS chunk ranges on any worker.

    Attributes:
        lts_url: the LTS prefix the chunks are under.
        segment: the segment's name (``scope/stream/<number>.#epoch.<epoch>``).
        start, end: segment offsets; the slice holds the events starting in ``[start, end)``.
        pieces: ``(chunk key, start in chunk, end in chunk)`` covering ``[start, end)``.
        access: how to reach LTS (settings without credentials once pickled).
        encryption: the stream's wrapped data key when it is encrypted (events are decrypted in
            the worker, after the KEK is released to it through ``keys``).
        keys: a key-source URL (no secret in it) for ``encryption``.
        sums: the checksums of each piece's chunk (None: written before checksums, unverified);
            empty: none known.
    """

    lts_url: str
    segment: str
    start: int
    end: int
    pieces: tuple[tuple[str, int, int], ...]
    access: StoreAccess
    encryption: StreamEncryption | None = None
    keys: str | None = None
    sums: tuple[ChunkSums | None, ...] = ()

    @property
    def nbytes(self) -> int:
        """Bytes the slice reads."""
        return self.end - self.start

    def iter_chunks(self) -> Iterator[bytes]:
        store, _ = self.access.open(self.lts_url)
        position = self.start
        for i, (key, lo, hi) in enumerate(self.pieces):
            sums = self.sums[i] if i < len(self.sums) else None
            where = f"segment {self.segment!r} offset {position}"
            try:
                data = store.get_range(key, lo, hi) if sums is None else read_verified(store, key, lo, hi, sums)
            except ObjectNotFound as exc:
                raise ObjectNotFound(exc.url, f"LTS chunk of {where} is missing ({exc.detail})") from exc
            except ChecksumMismatch as exc:
                at = position + exc.offset - lo
                raise ChecksumMismatch(
                    f"segment {self.segment!r} offset {at}: {exc}",
                    url=exc.url,
                    offset=exc.offset,
                    segment=self.segment,
                    segment_offset=at,
                ) from exc
            if len(data) != hi - lo:
                raise CorruptData(
                    self.segment, position, f"LTS chunk {key} holds {len(data)} of bytes {lo}-{hi}", "segment"
                )
            position += hi - lo
            yield data

    def events(self) -> Iterator[HistoryEvent]:
        """The slice's events in order (constant memory: one chunk range at a time)."""
        decoder = EventDecoder(self.segment, self.start)
        sealer = None
        if self.encryption is not None:
            from xtremehub.streams.client.sealing import StreamSealer, resolve_keys

            scope, stream, _ = self.segment.split("/", 2)
            sealer = StreamSealer.unwrap(scope, stream, self.encryption, resolve_keys(self.keys))
        for chunk in self.iter_chunks():
            decoder.feed(chunk)
            while (event := decoder.next_event()) is not None:
                offset, _, key, payload = event
                if sealer is not None:
                    payload = sealer.open(payload, key, f"{self.segment}@{offset}")
                yield HistoryEvent(key, self.segment, offset, payload)
        if decoder.offset != self.end or decoder.buffered:
            raise CorruptData(
                self.segment,
                decoder.offset,
                f"events of LTS chunk ranges {self.start}-{self.end} do not end at {self.end} "
                f"({decoder.buffered} bytes left over)",
                "segment",
            )

    def get(self) -> list[HistoryEvent]:
        """Every event of the slice."""
        return list(self.events())

    def to_arrow(self, decoder: PayloadDecoder | None = None) -> pa.Table:
        """The slice as an Arrow table, one row per event; ``decoder`` adds columns from payloads."""
        return _table(self.events(), decoder)


class StreamHistory:
    """The history of ``scope/stream`` between two cuts, as slices read from LTS.

    Args:
        manager: a stream manager (embedded or ``tcp://``), used on the driver only.
        scope, stream: the stream.
        lts_url: where the store keeps long-term storage (``SegmentStoreConfig.lts_url``; for a
            store that encrypts at rest, its ``lts_store_url``).
        start, end: stream cuts (default: the head and the tail cut now).
        settings: how to reach LTS (default: the process settings).
        wait: seconds to wait for the bytes before ``end`` to reach LTS (0: they must be there).
        keys: for an encrypted stream, the key-source URL workers unwrap its data key with
            (default: the manager's, else the settings' ``encryption.keys``).
    """

    def __init__(
        self,
        manager: StreamManager,
        scope: str,
        stream: str,
        lts_url: str,
        *,
        start: StreamCut | None = None,
        end: StreamCut | None = None,
        settings: Settings | None = None,
        wait: float = 0.0,
        keys: str | None = None,
    ) -> None:
        self.scope, self.stream = scope, stream
        self.encryption = manager.get_stream(scope, stream).config.encryption
        self.keys = keys or manager.keys_source or (settings.encryption.keys if settings else None)
        self.lts_url = lts_url if lts_url.endswith("/") else lts_url + "/"
        self.access = StoreAccess(settings)
        self.start = start or manager.get_head_cut(scope, stream)
        self.end = end or manager.get_tail_cut(scope, stream)
        for cut in (self.start, self.end):
            if (cut.scope, cut.stream) != (scope, stream):
                raise InvalidStreamArgument(f"cut of {cut.scope}/{cut.stream} given for {scope}/{stream}")
        self.ranges = self._ranges(manager)
        self._wait_tiered(manager, wait)

    def _ranges(self, manager: StreamManager) -> list[tuple[str, int, int]]:
        """``(segment, start, end)`` of every segment between the cuts, predecessors first."""
        starts, ends = self.start.offsets, self.end.offsets
        ranges: list[tuple[str, int, int]] = []
        seen: set[str] = set()
        frontier = list(starts)
        while frontier:
            segment = frontier.pop(0)
            if segment in seen:
                continue
            seen.add(segment)
            lo, hi = starts.get(segment), ends.get(segment)
            if lo is None or hi is None:
                info = manager.store.info(segment)  # one call for what the cuts do not say
                lo = info.start_offset if lo is None else lo
                if hi is None:
                    hi = info.length
                    successors = manager.controller.get_successors(self.scope, self.stream, segment)
                    frontier += [s.segment.name for s in successors]
            if hi < lo:
                raise InvalidStreamArgument(f"{segment}: the end cut ({hi}) is before the start cut ({lo})")
            if hi > lo:
                ranges.append((segment, lo, hi))
        missing = set(ends) - seen
        if missing:
            raise InvalidStreamArgument(f"the end cut's segments {sorted(missing)} do not follow the start cut")
        return ranges

    def _wait_tiered(self, manager: StreamManager, wait: float) -> None:
        deadline = time.monotonic() + wait
        for segment, _, hi in self.ranges:
            while (tiered := manager.store.info(segment).tiered_length) < hi:
                if time.monotonic() >= deadline:
                    raise HistoryNotTiered(
                        f"{segment}: bytes up to {hi} are not all in LTS yet ({tiered} are); "
                        "seal the stream, use an earlier cut, or pass wait= seconds"
                    )
                time.sleep(0.05)

    def _chunks(self, segment: str, lo: int, hi: int) -> list[tuple[int, int, str, ChunkSums | None]]:
        """``(offset, length, key, checksums)`` of the segment's LTS chunks, from its metadata object."""
        store, prefix = self.access.open(self.lts_url)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        directory = f"{prefix}segments/{quote(segment, safe='')}/"
        candidates = []
        for info in store.list(directory):
            if info.key.endswith("/metadata.json"):
                try:
                    body = json.loads(store.get(info.key))
                    chunks = sorted(
                        (
                            (int(c["offset"]), int(c["length"]), str(c["key"]), ChunkSums.from_json(c.get("sums")))
                            for c in body["chunks"]
                        ),
                        key=lambda c: c[0],
                    )
                except (ValueError, KeyError, TypeError) as exc:  # an encrypting store's LTS: lts_store_url
                    detail = f"not LTS segment metadata ({type(exc).__name__}: {exc})"
                    raise CorruptData(store.url(info.key), 0, detail, "uncompressed") from None
                if _covers(chunks, lo, hi):
                    candidates.append(chunks)
        if len(candidates) != 1:
            what = "no LTS metadata covers" if not candidates else "several LTS creations cover"
            raise ObjectNotFound(f"{self.lts_url}{directory[len(prefix) :]}", detail=f"{what} bytes {lo}-{hi}")
        return candidates[0]

    def partition(self, bytes_per_slice: int = 64 << 20) -> list[StreamSlice]:
        """Slices of about ``bytes_per_slice`` (never smaller than one chunk), cut at chunk boundaries."""
        if bytes_per_slice <= 0:
            raise InvalidStreamArgument(f"bytes_per_slice must be > 0, not {bytes_per_slice}")
        slices: list[StreamSlice] = []
        for segment, lo, hi in self.ranges:
            pieces: list[tuple[str, int, int]] = []
            sums: list[ChunkSums | None] = []
            first = lo
            for offset, length, key, chunk_sums in self._chunks(segment, lo, hi):
                a, b = max(lo, offset), min(hi, offset + length)
                if a >= b:
                    continue
                pieces.append((key, a - offset, b - offset))
                sums.append(chunk_sums)
                if b - first >= bytes_per_slice or b == hi:
                    slices.append(
                        StreamSlice(
                            self.lts_url,
                            segment,
                            first,
                            b,
                            tuple(pieces),
                            self.access,
                            self.encryption,
                            self.keys,
                            tuple(sums),
                        )
                    )
                    pieces, sums, first = [], [], b
        return slices

    def to_arrow(self, decoder: PayloadDecoder | None = None) -> pa.Table:
        """The whole history as one Arrow table (read here; for large streams map the slices)."""
        return _table((e for s in self.partition() for e in s.events()), decoder)

    @property
    def nbytes(self) -> int:
        """Bytes between the cuts."""
        return sum(hi - lo for _, lo, hi in self.ranges)


def _covers(chunks: Sequence[tuple[int, int, str, ChunkSums | None]], lo: int, hi: int) -> bool:
    """Whether contiguous chunks cover ``[lo, hi)``."""
    pos = lo
    for offset, length, *_ in chunks:
        if offset <= pos < offset + length:
            pos = offset + length
    return pos >= hi or lo == hi


def _table(events: Iterator[HistoryEvent], decoder: PayloadDecoder | None) -> pa.Table:
    from xtremehub.plugins import require_extra

    require_extra("Arrow views of streams", "demo", "pyarrow")
    import pyarrow as pa

    columns: dict[str, list[Any]] = {"routing_key": [], "segment": [], "offset": [], "payload": []}
    extra: dict[str, list[Any]] = {}
    for n, event in enumerate(events):
        columns["routing_key"].append(event.routing_key)
        columns["segment"].append(event.segment)
        columns["offset"].append(event.offset)
        columns["payload"].append(event.data)
        if decoder is not None:
            for name, value in decoder(event.data).items():
                extra.setdefault(name, [None] * n).append(value)
            for values in extra.values():
                values.extend([None] * (n + 1 - len(values)))
    schema = [
        pa.field("routing_key", pa.string()),
        pa.field("segment", pa.string()),
        pa.field("offset", pa.int64()),
        pa.field("payload", pa.binary()),
    ]
    table = pa.table({f.name: pa.array(columns[f.name], f.type) for f in schema})
    for name, values in extra.items():
        table = table.append_column(name, pa.array(values))
    return table
