"""Per-stream encryption: writers encrypt events, readers decrypt them; servers see ciphertext.

A stream created with ``encryption="<dataset>"`` gets its own random AES-256 data key, stored in
the stream's configuration only *wrapped* by the dataset's key-encryption key (KEK). A writer
or reader unwraps it through its :class:`~xtremehub.security.keys.KeyEncryptionKeys` (a local
keyring, or the key service, which releases the KEK only to an identity, purpose and code its
key policy allows), so neither the stream server nor its disks, WAL or long-term storage ever
hold plaintext or a usable key.

Each event is ``XSE1 | 12-byte random nonce | AES-256-GCM(event)`` with the stream's scope,
name and the event's routing key as associated data: an event copied to another stream or
routing key fails authentication (:class:`~xtremehub.errors.IntegrityError`, naming the stream
and position). Ordering and exactly-once come from the stream, as for plain events.

Example:
    >>> sealer = StreamSealer("icu", "vitals", b"k" * 32)
    >>> blob = sealer.seal(b"heart rate 71", "bed-4")
    >>> blob[:4], len(blob) - len(b"heart rate 71")
    (b'XSE1', 32)
    >>> sealer.open(blob, "bed-4", "icu/vitals/0@0")
    b'heart rate 71'
    >>> sealer.open(blob, "bed-5", "icu/vitals/0@0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xtremehub.errors.IntegrityError: icu/vitals/0@0: the event failed authentication (tampered, or ...
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from xtremehub.errors import IntegrityError
from xtremehub.streams.controller.model import StreamEncryption

if TYPE_CHECKING:
    from xtremehub.security.keys import KeyEncryptionKeys
    from xtremehub.streams.client.reader import EventRead
    from xtremehub.streams.client.transactions import Transaction, TransactionalEventStreamWriter
    from xtremehub.streams.client.writer import EventPointer, EventStreamWriter
    from xtremehub.streams.controller.contract import ControllerContract

__all__ = [
    "EventOpener",
    "SealingTransactionWriter",
    "SealingWriter",
    "StreamSealer",
    "new_stream_encryption",
    "resolve_keys",
]

MAGIC = b"XSE1"
_NONCE = 12
OVERHEAD = len(MAGIC) + _NONCE + 16  # bytes an encrypted event adds to its payload


def resolve_keys(keys: KeyEncryptionKeys | str | None) -> KeyEncryptionKeys:
    """The KEKs of a key-source URL, an object, or (None) the default settings' ``encryption.keys``."""
    from xtremehub.security.keyring import open_keys

    if keys is None:
        from xtremehub.config import default_settings

        settings = default_settings()
        return open_keys(settings.encryption.keys or str(settings.home / "keys" / "keyring.json"))
    if isinstance(keys, str):
        return open_keys(keys)
    return keys


def new_stream_encryption(keys: KeyEncryptionKeys, dataset: str) -> StreamEncryption:
    """A fresh data key for a new stream, wrapped by ``dataset``'s KEK."""
    return StreamEncryption(dataset, keys.wrap(dataset, AESGCM.generate_key(bit_length=256)))


class StreamSealer:
    """Encrypts and decrypts the events of one stream with its data key."""

    __slots__ = ("_aead", "_prefix", "name")

    def __init__(self, scope: str, stream: str, data_key: bytes) -> None:
        self.name = f"{scope}/{stream}"
        self._aead = AESGCM(data_key)
        self._prefix = f"{scope}/{stream}\0".encode()

    def __repr__(self) -> str:  # never the key
        return f"StreamSealer({self.name!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a StreamSealer holds a data key and is never pickled; ship the StreamEncryption")

    def seal(self, data: bytes, routing_key: str | None) -> bytes:
        nonce = os.urandom(_NONCE)
        aad = self._prefix + (routing_key or "").encode()
        return MAGIC + nonce + self._aead.encrypt(nonce, bytes(data), aad)

    def open(self, blob: bytes, routing_key: str | None, where: str) -> bytes:
        """Decrypt ``blob``; ``where`` (segment and offset) goes into errors."""
        if len(blob) < OVERHEAD or blob[:4] != MAGIC:
            raise IntegrityError(f"{where}: not an encrypted event of stream {self.name} ({len(blob)} bytes)")
        aad = self._prefix + (routing_key or "").encode()
        try:
            return self._aead.decrypt(blob[4 : 4 + _NONCE], blob[4 + _NONCE :], aad)
        except InvalidTag:
            raise IntegrityError(
                f"{where}: the event failed authentication (tampered, or not from stream {self.name} "
                f"with routing key {routing_key!r})"
            ) from None

    @classmethod
    def unwrap(cls, scope: str, stream: str, encryption: StreamEncryption, keys: KeyEncryptionKeys) -> StreamSealer:
        """The sealer of an encrypted stream, its data key unwrapped by ``keys`` (a key release)."""
        return cls(scope, stream, keys.unwrap(encryption.dataset, encryption.wrapped_key))


