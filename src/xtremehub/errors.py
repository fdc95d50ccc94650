"""One error hierarchy for XtremeHub.

Every error raised on purpose by XtremeHub derives from :class:`XHubError`, and
most also derive from the builtin exception a Python user would reach for, so
``except FileNotFoundError`` keeps working on a missing S3 key::

    XHubError
    ├── ConfigError                 (ValueError)   bad setting, file or env variable
    ├── PluginNotFound              (ValueError)   unknown backend/format name
    ├── MissingDependency           (ImportError)  optional extra not installed
    ├── StorageError                (OSError)
    │   ├── ObjectNotFound          (FileNotFoundError)
    │   │   └── BucketNotFound
    │   ├── AccessDenied            (PermissionError)
    │   ├── InvalidRange            (ValueError)
    │   ├── UnsupportedURL          (ValueError)
    │   │   └── UnsafeURL                          path traversal (``..`` segments) refused
    │   ├── StorageUnavailable      (ConnectionError)  timeouts, refused, 5xx
    │   ├── TierFull                (TimeoutError) ephemeral Tier 0 over its thresholds, cannot spill
    │   └── ActionError                            a storage action of the ephemeral store failed
    │       ├── InvalidAction       (ValueError)   unpicklable function, bad prefix or reducer
    │       ├── ActionFailed                       the action raised or its worker died (remote traceback)
    │       ├── ActionTimeout       (TimeoutError) ran past its time limit; its worker was killed
    │       └── ActionMemoryExceeded (MemoryError) went over its memory limit
    ├── ComputeError
    │   ├── TaskError                               remote failure without a picklable exception
    │   ├── WorkerDied                              worker process killed / out of memory
    │   ├── TaskTimeout             (TimeoutError)  task ran past its time limit
    │   └── ExecutorClosed          (RuntimeError)
    ├── ConnectorError
    │   ├── CorruptData             (ValueError)   bad compression or structure, names offset
    │   │   ├── TruncatedData
    │   │   ├── MalformedRecord
    │   │   ├── MismatchedPairs                    paired FASTQ files out of step (read count or name)
    │   │   └── DuplicateSequence                  a reference names two sequences alike
    │   ├── UnsupportedData         (ValueError)   valid, but a variant the connector cannot read
    │   ├── StaleIndex                             object changed since preprocess()
    │   └── NotPreprocessed
    ├── OptimizerError
    │   ├── TelemetryCorrupt        (ValueError)   empty or malformed telemetry, names file and line
    │   └── InfeasiblePlan          (ValueError)   no plan meets the constraints (memory limit)
    ├── CatalogError
    │   ├── DatasetNotFound         (LookupError)  no dataset, version or access request with that id
    │   ├── InvalidMetadata         (ValueError)   unknown field, bad value, too long; names the field
    │   ├── PreconditionFailed      (ValueError)   If-Match etag not current: a lost update refused
    │   ├── CatalogUnavailable      (ConnectionError)  the catalog database cannot be reached
    │   └── PreviewUnavailable      (ValueError)   no picture for this format, or nothing to draw
    ├── SecurityError                                  never carries a token, key or secret
    │   ├── AuthenticationFailed    (PermissionError)  missing, malformed, forged or expired token
    │   ├── Forbidden               (PermissionError)  authenticated, but the policy denies the action
    │   ├── KeyReleaseDenied        (PermissionError)  identity, purpose, code or nonce refused
    │   ├── StalePolicy             (ValueError)   a policy update not based on the current version
    │   ├── IntegrityError          (ValueError)   ciphertext tampered, reordered, truncated or swapped
    │   │   └── ChecksumMismatch                   a plaintext LTS chunk changed, cut short or replaced
    │   └── AuditLogTampered        (ValueError)   an audit record edited, removed or reordered
    ├── StateError                                 shared objects of xtremehub.state
    │   ├── StateUnavailable        (ConnectionError)  node service unreachable, or gone with its objects
    │   ├── StateNotFound           (LookupError)  no shared object of that name (say, after a restart)
    │   ├── StateTypeMismatch       (TypeError)    the name holds another kind of shared object
    │   ├── BarrierBroken           (RuntimeError) a party timed out, or the barrier was aborted or reset
    │   ├── LockTimeout             (TimeoutError) a lock not acquired within its timeout
    │   └── NotLockOwner            (RuntimeError) release of a lock this client does not hold
    └── StreamError
        ├── ScopeNotFound           (LookupError)
        ├── StreamNotFound          (LookupError)
        ├── SegmentNotFound         (LookupError)
        ├── AlreadyExists           (FileExistsError)  scope, stream, reader group, checkpoint
        ├── SegmentSealed                              append to a sealed segment / stream
        ├── SegmentTruncated        (LookupError)  read below the truncation point
        ├── ConditionalCheckFailed                 expected offset differs
        ├── EventTooLarge           (ValueError)   event over 8 MiB
        ├── TransactionFailed                      commit after abort/timeout
        ├── DataDirLocked           (RuntimeError) another process owns the data directory
        ├── InvalidOffset           (ValueError)   offset past the end of a segment
        ├── StoreClosed             (RuntimeError) segment store closed or refusing writes
        ├── BackPressure            (TimeoutError) memory and disk budgets exhausted
        │   └── EventNumberGap                     an earlier event of the writer is not stored yet
        ├── ProtocolError           (ValueError)   malformed frame on the wire
        ├── InvalidStreamArgument   (ValueError)   bad name, policy, cut or position
        │   └── HistoryNotTiered    (TimeoutError) bytes before a cut not all in LTS yet: retry later
        ├── ReaderGroupNotFound     (LookupError)
        ├── ReaderGroupReset                       the group was reset: recreate the reader
        ├── CheckpointNotFound      (LookupError)
        ├── CheckpointFailed                       another in flight, cancelled, not completed
        │   └── CheckpointTimeout   (TimeoutError) not every reader recorded in time
        ├── ServerUnavailable       (ConnectionError)  stream server unreachable
        └── NotSupported            (NotImplementedError)  operation a backend cannot map (JetStream)

Vendor errors (botocore, zlib, indexed_gzip, OS) are translated at one boundary per backend and
chained with ``raise ... from exc``; messages name the URL, key and byte range.

Example:
    >>> from xtremehub.errors import ObjectNotFound
    >>> err = ObjectNotFound("mem://b/k", detail="no such key")
    >>> isinstance(err, FileNotFoundError), str(err)
    (True, 'mem://b/k: no such key')
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ActionError",
    "ActionFailed",
    "ActionMemoryExceeded",
    "ActionTimeout",
    "AlreadyExists",
    "AuditLogTampered",
    "AuthenticationFailed",
    "BackPressure",
    "BarrierBroken",
    "BucketNotFound",
    "CatalogError",
    "CatalogUnavailable",
    "CheckpointFailed",
    "CheckpointNotFound",
    "CheckpointTimeout",
    "ChecksumMismatch",
    "ComputeError",
    "ConditionalCheckFailed",
    "ConfigError",
    "ConnectorError",
    "CorruptData",
    "DataDirLocked",
    "DatasetNotFound",
    "DuplicateSequence",
    "EventNumberGap",
    "EventTooLarge",
    "ExecutorClosed",
    "Forbidden",
    "HistoryNotTiered",
    "InfeasiblePlan",
    "IntegrityError",
    "InvalidAction",
    "InvalidMetadata",
    "InvalidOffset",
    "InvalidRange",
    "InvalidStreamArgument",
    "KeyReleaseDenied",
    "LockTimeout",
    "MalformedRecord",
    "MismatchedPairs",
    "MissingDependency",
    "NotLockOwner",
    "NotPreprocessed",
    "NotSupported",
    "ObjectNotFound",
    "OptimizerError",
    "PluginNotFound",
    "PreconditionFailed",
    "PreviewUnavailable",
    "ProtocolError",
    "ReaderGroupNotFound",
    "ReaderGroupReset",
    "ScopeNotFound",
    "SecurityError",
    "SegmentNotFound",
    "SegmentSealed",
    "SegmentTruncated",
    "ServerUnavailable",
    "StaleIndex",
    "StalePolicy",
    "StateError",
    "StateNotFound",
    "StateTypeMismatch",
    "StateUnavailable",
    "StorageError",
    "StorageUnavailable",
    "StoreClosed",
    "StreamError",
    "StreamNotFound",
    "TaskError",
    "TaskTimeout",
    "TelemetryCorrupt",
    "TierFull",
    "TransactionFailed",
    "TruncatedData",
    "UnsafeURL",
    "UnsupportedData",
    "UnsupportedURL",
    "WorkerDied",
    "XHubError",
]


class XHubError(Exception):
    """Base class of every error XtremeHub raises on purpose."""


class ConfigError(XHubError, ValueError):
    """A setting, config file or ``XHUB_*`` variable is invalid."""


class PluginNotFound(XHubError, ValueError):
    """A plugin name (backend, store scheme, format) is not registered."""


class MissingDependency(XHubError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class StorageError(XHubError, OSError):
    """An object-storage operation failed.

    Attributes:
        url: the object (or bucket/prefix) URL the operation was about.
    """

    default_detail = "storage operation failed"

    def __init__(self, url: str, detail: str | None = None) -> None:
        self.url = url
        self.detail = detail or self.default_detail
        super().__init__(f"{url}: {self.detail}")

    def __reduce__(self) -> tuple[object, ...]:
        # OSError pickles its args positionally; keep our two fields instead.
        return (type(self), (self.url, self.detail))


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object does not exist."""

    default_detail = "object not found"


