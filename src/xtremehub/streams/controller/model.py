"""Plain, frozen values the controller takes and returns (scopes, streams, segments, cuts, groups).

Every value here is made only of ``str``/``int``/``float``/``bool``/``None``, tuples and other
values of this module, so the stream server can send them over the wire unchanged.

Example:
    >>> policy = ScalingPolicy.by_event_rate(100, scale_factor=2, min_segments=1, cooldown=1.0, window=1.0)
    >>> policy.kind, policy.target_rate
    ('event_rate', 100.0)
    >>> cut = StreamCut("s", "st", (("s/st/0.#epoch.0", 42),))
    >>> cut.offsets
    {'s/st/0.#epoch.0': 42}
    >>> StreamCut.from_json(cut.to_json()) == cut
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from xtremehub.errors import InvalidStreamArgument

__all__ = [
    "MAX_EVENT_SIZE",
    "Checkpoint",
    "ReaderAssignment",
    "ReaderGroupConfig",
    "ReaderGroupSegment",
    "ReaderGroupState",
    "RetentionPolicy",
    "ScalingPolicy",
    "SegmentRange",
    "StreamConfig",
    "StreamCut",
    "StreamEncryption",
    "StreamInfo",
    "SuccessorInfo",
    "TxnInfo",
    "TxnSegment",
]

#: Largest event payload a writer accepts (Pravega's limit).
MAX_EVENT_SIZE = 8 * 1024 * 1024

ScalingKind = Literal["fixed", "event_rate", "byte_rate"]
RetentionKind = Literal["none", "time", "size"]
TxnState = Literal["open", "committing", "committed", "aborted"]
SegmentState = Literal["unassigned", "assigned", "completed"]
CheckpointState = Literal["pending", "completed"]


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """How many segments a stream has: fixed, or driven by the event or byte rate.

    ``target_rate`` is per segment (events/s or bytes/s). A segment above it for a whole
    ``window`` splits into ``scale_factor`` parts; two neighbours both under a quarter of it
    merge; never below ``min_segments``, and a segment waits ``cooldown`` seconds after it was
    created before it scales again. Rates come from writers' traffic reports (every 0.5 s), so
    they are measured over at least one second whatever ``window`` says.
    """

    kind: ScalingKind = "fixed"
    min_segments: int = 1
    target_rate: float = 0.0
    scale_factor: int = 2
    cooldown: float = 10.0
    window: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "event_rate", "byte_rate"):
            raise InvalidStreamArgument(f"scaling policy kind: unknown {self.kind!r} (fixed, event_rate, byte_rate)")
        if self.min_segments < 1 or self.min_segments > 1024:
            raise InvalidStreamArgument(f"scaling policy min_segments: {self.min_segments} not in 1..1024")
        if self.kind != "fixed" and self.target_rate <= 0:
            raise InvalidStreamArgument(f"scaling policy target_rate: must be > 0, got {self.target_rate}")
        if self.scale_factor < 2:
            raise InvalidStreamArgument(f"scaling policy scale_factor: must be >= 2, got {self.scale_factor}")
        if self.cooldown < 0 or self.window <= 0:
            raise InvalidStreamArgument("scaling policy: cooldown must be >= 0 and window > 0")

    @classmethod
    def fixed(cls, segments: int) -> ScalingPolicy:
        """Exactly ``segments`` segments, never scaled automatically."""
        return cls("fixed", min_segments=segments)

    @classmethod
    def by_event_rate(
        cls,
        target_events_per_second: float,
        *,
        scale_factor: int = 2,
        min_segments: int = 1,
        cooldown: float = 10.0,
        window: float = 5.0,
    ) -> ScalingPolicy:
        """Split segments receiving more than ``target_events_per_second``."""
        return cls("event_rate", min_segments, float(target_events_per_second), scale_factor, cooldown, window)

    @classmethod
    def by_byte_rate(
        cls,
        target_bytes_per_second: float,
        *,
        scale_factor: int = 2,
        min_segments: int = 1,
        cooldown: float = 10.0,
        window: float = 5.0,
    ) -> ScalingPolicy:
        """Split segments receiving more than ``target_bytes_per_second``."""
        return cls("byte_rate", min_segments, float(target_bytes_per_second), scale_factor, cooldown, window)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What the background retention task keeps: everything, the last seconds or the last bytes.

    The task records a stream cut at the tail every ``cut_interval`` seconds and truncates the
    stream at the newest recorded cut that is older than ``seconds`` (time) or that has at least
    ``bytes`` of data after it (size), so at least the requested amount is always kept.
    """

    kind: RetentionKind = "none"
    seconds: float = 0.0
    bytes: int = 0
    cut_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "time", "size"):
            raise InvalidStreamArgument(f"retention policy kind: unknown {self.kind!r} (none, time, size)")
        if self.kind == "time" and self.seconds <= 0:
            raise InvalidStreamArgument(f"retention policy seconds: must be > 0, got {self.seconds}")
        if self.kind == "size" and self.bytes <= 0:
            raise InvalidStreamArgument(f"retention policy bytes: must be > 0, got {self.bytes}")
        if self.cut_interval <= 0:
            raise InvalidStreamArgument(f"retention policy cut_interval: must be > 0, got {self.cut_interval}")

    @classmethod
    def by_time(cls, seconds: float, *, cut_interval: float = 60.0) -> RetentionPolicy:
        """Keep at least the last ``seconds`` of events."""
        return cls("time", seconds=float(seconds), cut_interval=cut_interval)

    @classmethod
    def by_size(cls, size_bytes: int, *, cut_interval: float = 60.0) -> RetentionPolicy:
        """Keep at least the last ``size_bytes`` bytes of events."""
        return cls("size", bytes=int(size_bytes), cut_interval=cut_interval)


