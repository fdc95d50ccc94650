"""The demo's streams part: video frames and sensor events, read live and historically from LTS.

:func:`run_streams_demo` opens the embedded stream store under ``settings.home/streams-demo``
(long-term storage: a local directory beside it), (re)creates the scope ``xhub-demo`` with two
streams and, for ``config.seconds``:

* ``video``: ``config.cameras`` cameras (routing keys ``camera-N``) write ``config.fps`` frames
  a second of 200-500 kB each through synchronous writers (each write returns once durable);
* ``sensors``: ``config.sensors`` sensors (routing keys ``sensor-NNN``) write small JSON events
  at ``config.sensor_rate`` events a second through one writer with events in flight; the
  stream scales automatically on its event rate.

A reader group per stream reads at the tail meanwhile (end-to-end latency). Then the streams
are sealed, the part waits until the store reports every byte in LTS, reopens the store and
reads both streams back from the head with new reader groups, checking that every frame and
event arrives exactly once, in order per camera and per sensor, with a matching checksum.

Every event is a :func:`encode_record` record: a 26-byte header (magic, source, sequence
number, timestamp, payload length, CRC-32 of header and payload) and the payload.

Example:
    >>> data = encode_record(1, 7, 1_700_000_000_000_000_000, b"pixels")
    >>> decode_record(data)
    Record(source=1, seq=7, timestamp_ns=1700000000000000000, payload=b'pixels')
    >>> check = RecordVerifier("video", "camera", "frame")
    >>> check.expect({1: 8})
    >>> check.observe(data) is not None, check.observe(data) is None  # the second one is a duplicate
    (True, True)
    >>> check.missing(), check.duplicates, check.exactly_once
    (7, 1, False)
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from struct import Struct

import numpy as np

from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.errors import ConfigError, MalformedRecord, XHubError
from xtremehub.streams import EventPointer, EventRead, EventStreamReader, ReaderGroup, ScalingPolicy, StreamManager
from xtremehub.streams.history import StreamHistory, StreamSlice

__all__ = [
    "Record",
    "RecordVerifier",
    "StreamStats",
    "StreamsDemoConfig",
    "StreamsReport",
    "count_sources",
    "decode_record",
    "encode_record",
    "percentiles",
    "read_history",
    "run_streams_demo",
]

log = logging.getLogger(__name__)

SCOPE = "xhub-demo"
VIDEO, SENSORS = "video", "sensors"
MAGIC = b"XHR1"
#: magic, source, sequence number, timestamp (ns since the epoch), payload length, CRC-32
HEADER = Struct("<4sHIqII")
_CRC_AT = HEADER.size - 4
_MAX_PROBLEMS = 5
#: A reader that gets nothing for this long checks whether its group has read everything.
_IDLE = 0.2


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded demo event."""

    source: int
    seq: int
    timestamp_ns: int
    payload: bytes


def encode_record(source: int, seq: int, timestamp_ns: int, payload: bytes) -> bytes:
    """Header + payload; the CRC-32 covers the header fields and the payload."""
    head = HEADER.pack(MAGIC, source, seq, timestamp_ns, len(payload), 0)[:_CRC_AT]
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, crc.to_bytes(4, "little"), payload))