class BucketNotFound(ObjectNotFound):
    """The bucket (or local root directory) does not exist."""

    default_detail = "bucket not found"


class AccessDenied(StorageError, PermissionError):
    """The credentials do not allow the operation."""

    default_detail = "access denied"


class InvalidRange(StorageError, ValueError):
    """A byte range starts past the end of the object or is malformed."""

    default_detail = "invalid byte range"


class UnsupportedURL(StorageError, ValueError):
    """The URL scheme has no registered store, or the URL is malformed."""

    default_detail = "unsupported URL"


class UnsafeURL(UnsupportedURL):
    """The URL's path climbs out of where it points (``..`` segments, encoded or not): refused."""

    default_detail = "path traversal refused"


class StorageUnavailable(StorageError, ConnectionError):
    """The store could not be reached after bounded retries (timeout, refused, 5xx)."""

    default_detail = "storage unavailable"


class TierFull(StorageError, TimeoutError):
    """Back pressure of the ephemeral store: Tier 0 (memory + node disk) is over its thresholds
    and cannot spill (the persistency tier is unavailable or none is configured).

    Retry later: writes are accepted again once spilling frees space.
    """

    default_detail = "ephemeral Tier 0 full: over its memory and disk thresholds and unable to spill"


class ActionError(StorageError):
    """A storage action (code registered on a prefix of the ephemeral store) failed.

    Attributes:
        remote_traceback: the traceback printed in the action's worker process ('' if none).
            On the wire it travels inside ``detail``, after a ``--- remote traceback ---`` line.
    """

    default_detail = "storage action failed"
    _MARK = "\n--- remote traceback ---\n"

    def __init__(self, url: str, detail: str | None = None, remote_traceback: str = "") -> None:
        detail = detail or self.default_detail
        if remote_traceback:
            detail = f"{detail}{self._MARK}{remote_traceback}"
        self.remote_traceback = detail.split(self._MARK, 1)[1] if self._MARK in detail else ""
        super().__init__(url, detail)