@dataclass(frozen=True, slots=True)
class StreamEncryption:
    """A stream whose events writers encrypt and readers decrypt (the store sees ciphertext only).

    Attributes:
        dataset: whose key-encryption key (KEK) wraps the stream's data key: a reader or writer
            needs that KEK released to it (key policies, identities and code measurements apply).
        wrapped_key: the stream's AES-256 data key wrapped by that KEK (opaque; names the KEK version).
    """

    dataset: str
    wrapped_key: bytes

    def __post_init__(self) -> None:
        if not self.dataset or not self.wrapped_key:
            raise InvalidStreamArgument("stream encryption needs a dataset and a wrapped data key")


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """A stream's policies; ``encryption`` is set at creation and never changes."""

    scaling: ScalingPolicy = field(default_factory=ScalingPolicy)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    encryption: StreamEncryption | None = None


@dataclass(frozen=True, slots=True)
class SegmentRange:
    """One segment of a stream and the routing-key range ``[key_low, key_high)`` it owns."""

    name: str
    number: int
    epoch: int
    key_low: float
    key_high: float

    def owns(self, key: float) -> bool:
        """True when the hashed routing key ``key`` falls in this segment's range."""
        return self.key_low <= key < self.key_high or (key == 1.0 and self.key_high == 1.0)


@dataclass(frozen=True, slots=True)
class SuccessorInfo:
    """A successor segment and all its predecessors (read it after all of them are read)."""

    segment: SegmentRange
    predecessors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StreamCut:
    """A position in a stream: an offset in each segment of a set covering the key space once."""

    scope: str
    stream: str
    positions: tuple[tuple[str, int], ...]

    @property
    def offsets(self) -> dict[str, int]:
        """Segment name -> offset."""
        return dict(self.positions)

    def to_json(self) -> str:
        """A compact text form (for the CLI and for applications storing cuts)."""
        return json.dumps({"scope": self.scope, "stream": self.stream, "positions": dict(self.positions)})

    @classmethod
    def from_json(cls, text: str) -> StreamCut:
        """Parse :meth:`to_json` output; ``InvalidStreamArgument`` when it is not one."""
        try:
            raw = json.loads(text)
            positions = tuple(sorted((str(k), int(v)) for k, v in raw["positions"].items()))
            return cls(str(raw["scope"]), str(raw["stream"]), positions)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidStreamArgument(f"not a stream cut: {text[:80]!r}") from exc


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the controller knows about a stream."""

    scope: str
    stream: str
    config: StreamConfig
    sealed: bool
    epoch: int
    active_segments: tuple[SegmentRange, ...]
    created: float


@dataclass(frozen=True, slots=True)
class TxnSegment:
    """A transaction segment and the stream segment it is merged into on commit."""

    parent: SegmentRange
    name: str


@dataclass(frozen=True, slots=True)
class TxnInfo:
    """A transaction: its segments, state and lease deadline (wall-clock seconds)."""

    txn_id: str
    scope: str
    stream: str
    state: TxnState
    lease_deadline: float
    segments: tuple[TxnSegment, ...]


@dataclass(frozen=True, slots=True)
class ReaderGroupConfig:
    """Streams (``"scope/stream"``) a group reads, where it starts, and when a silent reader is dropped.

    ``start`` is ``"head"``, ``"tail"`` or ``"cut"`` (then ``cuts`` holds one cut per stream).
    """

    streams: tuple[str, ...]
    start: Literal["head", "tail", "cut"] = "head"
    cuts: tuple[StreamCut, ...] = ()
    reader_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.streams:
            raise InvalidStreamArgument("reader group: at least one stream is needed")
        if self.start not in ("head", "tail", "cut"):
            raise InvalidStreamArgument(f"reader group start: {self.start!r} is not head, tail or cut")
        if self.start == "cut" and not self.cuts:
            raise InvalidStreamArgument("reader group start='cut' needs cuts")
        if self.reader_timeout <= 0:
            raise InvalidStreamArgument(f"reader group reader_timeout: must be > 0, got {self.reader_timeout}")


@dataclass(frozen=True, slots=True)
class ReaderGroupSegment:
    """One segment in a reader group's state: its read position and owner."""

    segment: str
    scope: str
    stream: str
    offset: int
    owner: str | None
    state: SegmentState