def decode_record(data: bytes, *, where: str = "event", offset: int = 0) -> Record:
    """Parse and check one record; ``MalformedRecord`` (naming ``where`` and ``offset``) if it is not valid.

    >>> decode_record(b"XHR1", where="s/video/0", offset=42)
    Traceback (most recent call last):
    ...
    xtremehub.errors.MalformedRecord: s/video/0: 4 bytes, shorter than the 26-byte header (at segment offset 42)
    """
    if len(data) < HEADER.size:
        raise MalformedRecord(
            where, offset, f"{len(data)} bytes, shorter than the {HEADER.size}-byte header", "segment"
        )
    magic, source, seq, timestamp_ns, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MalformedRecord(where, offset, f"bad magic {magic!r}", "segment")
    if length != len(data) - HEADER.size:
        raise MalformedRecord(
            where, offset, f"payload of {len(data) - HEADER.size} bytes, header says {length}", "segment"
        )
    payload = data[HEADER.size :]
    if zlib.crc32(payload, zlib.crc32(data[:_CRC_AT])) != crc:
        raise MalformedRecord(where, offset, f"checksum mismatch (source {source}, seq {seq})", "segment")
    return Record(source, seq, timestamp_ns, payload)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95 and p99 of ``values`` (NaN when there are none).

    >>> percentiles([float(i) for i in range(101)])
    (50.0, 95.0, 99.0)
    """
    if not values:
        return (float("nan"),) * 3
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99])
    return float(p50), float(p95), float(p99)


class RecordVerifier:
    """Checks records read back against what was written: exactly once, in order per source, intact.

    Sources write sequence numbers ``0 .. n-1``; :meth:`expect` gives each source's ``n`` once
    the writers are done. Thread-safe (one reader thread per stream is enough, but it may be
    read from another thread for the report).
    """

    def __init__(self, stream: str, source_name: str, unit: str) -> None:
        self.stream, self.source_name, self.unit = stream, source_name, unit
        self.expected: dict[int, int] = {}
        self.seen: dict[int, set[int]] = {}
        self.last: dict[int, int] = {}
        self.duplicates = self.out_of_order = self.corrupt = 0
        self.bytes = 0
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def expect(self, counts: Mapping[int, int]) -> None:
        """Source -> number of records written (sequence numbers ``0 .. n-1``)."""
        with self._lock:
            self.expected = dict(counts)

    def observe(self, data: bytes, *, segment: str = "", offset: int = 0) -> Record | None:
        """Check one event; returns its record the first time it is seen intact, else None."""
        try:
            record = decode_record(data, where=segment or self.stream, offset=offset)
        except MalformedRecord as exc:
            with self._lock:
                self.corrupt += 1
                self._problem(str(exc))
            return None
        with self._lock:
            seqs = self.seen.setdefault(record.source, set())
            if record.seq in seqs:
                self.duplicates += 1
                self._problem(f"{self._what(record)} read twice")
                return None
            last = self.last.get(record.source, -1)
            if record.seq < last:
                self.out_of_order += 1
                self._problem(f"{self._what(record)} after {self.unit} {last}")
            seqs.add(record.seq)
            self.last[record.source] = max(last, record.seq)
            self.bytes += len(data)
        return record

    @property
    def received(self) -> int:
        """Distinct intact records seen."""
        with self._lock:
            return sum(len(s) for s in self.seen.values())

    def missing(self) -> int:
        """Expected records never seen intact."""
        with self._lock:
            return sum(n - len({q for q in self.seen.get(src, ()) if q < n}) for src, n in self.expected.items())

    def unexpected(self) -> int:
        """Intact records that were never written (unknown source or sequence number)."""
        with self._lock:
            return sum(1 for src, seqs in self.seen.items() for q in seqs if q >= self.expected.get(src, 0))

    @property
    def exactly_once(self) -> bool:
        """Every expected record seen once, nothing else."""
        return self.duplicates == 0 and self.missing() == 0 and self.unexpected() == 0

    @property
    def in_order(self) -> bool:
        return self.out_of_order == 0

    @property
    def intact(self) -> bool:
        return self.corrupt == 0

    def describe_missing(self) -> list[str]:
        """Up to a few ``"<source> <n>: <unit>s a..b missing"`` lines."""
        lines = []
        with self._lock:
            for src, n in sorted(self.expected.items()):
                absent = sorted(set(range(n)) - self.seen.get(src, set()))
                if absent:
                    lines.append(
                        f"{self.stream}: {len(absent)} {self.unit}s of {self.source_name} {src} missing "
                        f"(first {absent[0]}, last {absent[-1]})"
                    )
        return lines[:_MAX_PROBLEMS]

    def _what(self, record: Record) -> str:
        return f"{self.stream}: {self.source_name} {record.source} {self.unit} {record.seq}"

    def _problem(self, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)


@dataclass(frozen=True, kw_only=True)
class StreamsDemoConfig:
    """Sizes and rates of the streams part (the defaults take ~4 s on 2 cores)."""

    seconds: float = 3.0
    cameras: int = 2
    fps: float = 30.0
    frame_bytes: tuple[int, int] = (200_000, 500_000)
    video_segments: int = 2
    sensors: int = 200
    #: Events per second over all sensors.
    sensor_rate: float = 1000.0
    #: Segments the sensor stream starts with; a segment above ``sensor_target_rate`` events/s splits.
    sensor_segments: int = 2
    sensor_target_rate: float = 400.0
    #: Give up waiting for tiering, or for a reader to reach the end, after this many seconds.
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.fps <= 0 or self.sensor_rate <= 0 or self.sensor_target_rate <= 0:
            raise ConfigError(f"streams demo: seconds, fps and rates must be > 0 in {self}")
        if not 1 <= self.cameras <= 0xFFFF or not 1 <= self.sensors <= 0xFFFF:
            raise ConfigError(f"streams demo: cameras and sensors must be in 1..65535 in {self}")
        low, high = self.frame_bytes
        if not 0 < low <= high <= 8_000_000:
            raise ConfigError(f"streams demo: frame_bytes must be 0 < low <= high <= 8 MB, not {self.frame_bytes}")
        if self.video_segments < 1 or self.sensor_segments < 1 or self.timeout <= 0:
            raise ConfigError(f"streams demo: segments must be >= 1 and timeout > 0 in {self}")

    @property
    def frames_per_camera(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def sensor_events(self) -> int:
        return max(1, round(self.seconds * self.sensor_rate))


@dataclass
class StreamStats:
    """What happened to one stream."""

    name: str
    events: int = 0
    bytes: int = 0
    segments_start: int = 0
    segments_end: int = 0
    ack_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    history_seconds: float = 0.0
    history_events: int = 0
    history_bytes: int = 0
    tiered_bytes: int = 0


@dataclass
class StreamsReport:
    """What the streams part did and found."""

    config: StreamsDemoConfig
    data_dir: Path
    lts_url: str
    video: StreamStats
    sensors: StreamStats
    seconds: float = 0.0
    ingest_seconds: float = 0.0
    tiering_seconds: float = 0.0
    #: The reopened store's WAL size and untiered bytes before the historical read.
    wal_bytes_after: int = 0
    untiered_after: int = -1
    #: The batch job over the sensor stream's history in LTS: slices and events per sensor.
    batch_slices: int = 0
    batch_counts: dict[int, int] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def summary(self) -> str:
        c, v, s = self.config, self.video, self.sensors
        low, high = c.frame_bytes

        def pct(values: list[float]) -> str:
            return "/".join(f"{x:.1f}" for x in percentiles(values)) + " ms"

        def rate(stats: StreamStats, unit: str) -> str:
            secs = max(stats.history_seconds, 1e-9)
            mb_s = stats.history_bytes / secs / 1e6
            return (
                f"{stats.history_events:,} {unit} ({stats.history_bytes / 1e6:.1f} MB) in "
                f"{stats.history_seconds:.2f}s: {mb_s:,.{0 if mb_s >= 10 else 1}f} MB/s, "
                f"{stats.history_events / secs:,.0f} {unit}/s"
            )

        scaled = (
            f"auto-scaled {s.segments_start} -> {s.segments_end} segments"
            if s.segments_end != s.segments_start
            else f"{s.segments_end} segments (not scaled: under {c.sensor_target_rate:g} ev/s per segment)"
        )
        lines = [
            "XtremeHub demo: streams (video frames + sensor events, live and historical reads, LTS)",
            f"  store        {self.data_dir} (embedded), LTS {self.lts_url}",
            f"  video        {c.cameras} cameras x {c.fps:g} fps x {c.seconds:g}s: {v.events:,} frames, "
            f"{v.bytes / 1e6:.1f} MB ({low // 1000}-{high // 1000} kB each), {v.segments_end} fixed segments",
            f"  sensors      {c.sensors} sensors, {c.sensor_rate:g} ev/s x {c.seconds:g}s: "
            f"{s.events:,} events, {scaled}",
            f"  ingest       {self.ingest_seconds:.2f}s, writers and live readers at once",
            f"  write ack    p50/p95/p99 video {pct(v.ack_ms)}, sensors {pct(s.ack_ms)}",
            f"  end to end   writer -> live reader p50/p95/p99 video {pct(v.e2e_ms)}, sensors {pct(s.e2e_ms)}",
            f"  tiering      {(v.tiered_bytes + s.tiered_bytes) / 1e6:.1f} MB in LTS {self.tiering_seconds:.2f}s "
            "after sealing",
            f"  historical   store reopened (WAL {self.wal_bytes_after / 1e3:.0f} kB, {self.untiered_after:,} bytes "
            "not in LTS), new reader groups from the head:",
            f"               video {rate(v, 'frames')}",
            f"               sensors {rate(s, 'events')}",
            f"  as data      a batch job over the sensor stream's history: {self.batch_slices} slices read from "
            f"LTS on 2 workers, {sum(self.batch_counts.values()):,} events",
            f"  time         {self.seconds:.2f}s",
        ]
        lines += [f"  problem      {p}" for p in self.problems]
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return "\n".join(lines)


# -- writers ------------------------------------------------------------------------------------
class _FrameSource:
    """Synthetic camera frames: slices of one noise buffer, 200-500 kB, different per frame."""

    def __init__(self, sizes: tuple[int, int], seed: int = 11) -> None:
        self.low, self.high = sizes
        self.noise = np.random.default_rng(seed).integers(0, 256, 2 * self.high, dtype=np.uint8).tobytes()

    def frame(self, camera: int, number: int) -> bytes:
        span = self.high - self.low + 1
        size = self.low + (number * 7919 + camera * 104_729) % span
        start = (number * 4099 + camera * 65_537) % (len(self.noise) - size + 1)
        return self.noise[start : start + size]


def _sensor_payload(sensor: int, seq: int) -> bytes:
    reading = {"sensor": f"sensor-{sensor:03d}", "temp_c": round(20 + (sensor % 7) + (seq % 50) / 25, 2)}
    return json.dumps(reading, separators=(",", ":")).encode()


def _write_camera(
    manager: StreamManager,
    camera: int,
    config: StreamsDemoConfig,
    frames: _FrameSource,
    start: float,
    stats: StreamStats,
    written: dict[int, int],
) -> None:
    """One camera: ``frames_per_camera`` frames at ``fps``, each write durable on return."""
    with manager.create_writer(SCOPE, VIDEO, writer_id=f"camera-{camera}") as writer:
        for number in range(config.frames_per_camera):
            delay = start + number / config.fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            data = encode_record(camera, number, time.time_ns(), frames.frame(camera, number))
            t0 = time.perf_counter()
            writer.write_event(data, routing_key=f"camera-{camera}")
            stats.ack_ms.append((time.perf_counter() - t0) * 1e3)
            written[camera] = number + 1


def _write_sensors(
    manager: StreamManager, config: StreamsDemoConfig, start: float, stats: StreamStats, failures: list[str]
) -> dict[int, int]:
    """All sensors through one writer with events in flight, paced at ``sensor_rate``; returns counts."""
    written: dict[int, int] = {}

    def acked(future: Future[EventPointer], t0: float) -> None:
        if future.exception() is not None:
            failures.append(f"{SENSORS}: write failed: {future.exception()}")
        else:
            stats.ack_ms.append((time.perf_counter() - t0) * 1e3)

    with manager.create_writer(SCOPE, SENSORS, writer_id="sensors", max_in_flight=256) as writer:
        for i in range(config.sensor_events):
            delay = start + i / config.sensor_rate - time.perf_counter()
            if delay > 0.005:  # sleep in ticks of a few ms, not per event
                time.sleep(delay)
            sensor, seq = i % config.sensors, i // config.sensors
            data = encode_record(sensor, seq, time.time_ns(), _sensor_payload(sensor, seq))
            t0 = time.perf_counter()
            writer.write_event(data, routing_key=f"sensor-{sensor:03d}").add_done_callback(
                functools.partial(acked, t0=t0)
            )
            written[sensor] = seq + 1
    return written


# -- readers ------------------------------------------------------------------------------------
def _read_to_end(
    group: ReaderGroup, reader: EventStreamReader, on_event: Callable[[EventRead], None], deadline: float
) -> float:
    """Read until the group completed every segment of its (sealed) streams; returns when the last event came.

    Raises ``TimeoutError`` at ``deadline``.
    """
    last = time.perf_counter()
    while time.monotonic() < deadline:
        event = reader.read_next(timeout=_IDLE)
        if event is not None:
            on_event(event)
            last = time.perf_counter()
        elif group.is_fully_read():  # read_next also returns None at once then
            return last
    raise TimeoutError(f"reader group {group.scope}/{group.name} did not reach the end of its streams in time")


def _live_reader(
    group: ReaderGroup, verifier: RecordVerifier, stats: StreamStats, deadline: float, errors: list[str]
) -> None:
    def on_event(event: EventRead) -> None:
        now = time.time_ns()
        record = verifier.observe(event.data, segment=event.position.segment, offset=event.position.offset)
        if record is not None:
            stats.e2e_ms.append((now - record.timestamp_ns) / 1e6)

    try:
        with group.create_reader("live", sync_interval=0.2) as reader:
            _read_to_end(group, reader, on_event, deadline)
    except Exception as exc:  # reported as a failed check, not as a thread traceback
        errors.append(f"live reader of {group.name}: {exc}")


def read_history(
    manager: StreamManager,
    stream: str,
    verifier: RecordVerifier,
    stats: StreamStats,
    deadline: float,
    *,
    group_name: str = "",
) -> None:
    """Read the sealed ``stream`` of the demo scope from the head with a new reader group, checking every event.

    Counts go to ``stats`` (``history_*``); ``TimeoutError`` when the end is not reached by
    ``deadline`` (``time.monotonic()``). ``group_name`` defaults to ``history-<stream>``.
    """
    group = manager.create_reader_group(group_name or f"history-{stream}", SCOPE, [stream], start="head")

    def on_event(event: EventRead) -> None:
        verifier.observe(event.data, segment=event.position.segment, offset=event.position.offset)
        stats.history_events += 1
        stats.history_bytes += len(event.data)

    start = time.perf_counter()
    with group.create_reader("history", sync_interval=0.1) as reader:
        last = _read_to_end(group, reader, on_event, deadline)
    stats.history_seconds = last - start


# -- the part -----------------------------------------------------------------------------------
def _fresh_scope(manager: StreamManager, config: StreamsDemoConfig) -> None:
    """Delete what an earlier run left in the scope, then create the two streams."""
    manager.create_scope(SCOPE)
    for name in manager.list_reader_groups(SCOPE):
        log.info("streams demo: deleting reader group %s/%s of an earlier run", SCOPE, name)
        manager.delete_reader_group(name, SCOPE)
    for name in manager.list_streams(SCOPE):
        log.info("streams demo: deleting stream %s/%s of an earlier run", SCOPE, name)
        manager.delete_stream(SCOPE, name)
    manager.create_stream(SCOPE, VIDEO, scaling_policy=ScalingPolicy.fixed(config.video_segments))
    policy = ScalingPolicy.by_event_rate(
        config.sensor_target_rate, min_segments=config.sensor_segments, cooldown=1.0, window=1.0
    )
    manager.create_stream(SCOPE, SENSORS, scaling_policy=policy)


def _wait_tiered(manager: StreamManager, report: StreamsReport, sealed_at: float, deadline: float) -> bool:
    """Wait until the store reports every byte of both streams in LTS (sealed segments tier at once)."""
    while True:
        done = True
        for stats in (report.video, report.sensors):
            infos = [manager.store.info(name) for name in manager.store.list_segments(f"{SCOPE}/{stats.name}/")]
            stats.tiered_bytes = sum(i.tiered_length for i in infos)
            done = done and all(i.tiered_length == i.length for i in infos)
        report.tiering_seconds = time.perf_counter() - sealed_at
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _open(data_dir: Path, lts_url: str) -> StreamManager:
    # Short maintenance and tiering intervals: the demo lasts seconds, not hours.
    return StreamManager.embedded(data_dir, lts_url, maintenance_interval=0.25, tiering_interval=0.1)


@dataclass
class _Ingest:
    """What the ingest phase wrote and found."""

    written_video: dict[int, int] = field(default_factory=dict)
    written_sensors: dict[int, int] = field(default_factory=dict)
    write_errors: list[str] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)
    live_ok: bool = False
    sealed_at: float = 0.0


def _ingest(manager: StreamManager, config: StreamsDemoConfig, report: StreamsReport) -> _Ingest:
    """Write both streams while a reader group per stream reads at the tail, then seal them."""
    video, sensors = report.video, report.sensors
    out = _Ingest()
    checks = {VIDEO: RecordVerifier(VIDEO, "camera", "frame"), SENSORS: RecordVerifier(SENSORS, "sensor", "event")}
    frames = _FrameSource(config.frame_bytes)
    live = [
        threading.Thread(
            target=_live_reader,
            args=(manager.create_reader_group(f"live-{s.name}", SCOPE, [s.name], start="head"), checks[s.name], s),
            kwargs={"deadline": time.monotonic() + config.timeout, "errors": out.read_errors},
            name=f"xhub-demo-live-{s.name}",
            daemon=True,  # never keeps the process alive if the part fails half-way
        )
        for s in (video, sensors)
    ]
    for thread in live:
        thread.start()
    start = time.perf_counter() + 0.05

    def camera(i: int) -> None:
        try:
            _write_camera(manager, i, config, frames, start, video, out.written_video)
        except Exception as exc:  # reported as a failed check, not as a thread traceback
            out.write_errors.append(f"{VIDEO}: camera {i} writer failed: {exc}")

    def sensor_writer() -> None:
        try:
            out.written_sensors.update(_write_sensors(manager, config, start, sensors, out.write_errors))
        except Exception as exc:  # reported as a failed check, not as a thread traceback
            out.write_errors.append(f"{SENSORS}: writer failed: {exc}")

    writers = [threading.Thread(target=camera, args=(i,), name=f"xhub-demo-camera-{i}") for i in range(config.cameras)]
    writers.append(threading.Thread(target=sensor_writer, name="xhub-demo-sensors"))
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    checks[VIDEO].expect(out.written_video)
    checks[SENSORS].expect(out.written_sensors)
    video.events, sensors.events = sum(out.written_video.values()), sum(out.written_sensors.values())
    video.segments_end = len(manager.get_stream(SCOPE, VIDEO).active_segments)
    sensors.segments_end = len(manager.get_stream(SCOPE, SENSORS).active_segments)
    for stream in (VIDEO, SENSORS):  # the end of the streams: live readers finish, segments tier at once
        manager.seal_stream(SCOPE, stream)
    out.sealed_at = time.perf_counter()
    for thread in live:
        thread.join()
    report.ingest_seconds = time.perf_counter() - start
    video.bytes, sensors.bytes = checks[VIDEO].bytes, checks[SENSORS].bytes
    out.live_ok = all(v.exactly_once and v.in_order and v.intact for v in checks.values())
    for v in checks.values():
        report.problems += v.problems + v.describe_missing()
    return out


def count_sources(piece: StreamSlice) -> dict[int, int]:
    """Map of the batch job: records per source in one slice of a stream's history (checksums checked)."""
    counts: dict[int, int] = {}
    for event in piece.events():
        record = decode_record(event.data, where=event.segment, offset=event.offset)
        counts[record.source] = counts.get(record.source, 0) + 1
    return counts