class InvalidAction(ActionError, ValueError):
    """An action cannot be registered: its function does not pickle or does not load in an
    action worker, the prefix or target key is malformed, or the reducer is unknown."""

    default_detail = "invalid storage action"


class ActionFailed(ActionError):
    """The action raised an exception, returned something other than bytes, or its worker
    process died (a crash, a signal); ``remote_traceback`` holds what the worker printed."""

    default_detail = "storage action raised an exception"


class ActionTimeout(ActionError, TimeoutError):
    """The action ran longer than its time limit; its worker process was killed."""

    default_detail = "storage action ran past its time limit"


class ActionMemoryExceeded(ActionError, MemoryError):
    """The action tried to use more memory than its limit allows (``RLIMIT_AS`` in its worker)."""

    default_detail = "storage action went over its memory limit"


class ComputeError(XHubError):
    """A task or executor failed."""


class TaskError(ComputeError):
    """A task raised an exception that could not be sent back as itself.

    Attributes:
        type_name: qualified name of the remote exception type.
        remote_traceback: the traceback text printed on the worker.
    """

    def __init__(self, message: str, type_name: str = "", remote_traceback: str = "") -> None:
        self.type_name = type_name
        self.remote_traceback = remote_traceback
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.args[0], self.type_name, self.remote_traceback))


