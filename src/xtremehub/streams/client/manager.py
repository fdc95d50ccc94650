"""``StreamManager``: the entry point of the stream client API (after the Pravega Python client).

Embedded, in-process, no services::

    from xtremehub.streams import StreamManager, ScalingPolicy

    with StreamManager.embedded("/data/streams") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "frames", scaling_policy=ScalingPolicy.fixed(4))
        with manager.create_writer("lab", "frames") as writer:
            writer.write_event(b"...", routing_key="camera-1")
        group = manager.create_reader_group("viewers", "lab", ["frames"], start="head")
        reader = group.create_reader("r1")
        event = reader.read_next(timeout=1.0)

Remote (the stream server): ``StreamManager("tcp://127.0.0.1:9090")``; the same calls then go
over the network to the server's controller and segment store. On a NATS JetStream cluster:
``StreamManager("nats://host1:4222,host2:4222,host3:4222")`` (see :mod:`xtremehub.streams.jetstream`).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from xtremehub.errors import InvalidStreamArgument, MissingDependency
from xtremehub.security.identity import TokenSource
from xtremehub.streams.client.bytestream import ByteStream
from xtremehub.streams.client.reader import ReaderGroup, checkpoint_config
from xtremehub.streams.client.sealing import (
    EventOpener,
    SealingTransactionWriter,
    SealingWriter,
    StreamSealer,
    new_stream_encryption,
    resolve_keys,
)
from xtremehub.streams.client.transactions import TransactionalEventStreamWriter
from xtremehub.streams.client.writer import EventStreamWriter, WriterConfig
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import (
    Checkpoint,
    ReaderGroupConfig,
    RetentionPolicy,
    ScalingPolicy,
    StreamConfig,
    StreamCut,
    StreamInfo,
)
from xtremehub.streams.segmentstore.contract import SegmentStoreContract

if TYPE_CHECKING:
    from xtremehub.security.keys import KeyEncryptionKeys

__all__ = ["StreamManager"]

log = logging.getLogger(__name__)

#: Module and function that open a remote connection: ``connect(url) -> (controller, store)``.
REMOTE_CONNECT = "xtremehub.streams.remote:connect_server"
#: The same for ``nats://`` URLs: the NATS JetStream backend.
JETSTREAM_CONNECT = "xtremehub.streams.jetstream:connect_jetstream"

Start = Literal["head", "tail"] | StreamCut | Sequence[StreamCut] | Checkpoint


class StreamManager:
    """Scopes, streams, writers, reader groups and byte streams over a controller and a segment store.

    ``StreamManager(url)`` connects to a stream server, or to a NATS JetStream cluster for a
    ``nats://`` URL (``token=`` a bearer token or a
    :class:`~xtremehub.security.identity.TokenProvider` such as
    :class:`~xtremehub.security.login.StoredToken`, ``tls_ca=`` the CA of a TLS server,
    ``purpose=`` the purpose of use); ``StreamManager(controller, store)`` uses
    given implementations of the two contracts; :meth:`embedded` runs both in this process.

    ``keys=`` (a key-source URL or a :class:`~xtremehub.security.keys.KeyEncryptionKeys`;
    default: the settings' ``encryption.keys``) unwraps the data keys of encrypted streams
    (``create_stream(..., encryption="<dataset>")``): their events are encrypted by writers and
    decrypted by readers here, so servers and disks only hold ciphertext.
    ``require_encryption=["scope/stream", ...]`` pins streams that must be encrypted: a server
    reporting one as plain gets :class:`~xtremehub.errors.IntegrityError`, never plaintext.
    """

    def __init__(
        self,
        target: str | ControllerContract,
        store: SegmentStoreContract | None = None,
        *,
        on_close: Sequence[Callable[[], None]] = (),
        token: TokenSource | None = None,
        tls_ca: str | None = None,
        purpose: str | None = None,
        keys: KeyEncryptionKeys | str | None = None,
        require_encryption: Sequence[str] = (),
    ) -> None:
        self._on_close = list(on_close)
        self._keys_source, self._keys = keys, None if isinstance(keys, str) or keys is None else keys
        if isinstance(target, str):
            connector = JETSTREAM_CONNECT if target.startswith("nats://") else REMOTE_CONNECT
            module_name, _, func = connector.partition(":")
            try:
                connect = getattr(importlib.import_module(module_name), func)
            except (ImportError, AttributeError) as exc:
                raise MissingDependency(f"no stream server client available to connect to {target}") from exc
            options = {"token": token, "tls_ca": tls_ca, "purpose": purpose}
            controller, store = connect(target, **{k: v for k, v in options.items() if v is not None})
            self._on_close += [controller.close, store.close]
        else:
            controller = target
        if store is None:
            raise InvalidStreamArgument("StreamManager(controller, store): the segment store is missing")
        self.controller: ControllerContract = controller
        self.store: SegmentStoreContract = store
        self._closed = False
        self._opener = EventOpener(controller, self.keys, require_encryption)

    @classmethod
    def embedded(
        cls,
        path: str | Path,
        lts: str | None = None,
        *,
        maintenance_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        keys: KeyEncryptionKeys | str | None = None,
        **store_options: object,
    ) -> StreamManager:
        """Controller and segment store in this process, data under ``path``, LTS at the ``lts`` URL.

        ``maintenance_interval`` paces the background task doing auto-scaling, retention,
        transaction timeouts and reader timeouts; ``clock`` is the controller's time in
        seconds (leases, timeouts, retention, traffic rates: tests pass a clock they move
        by hand, such as :class:`xtremehub.testing.streams.ManualClock`); ``store_options`` are fields of
        :class:`~xtremehub.streams.segmentstore.SegmentStoreConfig` (budgets, settings ...).
        Another process using ``path`` gets ``DataDirLocked``.
        """
        from xtremehub.streams.controller import Controller
        from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = dict(store_options)
        config = SegmentStoreConfig(data_dir=root / "segments", lts_url=lts or "", **options)
        store = SegmentStore(config)
        try:
            controller = Controller(store, root / "controller.db", clock=clock)
        except BaseException:
            store.close()
            raise
        controller.start_background(maintenance_interval)
        return cls(controller, store, on_close=[controller.close, store.close], keys=keys)

    @property
    def keys_source(self) -> str | None:
        """The key-source URL given as ``keys=`` (None: an object, or the settings' default)."""
        return self._keys_source if isinstance(self._keys_source, str) else None

    def keys(self) -> KeyEncryptionKeys:
        """The KEKs that unwrap encrypted streams' data keys (opened on first use)."""
        if self._keys is None:
            self._keys = resolve_keys(self._keys_source)
        return self._keys

    def _sealer(self, scope: str, stream: str) -> StreamSealer | None:
        return self._opener.sealer(scope, stream)

    # -- scopes and streams ---------------------------------------------------------------
    def create_scope(self, scope: str) -> bool:
        """Create a scope (False when it exists)."""
        return self.controller.create_scope(scope)

    def delete_scope(self, scope: str) -> bool:
        """Delete an empty scope."""
        return self.controller.delete_scope(scope)

    def list_scopes(self) -> list[str]:
        """Scope names."""
        return self.controller.list_scopes()

    def create_stream(
        self,
        scope: str,
        stream: str,
        scaling_policy: ScalingPolicy | None = None,
        retention_policy: RetentionPolicy | None = None,
        *,
        encryption: str | None = None,
    ) -> bool:
        """Create a stream (False when it exists); default: one fixed segment, keep everything.

        ``encryption``: a dataset name: the stream gets its own data key, wrapped by that
        dataset's KEK (see :mod:`xtremehub.streams.client.sealing`); its events are encrypted by
        writers and decrypted by readers that can obtain the KEK.
        """
        sealed = new_stream_encryption(self.keys(), encryption) if encryption else None
        config = StreamConfig(scaling_policy or ScalingPolicy.fixed(1), retention_policy or RetentionPolicy(), sealed)
        return self.controller.create_stream(scope, stream, config)

    def update_stream(
        self,
        scope: str,
        stream: str,
        scaling_policy: ScalingPolicy | None = None,
        retention_policy: RetentionPolicy | None = None,
    ) -> None:
        """Change a stream's policies (arguments left None keep their value)."""
        old = self.controller.get_stream(scope, stream).config
        config = StreamConfig(scaling_policy or old.scaling, retention_policy or old.retention, old.encryption)
        self.controller.update_stream(scope, stream, config)

    def list_streams(self, scope: str) -> list[str]:
        """Stream names in ``scope``."""
        return self.controller.list_streams(scope)

    def get_stream(self, scope: str, stream: str) -> StreamInfo:
        """Policies, state and active segments."""
        return self.controller.get_stream(scope, stream)

    def seal_stream(self, scope: str, stream: str) -> None:
        """Refuse further writes; readers still read everything."""
        self.controller.seal_stream(scope, stream)

    def delete_stream(self, scope: str, stream: str) -> None:
        """Seal and delete a stream and its data."""
        self.controller.delete_stream(scope, stream)

    def get_head_cut(self, scope: str, stream: str) -> StreamCut:
        """The stream's first readable position."""
        return self.controller.get_head_cut(scope, stream)

    def get_tail_cut(self, scope: str, stream: str) -> StreamCut:
        """The stream's current end."""
        return self.controller.get_tail_cut(scope, stream)

    def truncate_stream(self, scope: str, stream: str, cut: StreamCut) -> None:
        """Drop everything before ``cut``."""
        self.controller.truncate_stream(scope, stream, cut)

    # -- writers, readers, byte streams ---------------------------------------------------
    def create_writer(
        self, scope: str, stream: str, *, writer_id: str | None = None, max_in_flight: int = 0
    ) -> EventStreamWriter:
        """An event writer; a stable ``writer_id`` makes retries after a restart exactly-once."""
        config = WriterConfig(max_in_flight=max_in_flight)
        writer = EventStreamWriter(self.controller, self.store, scope, stream, writer_id=writer_id, config=config)
        sealer = self._sealer(scope, stream)
        return writer if sealer is None else SealingWriter(writer, sealer)  # type: ignore[return-value]

    def create_transaction_writer(
        self, scope: str, stream: str, *, writer_id: str | None = None
    ) -> TransactionalEventStreamWriter:
        """A writer of transactions."""
        writer = TransactionalEventStreamWriter(self.controller, self.store, scope, stream, writer_id=writer_id)
        sealer = self._sealer(scope, stream)
        return writer if sealer is None else SealingTransactionWriter(writer, sealer)  # type: ignore[return-value]

    def create_reader_group(
        self,
        name: str,
        scope: str,
        streams: Sequence[str],
        start: Start = "head",
        *,
        reader_timeout: float = 30.0,
    ) -> ReaderGroup:
        """A reader group over ``streams`` (names in ``scope``, or ``"other-scope/stream"``).

        ``start``: ``"head"``, ``"tail"``, stream cuts (one per stream), or a completed
        :class:`~xtremehub.streams.Checkpoint` (then its streams are read, ``streams`` must name
        the same). An existing group is reopened as it is (its positions win over ``start``; use
        :meth:`ReaderGroup.reset_to_checkpoint` to move it).
        """
        qualified = tuple(s if "/" in s else f"{scope}/{s}" for s in streams)
        if isinstance(start, Checkpoint):
            config = checkpoint_config(start, reader_timeout)
            if set(config.streams) != set(qualified):
                raise InvalidStreamArgument(
                    f"reader group {scope}/{name}: checkpoint {start.name!r} covers {sorted(config.streams)}, "
                    f"not {sorted(qualified)}"
                )
        elif isinstance(start, str):
            if start not in ("head", "tail"):
                raise InvalidStreamArgument(f"reader group start {start!r}: use 'head', 'tail' or stream cuts")
            config = ReaderGroupConfig(qualified, start, (), reader_timeout)
        else:
            cuts = (start,) if isinstance(start, StreamCut) else tuple(start)
            config = ReaderGroupConfig(qualified, "cut", cuts, reader_timeout)
        self.controller.create_reader_group(scope, name, config)
        return ReaderGroup(self.controller, self.store, scope, name, opener=self._opener)

    def get_reader_group(self, name: str, scope: str) -> ReaderGroup:
        """An existing reader group (``ReaderGroupNotFound`` otherwise)."""
        return ReaderGroup(self.controller, self.store, scope, name, opener=self._opener)

    def list_reader_groups(self, scope: str) -> list[str]:
        """Reader group names in ``scope``."""
        return self.controller.list_reader_groups(scope)

    def delete_reader_group(self, name: str, scope: str) -> None:
        """Delete a reader group."""
        self.controller.delete_reader_group(scope, name)

    def create_byte_stream(self, scope: str, stream: str) -> ByteStream:
        """A byte stream, creating its one-segment stream if needed."""
        self.controller.create_stream(scope, stream, StreamConfig(ScalingPolicy.fixed(1)))
        return ByteStream(self.controller, self.store, scope, stream)

    # -- life cycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop background work and release the data directory (embedded) or the connection."""
        if self._closed:
            return
        self._closed = True
        for close in self._on_close:
            try:
                close()
            except Exception:  # close everything even when one part fails
                log.exception("closing the stream manager")

    def __enter__(self) -> StreamManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