def _history_batch(manager: StreamManager, lts_url: str, report: StreamsReport) -> None:
    """Streams as data: the sensor stream's history, cut into slices read from LTS by 2 workers."""
    slices = StreamHistory(manager, SCOPE, SENSORS, lts_url).partition(bytes_per_slice=64 << 10)
    with FunctionExecutor(workers=2, progress=False) as fexec:
        for part in fexec.get_result(fexec.map(count_sources, slices)):
            for source, n in part.items():
                report.batch_counts[source] = report.batch_counts.get(source, 0) + n
    report.batch_slices = len(slices)


def run_streams_demo(settings: Settings, config: StreamsDemoConfig | None = None) -> StreamsReport:
    """Ingest, read live, tier, reopen and read back both streams; see the module docstring."""
    config = config or StreamsDemoConfig()
    root = Path(settings.home).expanduser() / "streams-demo"
    data_dir, lts_url = root / "store", f"{root / 'lts'}/"
    t_start = time.perf_counter()
    deadline = time.monotonic() + config.timeout
    report = StreamsReport(config, data_dir, lts_url, StreamStats(VIDEO), StreamStats(SENSORS))

    with _open(data_dir, lts_url) as manager:
        _fresh_scope(manager, config)
        report.video.segments_start = len(manager.get_stream(SCOPE, VIDEO).active_segments)
        report.sensors.segments_start = len(manager.get_stream(SCOPE, SENSORS).active_segments)
        ingest = _ingest(manager, config, report)
        tiered = _wait_tiered(manager, report, ingest.sealed_at, deadline)

    # Reopen: the historical read starts from a cold store and reads what LTS holds.
    histories = {VIDEO: RecordVerifier(VIDEO, "camera", "frame"), SENSORS: RecordVerifier(SENSORS, "sensor", "event")}
    histories[VIDEO].expect(ingest.written_video)
    histories[SENSORS].expect(ingest.written_sensors)
    with _open(data_dir, lts_url) as manager:
        after = manager.store.stats()
        report.wal_bytes_after, report.untiered_after = after.wal_bytes, after.untiered_bytes
        for stats in (report.video, report.sensors):
            try:
                read_history(manager, stats.name, histories[stats.name], stats, deadline)
            except (XHubError, TimeoutError) as exc:
                ingest.read_errors.append(f"historical read of {stats.name}: {exc}")
        try:
            _history_batch(manager, lts_url, report)
        except (XHubError, TimeoutError) as exc:
            ingest.read_errors.append(f"batch job over the sensor history: {exc}")
    for v in histories.values():
        report.problems += v.problems + v.describe_missing()
    errors = ingest.write_errors + ingest.read_errors
    for error in errors:
        log.warning("streams demo: %s", error)
    report.problems = errors[:_MAX_PROBLEMS] + report.problems
    report.checks = {
        "every frame and event written durably": not ingest.write_errors
        and report.video.events == config.cameras * config.frames_per_camera
        and report.sensors.events == config.sensor_events,
        "live readers got each frame and event once, in order, intact": ingest.live_ok,
        "every byte in LTS before the historical read": tiered and report.untiered_after == 0,
        "historical read: every frame and event exactly once": all(v.exactly_once for v in histories.values()),
        "historical read: frame numbers increase per camera, sequence per sensor": all(
            v.in_order for v in histories.values()
        ),
        "historical read: every checksum matches": all(v.intact for v in histories.values()),
        "batch job over the history in LTS: every sensor event once": report.batch_counts == ingest.written_sensors,
    }
    report.seconds = time.perf_counter() - t_start
    return report
