"""The controller of a stream server, behind the same contract as the embedded one."""

from __future__ import annotations

from typing import Any

from xtremehub.streams.controller.contract import ControllerContract
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
from xtremehub.streams.remote.connection import ClientConfig, Connection, connect
from xtremehub.streams.remote.store import remote_call
from xtremehub.streams.wire import CONTROLLER_TARGET

__all__ = ["CONTROLLER_NOT_RETRIABLE", "RemoteController"]

#: Controller methods a reconnecting client must not send twice (their effect or answer would change).
CONTROLLER_NOT_RETRIABLE = frozenset(
    {
        "create_scope",
        "delete_scope",
        "create_stream",
        "delete_stream",
        "scale_stream",
        "begin_transaction",
        "commit_transaction",
        "abort_transaction",
        "create_reader_group",
        "delete_reader_group",
        "reader_offline",
        "reset_reader_group",
        "initiate_checkpoint",
    }
)


class RemoteController(ControllerContract):
    """A :class:`ControllerContract` proxy over TCP: each method is one CALL to the server.

    Example (see ``tests/streams/server`` for a running server)::

        controller = RemoteController("tcp://127.0.0.1:9090")
        controller.create_scope("sensors")
    """

    def __init__(
        self, url: str | Connection, config: ClientConfig | None = None, *, own_connection: bool | None = None
    ) -> None:
        self.connection, self._owns = connect(url, config, own_connection)

    def _call(self, method: str, *args: Any) -> Any:
        retriable = method not in CONTROLLER_NOT_RETRIABLE
        return remote_call(self.connection, CONTROLLER_TARGET, method, list(args), retriable=retriable)

    def close(self) -> None:
        """Close the connection (when this proxy opened it)."""
        if self._owns:
            self.connection.close()

    def create_scope(self, scope: str) -> bool:
        result: bool = self._call("create_scope", scope)
        return result

    def delete_scope(self, scope: str) -> bool:
        result: bool = self._call("delete_scope", scope)
        return result

    def list_scopes(self) -> list[str]:
        result: list[str] = self._call("list_scopes")
        return result

    def create_stream(self, scope: str, stream: str, config: StreamConfig) -> bool:
        result: bool = self._call("create_stream", scope, stream, config)
        return result

    def update_stream(self, scope: str, stream: str, config: StreamConfig) -> None:
        self._call("update_stream", scope, stream, config)

    def list_streams(self, scope: str) -> list[str]:
        result: list[str] = self._call("list_streams", scope)
        return result

    def get_stream(self, scope: str, stream: str) -> StreamInfo:
        result: StreamInfo = self._call("get_stream", scope, stream)
        return result

    def seal_stream(self, scope: str, stream: str) -> None:
        self._call("seal_stream", scope, stream)

    def delete_stream(self, scope: str, stream: str) -> None:
        self._call("delete_stream", scope, stream)

    def get_active_segments(self, scope: str, stream: str) -> list[SegmentRange]:
        result: list[SegmentRange] = self._call("get_active_segments", scope, stream)
        return result

    def get_successors(self, scope: str, stream: str, segment: str) -> list[SuccessorInfo]:
        result: list[SuccessorInfo] = self._call("get_successors", scope, stream, segment)
        return result

    def scale_stream(
        self, scope: str, stream: str, seal: list[str], new_ranges: list[tuple[float, float]]
    ) -> list[SegmentRange]:
        result: list[SegmentRange] = self._call("scale_stream", scope, stream, seal, new_ranges)
        return result

    def report_traffic(self, scope: str, stream: str, traffic: dict[str, tuple[int, int]]) -> None:
        self._call("report_traffic", scope, stream, traffic)

    def get_head_cut(self, scope: str, stream: str) -> StreamCut:
        result: StreamCut = self._call("get_head_cut", scope, stream)
        return result

    def get_tail_cut(self, scope: str, stream: str) -> StreamCut:
        result: StreamCut = self._call("get_tail_cut", scope, stream)
        return result

    def truncate_stream(self, scope: str, stream: str, cut: StreamCut) -> None:
        self._call("truncate_stream", scope, stream, cut)

    def begin_transaction(self, scope: str, stream: str, lease: float) -> TxnInfo:
        result: TxnInfo = self._call("begin_transaction", scope, stream, lease)
        return result

    def ping_transaction(self, txn_id: str, lease: float) -> TxnInfo:
        result: TxnInfo = self._call("ping_transaction", txn_id, lease)
        return result

    def commit_transaction(self, txn_id: str) -> TxnInfo:
        result: TxnInfo = self._call("commit_transaction", txn_id)
        return result

    def abort_transaction(self, txn_id: str) -> TxnInfo:
        result: TxnInfo = self._call("abort_transaction", txn_id)
        return result

    def get_transaction(self, txn_id: str) -> TxnInfo:
        result: TxnInfo = self._call("get_transaction", txn_id)
        return result

    def create_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> bool:
        result: bool = self._call("create_reader_group", scope, group, config)
        return result

    def delete_reader_group(self, scope: str, group: str) -> None:
        self._call("delete_reader_group", scope, group)

    def list_reader_groups(self, scope: str) -> list[str]:
        result: list[str] = self._call("list_reader_groups", scope)
        return result

    def get_reader_group(self, scope: str, group: str) -> ReaderGroupState:
        result: ReaderGroupState = self._call("get_reader_group", scope, group)
        return result

    def reset_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> None:
        self._call("reset_reader_group", scope, group, config)

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
        result: ReaderAssignment = self._call(
            "sync_reader", scope, group, reader, positions, completed, checkpoint, generation
        )
        return result

    def reader_offline(self, scope: str, group: str, reader: str, positions: dict[str, int] | None) -> None:
        self._call("reader_offline", scope, group, reader, positions)

    def get_reader_group_cuts(self, scope: str, group: str) -> list[StreamCut]:
        result: list[StreamCut] = self._call("get_reader_group_cuts", scope, group)
        return result

    def initiate_checkpoint(self, scope: str, group: str, name: str, timeout: float) -> Checkpoint:
        result: Checkpoint = self._call("initiate_checkpoint", scope, group, name, timeout)
        return result

    def get_checkpoint(self, scope: str, group: str, name: str) -> Checkpoint:
        result: Checkpoint = self._call("get_checkpoint", scope, group, name)
        return result

    def list_checkpoints(self, scope: str, group: str) -> list[Checkpoint]:
        result: list[Checkpoint] = self._call("list_checkpoints", scope, group)
        return result

    def cancel_checkpoint(self, scope: str, group: str, name: str) -> bool:
        result: bool = self._call("cancel_checkpoint", scope, group, name)
        return result

    def delete_checkpoint(self, scope: str, group: str, name: str) -> bool:
        result: bool = self._call("delete_checkpoint", scope, group, name)
        return result

    def run_maintenance(self) -> None:
        self._call("run_maintenance")