@dataclass(frozen=True, slots=True)
class ReaderGroupState:
    """A reader group's durable state."""

    scope: str
    name: str
    config: ReaderGroupConfig
    readers: tuple[str, ...]
    segments: tuple[ReaderGroupSegment, ...]


@dataclass(frozen=True, slots=True)
class ReaderAssignment:
    """The controller's answer to a reader's sync: what it owns now, gained and must drop.

    ``acquired`` holds ``(segment, offset)`` pairs to start reading; ``released`` names segments
    taken away (to rebalance) that the reader must stop reading at once. ``checkpoint`` names a
    pending checkpoint whose marker the reader must return next (None when it has nothing to
    record); ``generation`` counts the group's resets (a reader of an older one must be recreated).
    """

    owned: tuple[str, ...]
    acquired: tuple[tuple[str, int], ...]
    released: tuple[str, ...]
    checkpoint: str | None = None
    generation: int = 0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A reader-group checkpoint: one consistent cut across every reader of the group.

    While ``state`` is ``"pending"``, ``waiting`` names the readers that have not yet returned
    its marker and ``deadline`` (wall-clock seconds) is when it is cancelled; once
    ``"completed"``, ``stream_cuts`` holds one cut per stream of the group: every event before
    it was returned by some reader before that reader's checkpoint marker, none after it.

    Example:
        >>> cut = StreamCut("s", "st", (("s/st/0.#epoch.0", 42),))
        >>> cp = Checkpoint("s", "g", "cp-1", "completed", 0.0, 0.0, (), (cut,))
        >>> Checkpoint.from_json(cp.to_json()) == cp
        True
    """

    scope: str
    group: str
    name: str
    state: CheckpointState
    created: float
    deadline: float
    waiting: tuple[str, ...]
    stream_cuts: tuple[StreamCut, ...]

    def __post_init__(self) -> None:
        if self.state not in ("pending", "completed"):
            raise InvalidStreamArgument(f"checkpoint {self.name!r} state: {self.state!r} is not pending or completed")

    @property
    def completed(self) -> bool:
        """True once every reader has recorded it (``stream_cuts`` is then set)."""
        return self.state == "completed"

    def to_json(self) -> str:
        """A compact text form (for applications storing the checkpoint with their own state)."""
        return json.dumps(
            {
                "scope": self.scope,
                "group": self.group,
                "name": self.name,
                "state": self.state,
                "created": self.created,
                "deadline": self.deadline,
                "waiting": list(self.waiting),
                "stream_cuts": [c.to_json() for c in self.stream_cuts],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse :meth:`to_json` output; ``InvalidStreamArgument`` when it is not one."""
        try:
            raw = json.loads(text)
            return cls(
                str(raw["scope"]),
                str(raw["group"]),
                str(raw["name"]),
                raw["state"],
                float(raw["created"]),
                float(raw["deadline"]),
                tuple(str(r) for r in raw["waiting"]),
                tuple(StreamCut.from_json(str(c)) for c in raw["stream_cuts"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidStreamArgument(f"not a checkpoint: {text[:80]!r}") from exc
