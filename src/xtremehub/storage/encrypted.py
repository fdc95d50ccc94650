"""Encryption at rest over any store: ``enc+<scheme>://`` URLs (``enc+s3://``, ``enc+file://``, ``enc+mem://``).

An :class:`EncryptedStore` wraps another :class:`~xtremehub.storage.base.Store` and keeps
every object in the chunked envelope format of :mod:`xtremehub.security.envelope`: one random
data key per object (wrapped by a dataset KEK), AES-256-GCM per fixed-size plaintext chunk.
It speaks plaintext: ``head``/``list`` report plaintext sizes, ``get_range`` takes plaintext
offsets and fetches and decrypts **only the chunks under the range** (one ranged read of the
inner store), ``put`` encrypts chunk by chunk while streaming. The storage I/O counters
(:mod:`xtremehub.storage.iostats`) count what the inner store moved: ciphertext bytes.

Connectors and workers use it through URLs: the ``enc+`` prefix opens the inner store as
usual and wraps it, with the KEKs named by :class:`~xtremehub.config.EncryptionSettings`
(a key-source URL, resolved in the process that reads -- no key travels with the settings).
Connector indexes of ``enc+`` objects live at ``enc+`` URLs too, so they are encrypted.

Example:
    >>> from xtremehub import storage
    >>> from xtremehub.config import EncryptionSettings, Settings
    >>> settings = Settings(encryption=EncryptionSettings(keys="mem://doc-keys", chunk_size=4))
    >>> storage.put("enc+mem://vault/note.txt", b"hello encrypted world", settings=settings).size
    21
    >>> storage.get_range("enc+mem://vault/note.txt", 6, 15, settings=settings)
    b'encrypted'
    >>> b"hello" in storage.get("mem://vault/note.txt")  # the inner store holds ciphertext only
    False
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from xtremehub.config import Settings
from xtremehub.errors import IntegrityError, InvalidRange, StorageError
from xtremehub.security.envelope import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    TAG_SIZE,
    Envelope,
    chunk_size_of,
    plaintext_size,
)
from xtremehub.security.keys import KeyEncryptionKeys
from xtremehub.storage.base import ObjectInfo, PutSource, Store
from xtremehub.storage.chunks import iter_chunks
from xtremehub.storage.registry import ENC_PREFIX

__all__ = ["ENC_PREFIX", "EncryptedStore", "encrypted_store", "key_source"]

log = logging.getLogger(__name__)


F = TypeVar("F", bound=Callable[..., Any])

# Whole-object reads stream through this many plaintext bytes per inner ranged read.
_STREAM_SPAN = 8 * 1024 * 1024


def _uncounted(method: F) -> F:
    """Leave I/O counting to the inner store, which sees the real (ciphertext) traffic."""
    method.__xhub_counted__ = True  # type: ignore[attr-defined]
    return method


class _Opened:
    """A cached, opened object: its envelope, ciphertext size and etag."""

    __slots__ = ("envelope", "etag", "stored")

    def __init__(self, envelope: Envelope, stored: int, etag: str | None) -> None:
        self.envelope, self.stored, self.etag = envelope, stored, etag


class EncryptedStore(Store):
    """A store whose objects are encrypted in ``inner``; it reads and writes plaintext.

    Args:
        inner: where the ciphertext lives (any store).
        keys: the key-encryption keys that wrap and unwrap data keys.
        dataset: whose KEK wraps the data keys of objects written here.
        chunk_size: plaintext bytes per AES-GCM chunk of objects written here (readers take
            each object's own chunk size from its header).

    Objects are bound to their key in ``inner``: ciphertext copied or moved to another key
    fails authentication there (:meth:`copy` re-encrypts).

    Example:
        >>> from xtremehub.security.keyring import MemoryKeyring
        >>> from xtremehub.storage._memory import MemoryStore
        >>> store = EncryptedStore(MemoryStore("enc-doc"), MemoryKeyring(), dataset="d", chunk_size=8)
        >>> store.put("k", b"0123456789abcdef!").size, store.get_range("k", 7, 10)
        (17, b'789')
        >>> store.url("k")
        'enc+mem://enc-doc/k'
    """

    def __init__(
        self,
        inner: Store,
        keys: KeyEncryptionKeys,
        *,
        dataset: str = "default",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.inner = inner
        self.keys = keys
        self.dataset = dataset
        self.chunk_size = chunk_size
        self.max_concurrency = inner.max_concurrency
        self._opened: OrderedDict[str, _Opened] = OrderedDict()
        self._chunk_sizes: dict[tuple[str, str | None], int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EncryptedStore({self.inner!r}, dataset={self.dataset!r})"

    def url(self, key: str) -> str:
        return _outer(self.inner.url(key))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Storage errors of the inner store name this store's URLs."""
        try:
            yield
        except StorageError as exc:
            if exc.url.startswith(ENC_PREFIX):
                raise
            raise type(exc)(_outer(exc.url), exc.detail) from exc

    # -- opening objects ---------------------------------------------------------------
    def _open(self, key: str, *, fresh: bool = False) -> _Opened:
        with self._lock:
            cached = None if fresh else self._opened.get(key)
            if cached is not None:
                self._opened.move_to_end(key)
                return cached
        info = self.inner.head(key)
        header = self.inner.get_range(key, 0, HEADER_SIZE)
        opened = _Opened(Envelope.parse(header, self.keys, key, label=self.url(key)), info.size, info.etag)
        with self._lock:
            self._opened[key] = opened
            while len(self._opened) > 256:
                self._opened.popitem(last=False)
        return opened

    def _forget(self, key: str) -> None:
        with self._lock:
            self._opened.pop(key, None)

    def _size(self, key: str, stored: int, chunk_size: int) -> int:
        size = plaintext_size(stored, chunk_size)
        if size < 0:
            raise IntegrityError(f"{self.url(key)}: truncated encrypted object ({stored} bytes: no complete chunk)")
        return size

    def _plain_info(self, info: ObjectInfo, chunk_size: int) -> ObjectInfo:
        return ObjectInfo(
            url=self.url(info.key),
            key=info.key,
            size=self._size(info.key, info.size, chunk_size),
            etag=info.etag,
            mtime=info.mtime,
        )

    def _chunk_size(self, info: ObjectInfo) -> int:
        """The chunk size of an object (from its header; cached per etag, no key needed)."""
        with self._lock:
            known = self._chunk_sizes.get((info.key, info.etag))
        if known is None:
            known = chunk_size_of(self.inner.get_range(info.key, 0, HEADER_SIZE), self.url(info.key))
            with self._lock:
                if len(self._chunk_sizes) > 4096:
                    self._chunk_sizes.clear()
                self._chunk_sizes[(info.key, info.etag)] = known
        return known

    # -- reads -----------------------------------------------------------------------------
    @_uncounted
    def get(self, key: str) -> bytes:
        with self._errors():
            blob = self.inner.get(key)
            envelope = Envelope.parse(blob[:HEADER_SIZE], self.keys, key, label=self.url(key))
            size = self._size(key, len(blob), envelope.chunk_size)
            first, last, span = envelope.chunk_span(0, max(size, 1), size)
            plain = envelope.decrypt_span(blob[HEADER_SIZE + span.start : HEADER_SIZE + span.end], first, last, size)
            return plain

    @_uncounted
    def _get_range(self, key: str, start: int, end: int) -> bytes:
        with self._errors():
            opened = self._open(key)
            try:
                return self._read(opened, key, start, end)
            except (IntegrityError, InvalidRange):
                # The object may have been replaced since its header was cached: one fresh try.
                fresh = self._open(key, fresh=True)
                if (fresh.etag, fresh.stored) == (opened.etag, opened.stored):
                    raise
                return self._read(fresh, key, start, end)

    def _read(self, opened: _Opened, key: str, start: int, end: int) -> bytes:
        envelope = opened.envelope
        size = self._size(key, opened.stored, envelope.chunk_size)
        if start > size:
            raise InvalidRange(self.url(key), f"bytes [{start}, {end}) start past the end (size {size})")
        end = min(end, size)
        if end <= start:
            return b""
        first, last, span = envelope.chunk_span(start, end, size)
        body = self.inner.get_range(key, HEADER_SIZE + span.start, HEADER_SIZE + span.end)
        return envelope.decrypt_span(body, first, last, size, start, end)

    def iter_plaintext(self, key: str, span: int = _STREAM_SPAN) -> Iterator[bytes]:
        """The whole object as decrypted pieces, read about ``span`` plaintext bytes at a time."""
        with self._errors():
            opened = self._open(key, fresh=True)
            chunk = opened.envelope.chunk_size
            size = self._size(key, opened.stored, chunk)
            step = max(chunk, span - span % chunk)
            if size == 0:  # still authenticate the (empty) final chunk
                body = self.inner.get_range(key, HEADER_SIZE, HEADER_SIZE + TAG_SIZE)
                opened.envelope.decrypt_span(body, 0, 0, 0)
            for start in range(0, size, step):
                yield self._read(opened, key, start, min(start + step, size))

    def head(self, key: str) -> ObjectInfo:
        with self._errors():
            info = self.inner.head(key)
            return self._plain_info(info, self._chunk_size(info))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` with plaintext sizes (headers read concurrently, by pages)."""
        with self._errors():
            listed = self.inner.list(prefix)
            with ThreadPoolExecutor(min(self.max_concurrency, 16), thread_name_prefix="xhub-enc-list") as pool:
                while page := builtins.list(itertools.islice(listed, 256)):
                    yield from pool.map(lambda info: self._plain_info(info, self._chunk_size(info)), page)

    # -- writes ------------------------------------------------------------------------
    @_uncounted
    def put(self, key: str, data: PutSource) -> ObjectInfo:
        with self._errors():
            envelope = Envelope.new(self.keys, self.dataset, key, chunk_size=self.chunk_size, label=self.url(key))
            chunks = itertools.chain([envelope.header()], envelope.encrypt_chunks(iter_chunks(data)))
            # A known, small total lets the inner store write it in one request.
            stored: Any = builtins.list(chunks) if isinstance(data, bytes | bytearray | memoryview) else chunks
            self._forget(key)
            info = self.inner.put(key, stored)
            return self._plain_info(info, envelope.chunk_size)

    def delete(self, key: str) -> None:
        with self._errors():
            self._forget(key)
            self.inner.delete(key)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy by re-encrypting under ``dst`` (a byte copy would not authenticate there)."""
        with self._errors():
            self.inner.head(src)  # a missing source fails before anything is written
        return self.put(dst, self.iter_plaintext(src))

    def rewrap(self, key: str) -> ObjectInfo:
        """Re-wrap an object's data key under its dataset's current KEK; the chunks are copied
        byte for byte, never re-encrypted (what a KEK rotation does to old objects)."""
        with self._errors():
            opened = self._open(key, fresh=True)
            header = opened.envelope.rewrapped(self.keys).header()
            stored = opened.stored

            def body() -> Iterator[bytes]:
                yield header
                for start in range(HEADER_SIZE, stored, _STREAM_SPAN):
                    yield self.inner.get_range(key, start, min(start + _STREAM_SPAN, stored))

            self._forget(key)
            info = self.inner.put(key, body())
            return self._plain_info(info, opened.envelope.chunk_size)

    def rewrap_all(self, prefix: str = "") -> int:
        """:meth:`rewrap` every object under ``prefix`` (after a KEK rotation); how many."""
        keys = [info.key for info in self.inner.list(prefix)]
        for key in keys:
            self.rewrap(key)
        log.info("re-wrapped the data keys of %d objects under %s", len(keys), self.url(prefix))
        return len(keys)


def _outer(inner_url: str) -> str:
    return ENC_PREFIX + (inner_url if "://" in inner_url else "file://" + inner_url)


def key_source(settings: Settings) -> str:
    """The key-source URL of ``settings`` (default: the file keyring under ``home``)."""
    return settings.encryption.keys or f"file://{settings.home / 'keys' / 'keyring.json'}"


def encrypted_store(inner: Store, settings: Settings) -> EncryptedStore:
    """``inner`` wrapped with the encryption settings of ``settings`` (one instance per
    inner store and settings in a process, so opened headers are reused across calls)."""
    try:
        return _cached(inner, key_source(settings), settings.encryption.dataset, settings.encryption.chunk_size)
    except TypeError:  # an unhashable third-party store
        return _build(inner, key_source(settings), settings.encryption.dataset, settings.encryption.chunk_size)


def _build(inner: Store, source: str, dataset: str, chunk_size: int) -> EncryptedStore:
    from xtremehub.security.keyring import open_keys

    return EncryptedStore(inner, open_keys(source), dataset=dataset, chunk_size=chunk_size)


_cached = functools.lru_cache(maxsize=256)(_build)