class SealingWriter:
    """An :class:`EventStreamWriter` of an encrypted stream: events are encrypted before they leave."""

    def __init__(self, inner: EventStreamWriter, sealer: StreamSealer) -> None:
        self._inner, self._sealer = inner, sealer

    def write_event(self, data: bytes, routing_key: str | None = None) -> Future[EventPointer]:
        return self._inner.write_event(self._sealer.seal(data, routing_key), routing_key)

    def __getattr__(self, name: str) -> Any:  # flush, close, writer_id, next_event_number ...
        return getattr(self._inner, name)

    def __enter__(self) -> SealingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


class _SealingTransaction:
    def __init__(self, inner: Transaction, sealer: StreamSealer) -> None:
        self._inner, self._sealer = inner, sealer

    def write_event(self, data: bytes, routing_key: str | None = None) -> None:
        self._inner.write_event(self._sealer.seal(data, routing_key), routing_key)

    def __getattr__(self, name: str) -> Any:  # commit, abort, flush, ping, txn_id, state
        return getattr(self._inner, name)


class SealingTransactionWriter:
    """A :class:`TransactionalEventStreamWriter` of an encrypted stream."""

    def __init__(self, inner: TransactionalEventStreamWriter, sealer: StreamSealer) -> None:
        self._inner, self._sealer = inner, sealer

    def begin_txn(self, lease: float = 30.0) -> Any:
        return _SealingTransaction(self._inner.begin_txn(lease), self._sealer)

    def get_txn(self, txn_id: str) -> Any:
        return _SealingTransaction(self._inner.get_txn(txn_id), self._sealer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class EventOpener:
    """Decrypts the events of encrypted streams as a reader returns them (plain streams pass through).

    Looks each stream's configuration up once; the data key is unwrapped (released) on the
    first event of an encrypted stream, so a reader of plain streams never asks for a key.
    """

    def __init__(
        self,
        controller: ControllerContract,
        keys: Callable[[], KeyEncryptionKeys],
        required: Collection[str] = (),
    ) -> None:
        self._controller, self._keys = controller, keys
        self._required = frozenset(required)  # "scope/stream" names that must be encrypted
        self._sealers: dict[tuple[str, str], StreamSealer | None] = {}
        self._lock = threading.Lock()

    def sealer(self, scope: str, stream: str) -> StreamSealer | None:
        key = (scope, stream)
        with self._lock:
            if key in self._sealers:
                return self._sealers[key]
        encryption = self._controller.get_stream(scope, stream).config.encryption
        if encryption is None and f"{scope}/{stream}" in self._required:
            raise IntegrityError(
                f"stream {scope}/{stream} must be encrypted (require_encryption) but its configuration says "
                "it is not: refusing to write or read it in plaintext (a server downgrading it?)"
            )
        found = None if encryption is None else StreamSealer.unwrap(scope, stream, encryption, self._keys())
        with self._lock:
            self._sealers[key] = found
        return found

    def __call__(self, event: EventRead) -> EventRead:
        if event.is_checkpoint:
            return event
        sealer = self.sealer(event.scope, event.stream)
        if sealer is None:
            return event
        where = f"{event.position.segment}@{event.position.offset}"
        return dataclasses.replace(event, data=sealer.open(event.data, event.routing_key, where))
