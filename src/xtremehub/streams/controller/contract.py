"""The controller's interface: everything about streams except the bytes.

The controller owns scopes, streams and their segments (with the successor/predecessor graph
built by scaling), transactions, reader-group state, stream cuts and retention. The client
layer (writers, readers, reader groups, byte streams) talks only to this interface and to
:class:`~xtremehub.streams.segmentstore.SegmentStoreContract`, so the same client code runs
embedded (the in-process :class:`~xtremehub.streams.controller.Controller`) or remote (a proxy
of this interface over the stream server's protocol).

Rules every method follows, so it can be called remotely by name:

- arguments and results are plain data: ``str``/``int``/``float``/``bool``/``None``, lists,
  dicts, tuples and the frozen dataclasses of :mod:`xtremehub.streams.controller.model`;
- the only errors raised are those of :mod:`xtremehub.errors` (``ScopeNotFound``,
  ``StreamNotFound``, ``SegmentNotFound``, ``AlreadyExists``, ``SegmentSealed``,
  ``TransactionFailed``, ``ReaderGroupNotFound``, ``InvalidStreamArgument`` ...).

Segment names are ``"<scope>/<stream>/<number>.#epoch.<epoch>"``; transaction segments are
``"<segment>#txn.<txn id>"``. Times are wall-clock seconds (``time.time()``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from xtremehub.streams.controller.model import (
    Checkpoint,
    ReaderAssignment,
    ReaderGroupConfig,
    ReaderGroupState,
    SegmentRange,
    StreamConfig,
    StreamCut,
    StreamInfo,
    SuccessorInfo,
    TxnInfo,
)

__all__ = ["ControllerContract"]


class ControllerContract(ABC):
    """Scopes, streams, segments, scaling, transactions, reader groups, cuts and retention."""

    # -- scopes ---------------------------------------------------------------------------
    @abstractmethod
    def create_scope(self, scope: str) -> bool:
        """Create a scope; False (no error) when it exists."""

    @abstractmethod
    def delete_scope(self, scope: str) -> bool:
        """Delete an empty scope (``InvalidStreamArgument`` if it has streams); False if absent."""

    @abstractmethod
    def list_scopes(self) -> list[str]:
        """Scope names, sorted."""

    # -- streams --------------------------------------------------------------------------
    @abstractmethod
    def create_stream(self, scope: str, stream: str, config: StreamConfig) -> bool:
        """Create a stream with ``config.scaling.min_segments`` segments; False when it exists."""

    @abstractmethod
    def update_stream(self, scope: str, stream: str, config: StreamConfig) -> None:
        """Replace a stream's policies (the segments change only by later scaling)."""

    @abstractmethod
    def list_streams(self, scope: str) -> list[str]:
        """Stream names in ``scope``, sorted."""

    @abstractmethod
    def get_stream(self, scope: str, stream: str) -> StreamInfo:
        """The stream's policies, state, epoch and active segments."""

    @abstractmethod
    def seal_stream(self, scope: str, stream: str) -> None:
        """Seal every active segment; writes fail with ``SegmentSealed`` afterwards. Idempotent."""

    @abstractmethod
    def delete_stream(self, scope: str, stream: str) -> None:
        """Seal, then delete the stream, its segments and its open transactions."""

    # -- segments -------------------------------------------------------------------------
    @abstractmethod
    def get_active_segments(self, scope: str, stream: str) -> list[SegmentRange]:
        """The segments currently accepting writes, ordered by key range."""

    @abstractmethod
    def get_successors(self, scope: str, stream: str, segment: str) -> list[SuccessorInfo]:
        """The segments that replaced ``segment`` when it was sealed by scaling (empty if none)."""

    @abstractmethod
    def scale_stream(
        self, scope: str, stream: str, seal: list[str], new_ranges: list[tuple[float, float]]
    ) -> list[SegmentRange]:
        """Replace the active segments ``seal`` by segments owning ``new_ranges`` (same key space).

        The new epoch is durable before the old segments are sealed; returns the new segments.
        """

    @abstractmethod
    def report_traffic(self, scope: str, stream: str, traffic: dict[str, tuple[int, int]]) -> None:
        """Writers report ``segment -> (events, bytes)`` written since their last report (auto-scaling)."""

    # -- cuts and truncation --------------------------------------------------------------
    @abstractmethod
    def get_head_cut(self, scope: str, stream: str) -> StreamCut:
        """The first readable position of the stream (moves forward with truncation)."""

    @abstractmethod
    def get_tail_cut(self, scope: str, stream: str) -> StreamCut:
        """The current end of the stream (active segments at their lengths)."""

    @abstractmethod
    def truncate_stream(self, scope: str, stream: str, cut: StreamCut) -> None:
        """Drop everything before ``cut``: segments wholly before it are deleted."""

    # -- transactions ---------------------------------------------------------------------
    @abstractmethod
    def begin_transaction(self, scope: str, stream: str, lease: float) -> TxnInfo:
        """Open a transaction with one transaction segment per active segment; aborted after ``lease`` s."""

    @abstractmethod
    def ping_transaction(self, txn_id: str, lease: float) -> TxnInfo:
        """Extend an open transaction's lease to ``lease`` seconds from now."""

    @abstractmethod
    def commit_transaction(self, txn_id: str) -> TxnInfo:
        """Merge every transaction segment into its parent (``TransactionFailed`` if not open)."""

    @abstractmethod
    def abort_transaction(self, txn_id: str) -> TxnInfo:
        """Drop an open transaction's segments. Idempotent on aborted ones."""

    @abstractmethod
    def get_transaction(self, txn_id: str) -> TxnInfo:
        """A transaction's state (``TransactionFailed`` when unknown)."""

    # -- reader groups --------------------------------------------------------------------
    @abstractmethod
    def create_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> bool:
        """Create a group positioned at its start; False (no error) when it exists."""

    @abstractmethod
    def delete_reader_group(self, scope: str, group: str) -> None:
        """Forget a group and its positions."""

    @abstractmethod
    def list_reader_groups(self, scope: str) -> list[str]:
        """Group names in ``scope``, sorted."""

    @abstractmethod
    def get_reader_group(self, scope: str, group: str) -> ReaderGroupState:
        """Readers, segments, owners and positions."""

    @abstractmethod
    def reset_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> None:
        """Reposition a group at ``config``'s start (e.g. the cuts of a checkpoint) and take its new config.

        Every reader is dropped and a pending checkpoint cancelled; completed checkpoints are kept.
        Readers that joined before get ``ReaderGroupReset`` at their next sync.
        """

    @abstractmethod
    def sync_reader(
        self,
        scope: str,
        group: str,
        reader: str,
        positions: dict[str, int],
        completed: list[str],
        checkpoint: str | None = None,
        generation: int | None = None,
    ) -> ReaderAssignment:
        """A reader's heartbeat: store its positions, mark ``completed`` segments read to the end
        (their successors become readable once all predecessors are), then rebalance.

        A reader not yet online joins the group; one that is online again after a crash gets back
        its segments at their last stored positions. ``checkpoint`` names a checkpoint whose marker
        the reader returned at ``positions`` (recorded now); ``generation`` is the one the reader
        joined (``ReaderGroupReset`` when the group was reset since; None when joining). A reader
        that still has to record a checkpoint is not rebalanced.
        """

    @abstractmethod
    def reader_offline(self, scope: str, group: str, reader: str, positions: dict[str, int] | None) -> None:
        """Remove a reader; its segments go back to the pool at ``positions`` (or the last stored ones)."""

    @abstractmethod
    def get_reader_group_cuts(self, scope: str, group: str) -> list[StreamCut]:
        """The group's stored positions as one stream cut per stream (a checkpoint to restart from)."""

    # -- checkpoints ----------------------------------------------------------------------
    @abstractmethod
    def initiate_checkpoint(self, scope: str, group: str, name: str, timeout: float) -> Checkpoint:
        """Start a checkpoint every online reader must record within ``timeout`` seconds.

        ``AlreadyExists`` when the group has a checkpoint of that name; ``CheckpointFailed`` while
        another one is pending. Completed at once when the group has no online reader.
        """

    @abstractmethod
    def get_checkpoint(self, scope: str, group: str, name: str) -> Checkpoint:
        """A checkpoint's state (``CheckpointNotFound`` when unknown, cancelled or deleted)."""

    @abstractmethod
    def list_checkpoints(self, scope: str, group: str) -> list[Checkpoint]:
        """The group's checkpoints, pending and completed, oldest first."""

    @abstractmethod
    def cancel_checkpoint(self, scope: str, group: str, name: str) -> bool:
        """Drop a pending checkpoint; False when it is not pending (completed, or gone)."""

    @abstractmethod
    def delete_checkpoint(self, scope: str, group: str, name: str) -> bool:
        """Forget a checkpoint, pending or completed; False when there was none."""

    # -- background duties ----------------------------------------------------------------
    @abstractmethod
    def run_maintenance(self) -> None:
        """One round of auto-scaling, transaction lease expiry, retention and reader timeouts."""

    @abstractmethod
    def close(self) -> None:
        """Release local resources (a database, a connection). Not a remote operation."""