class WorkerDied(ComputeError):
    """The process running a task died (killed, crashed, out of memory)."""


class TaskTimeout(ComputeError, TimeoutError):
    """A task ran longer than its time limit and was stopped."""


class ExecutorClosed(ComputeError, RuntimeError):
    """Work was submitted to an executor that is closed."""


class ConnectorError(XHubError):
    """A connector could not index, partition or read an object."""


class CorruptData(ConnectorError, ValueError):
    """The object's bytes are not valid for its format (bad compression, malformed record).

    Attributes:
        url: the object.
        offset: where the problem was found (see ``offset_kind``).
        offset_kind: ``"compressed"`` or ``"uncompressed"`` byte offset, or ``"record"`` number.
    """

    def __init__(self, url: str, offset: int, detail: str, offset_kind: str = "compressed") -> None:
        self.url, self.offset, self.detail, self.offset_kind = url, offset, detail, offset_kind
        super().__init__(f"{url}: {detail} (at {offset_kind} offset {offset})")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.url, self.offset, self.detail, self.offset_kind))


class TruncatedData(CorruptData):
    """The object ends before its format says it should."""


class MalformedRecord(CorruptData):
    """A record (FASTQ, FASTA, VCF line ...) breaks its format's structure."""


class MismatchedPairs(CorruptData):
    """Two paired-end FASTQ files are not in step: different read counts, or read ``offset_kind``
    ``"record"`` ``offset`` has different names in the two files (``url`` names the second file)."""


class DuplicateSequence(CorruptData):
    """A reference FASTA names two sequences alike: alignments and calls could not tell them apart."""


class StaleIndex(ConnectorError):
    """The object changed since its index was built, or the index has an older or unknown
    layout; run ``preprocess()`` again (an index is never misread)."""


class NotPreprocessed(ConnectorError):
    """``partition()`` needs an index: run ``preprocess()`` first."""


class UnsupportedData(ConnectorError, ValueError):
    """The object is valid but uses a variant of its format the connector cannot read
    (for example a LAZ file from LASzip 1.x, which has no chunk table); the message says which.

    Attributes:
        url: the object.
        offset: where the variant is declared (byte offset).
    """

    def __init__(self, url: str, offset: int, detail: str) -> None:
        self.url, self.offset, self.detail = url, offset, detail
        super().__init__(f"{url}: {detail} (at byte {offset})")

    def __reduce__(self) -> tuple[object, ...]:  # raised on workers: must survive pickling
        return (type(self), (self.url, self.offset, self.detail))


# --- optimizer ------------------------------------------------------------------------------


class OptimizerError(XHubError):
    """The resource optimizer cannot learn from its telemetry or cannot plan."""


class TelemetryCorrupt(OptimizerError, ValueError):
    """A telemetry file is empty or one of its lines is not a valid record.

    Attributes:
        path: the file (or URL).
        line: 1-based line number (0: the file as a whole, e.g. empty).
        detail: what is wrong.
    """

    def __init__(self, path: str, line: int, detail: str) -> None:
        self.path, self.line, self.detail = path, line, detail
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.line, self.detail))


class InfeasiblePlan(OptimizerError, ValueError):
    """No plan satisfies the constraints (a memory limit below what the smallest slice needs)."""


# --- catalog (the Data Broker) ----------------------------------------------------------------


class CatalogError(XHubError):
    """The data catalog refused or could not carry out a request."""


class DatasetNotFound(CatalogError, LookupError):
    """No dataset, version, job or access request with that id.

    Example:
        >>> str(DatasetNotFound("ds-42"))
        "no such dataset: 'ds-42'"
    """

    def __init__(self, ident: str, kind: str = "dataset") -> None:
        self.ident, self.kind = ident, kind
        super().__init__(f"no such {kind}: {ident!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.ident, self.kind))


class InvalidMetadata(CatalogError, ValueError):
    """A field of a dataset, search or access request is unknown, malformed or too long.

    Attributes:
        field: the offending field (dotted path for nested ones).
        detail: what is wrong.
    """

    def __init__(self, field: str, detail: str) -> None:
        self.field, self.detail = field, detail
        super().__init__(f"{field}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.field, self.detail))


class PreconditionFailed(CatalogError, ValueError):
    """An update named an etag (``If-Match``) that is no longer current: refused, never overwritten.

    Attributes:
        ident: the record; expected: the etag the caller sent; current: the record's etag now.
    """

    def __init__(self, ident: str, expected: str, current: str) -> None:
        self.ident, self.expected, self.current = ident, expected, current
        super().__init__(f"{ident}: etag {expected!r} is not current ({current!r}); re-read and retry")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.ident, self.expected, self.current))


class CatalogUnavailable(CatalogError, ConnectionError):
    """The catalog's database cannot be reached (a REST request gets 503; nothing was half-written)."""


class PreviewUnavailable(CatalogError, ValueError):
    """A dataset has no preview: its format has no picture, or the object holds nothing to draw.

    Example:
        >>> str(PreviewUnavailable("s3://b/ref.fa", "fasta"))
        "s3://b/ref.fa: no preview for format 'fasta'"
    """

    def __init__(self, url: str, fmt: str | None, detail: str = "") -> None:
        self.url, self.fmt, self.detail = url, fmt, detail
        super().__init__(f"{url}: {detail or f'no preview for format {fmt!r}'}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.url, self.fmt, self.detail))


# --- security -------------------------------------------------------------------------------


class SecurityError(XHubError):
    """Authentication, authorisation, key release, encryption or audit failed.

    Messages name what failed (the claim, the policy, the object and chunk, the audit record)
    and never carry a token, a key or any other secret.
    """


class AuthenticationFailed(SecurityError, PermissionError):
    """No token, or one that is malformed, forged, expired, not yet valid, or from an
    issuer or for an audience that is not trusted (HTTP 401)."""


class Forbidden(SecurityError, PermissionError):
    """The identity is known but the policy denies this action on this resource (HTTP 403)."""


class KeyReleaseDenied(SecurityError, PermissionError):
    """The key service refused to release a key: identity, purpose, code measurement,
    job binding or nonce did not satisfy the dataset's key policy."""


class StalePolicy(SecurityError, ValueError):
    """A policy update names a predecessor that is not the current version."""


class IntegrityError(SecurityError, ValueError):
    """Encrypted data failed authentication: tampered, reordered, truncated, or another
    object's ciphertext; the message names the object and chunk."""


class ChecksumMismatch(IntegrityError):
    """A plaintext LTS chunk object's bytes differ from the checksums written with it (a bit
    flip, an object cut short, grown or replaced); the message names the segment when known,
    the object and the offset.

    Attributes:
        url: the chunk object.
        offset: the object byte offset of the failing block (or where a short object ends).
        segment: the segment read, and ``segment_offset`` the segment offset of ``offset``
            (``""`` and ``-1`` when the reader does not know them).
    """

    def __init__(self, message: str, *, url: str = "", offset: int = -1, segment: str = "", segment_offset: int = -1):
        super().__init__(message)
        self.url, self.offset, self.segment, self.segment_offset = url, offset, segment, segment_offset

    def __reduce__(self) -> tuple[object, ...]:
        fields = {
            "url": self.url,
            "offset": self.offset,
            "segment": self.segment,
            "segment_offset": self.segment_offset,
        }
        return (_rebuild_checksum_mismatch, (str(self), fields))


def _rebuild_checksum_mismatch(message: str, fields: dict[str, object]) -> ChecksumMismatch:
    return ChecksumMismatch(message, **fields)  # type: ignore[arg-type]


class AuditLogTampered(SecurityError, ValueError):
    """An audit record was edited, removed or reordered; the message names the first bad record."""


# --- streams ------------------------------------------------------------------------------


class StreamError(XHubError):
    """The stream store refused or could not complete an operation."""


class ScopeNotFound(StreamError, LookupError):
    """No such scope."""


class StreamNotFound(StreamError, LookupError):
    """No such stream in the scope."""


class SegmentNotFound(StreamError, LookupError):
    """No such segment (never created, or deleted)."""


class AlreadyExists(StreamError, FileExistsError):
    """A scope, stream, reader group or checkpoint with this name exists."""


class SegmentSealed(StreamError):
    """The segment (or stream) is sealed: no more appends."""


class SegmentTruncated(StreamError, LookupError):
    """The requested offset is below the segment's truncation point."""


class ConditionalCheckFailed(StreamError):
    """A conditional append found the segment at a different offset than expected."""


class EventTooLarge(StreamError, ValueError):
    """An event is larger than the maximum event size (8 MiB)."""


class TransactionFailed(StreamError):
    """A transaction could not be committed (aborted, timed out, or its stream was sealed)."""


class DataDirLocked(StreamError, RuntimeError):
    """Another process owns this data directory."""


class BackPressure(StreamError, TimeoutError):
    """Memory and disk budgets are exhausted while LTS is unreachable; nothing was written.

    Retry later: the store accepts appends again as soon as the backlog moves to LTS.
    """


class EventNumberGap(BackPressure):
    """A writer's append would be stored before an earlier event it sent to that segment; nothing was written.

    The append named the writer's previous event number on the segment
    (``SegmentBatch.previous_event_number``) and the store holds a lower one: the earlier
    append was refused (say, for back pressure) or has not arrived yet. Stored first, the later
    one would make the earlier one's re-send count as a duplicate (lost). Re-send the refused
    events in event-number order (the stream writer does).
    """


class ProtocolError(StreamError, ValueError):
    """A malformed or unexpected frame on the stream server's wire protocol."""


# --- streams: segment store ----------------------------------------------------------------


class InvalidOffset(StreamError, ValueError):
    """An offset past the end of a segment (read, truncate) or otherwise out of range."""


class StoreClosed(StreamError, RuntimeError):
    """The segment store is closed, or stopped accepting writes after a local disk failure."""


# --- streams: controller and client API (streamapi) -----------------------------------------


class InvalidStreamArgument(StreamError, ValueError):
    """A bad scope/stream/reader-group name, scaling or retention policy, stream cut or position."""


class HistoryNotTiered(InvalidStreamArgument, TimeoutError):
    """A stream's bytes before a cut did not all reach long-term storage within the wait: retry later."""


class ReaderGroupNotFound(StreamError, LookupError):
    """No such reader group in the scope."""


class ReaderGroupReset(StreamError):
    """The reader group was reset (to a checkpoint or cut) after this reader joined: create a new reader."""


class CheckpointNotFound(StreamError, LookupError):
    """No such checkpoint in the reader group (never initiated, cancelled, or deleted)."""


class CheckpointFailed(StreamError):
    """A checkpoint could not be taken: another one is in flight, it was cancelled, or it is not complete."""


class CheckpointTimeout(CheckpointFailed, TimeoutError):
    """Not every reader of the group recorded the checkpoint in time; the checkpoint was cancelled."""


# --- shared state (xtremehub.state) ----------------------------------------------------------


class StateError(XHubError):
    """A shared object of :mod:`xtremehub.state` could not be used as asked."""


class StateUnavailable(StateError, ConnectionError):
    """The node service holding the shared objects cannot be reached, or died (its objects died with it)."""


class StateNotFound(StateError, LookupError):
    """No shared object has that name (a handle attached after the service restarted, or after ``delete``)."""


class StateTypeMismatch(StateError, TypeError):
    """The name already holds another kind of shared object (a ``Counter`` attached as a ``Dict``)."""


class BarrierBroken(StateError, RuntimeError):
    """A party of the barrier timed out, or the barrier was aborted or reset while parties waited."""


class LockTimeout(StateError, TimeoutError):
    """A shared lock or semaphore was not acquired within its timeout."""


class NotLockOwner(StateError, RuntimeError):
    """Release of a shared lock that this client does not hold."""


# --- streams: server and remote client (server) ---------------------------------------------


class ServerUnavailable(StreamError, ConnectionError):
    """The stream server cannot be reached (refused, closed, or not back within the reconnect timeout)."""


class NotSupported(StreamError, NotImplementedError):
    """This stream backend cannot map the operation; the message names the backend and the limit."""
