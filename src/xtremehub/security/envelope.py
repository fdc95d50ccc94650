"""The chunked envelope format of encrypted objects (AES-256-GCM per fixed-size plaintext chunk).

An encrypted object is a fixed-size header followed by its ciphertext chunks::

    header (HEADER_SIZE bytes, zero padded)
        magic  b"XHUBENC"  version u8  chunk_size u32  header_size u32  object_id 16 bytes
        dataset (u16 length + UTF-8)   wrapped data key (u16 length + bytes)
    chunk 0      AES-GCM(data key, nonce(0, final?), plaintext[0:C],  AD(0, final?))   C + 16 bytes
    chunk 1      ...
    chunk n-1    the final chunk (1..C plaintext bytes; an empty object has one empty final chunk)

Each object has its own random 256-bit data key, stored only wrapped by the dataset's
key-encryption key (:class:`~xtremehub.security.keys.KeyEncryptionKeys`). The associated
data of every chunk binds the format version, the chunk size, the object's random id, the
object's key (its name in the store), the chunk index and the final-chunk flag, so that a
tampered, reordered, dropped or truncated chunk, or the ciphertext of another object served
under this name, fails authentication with an :class:`~xtremehub.errors.IntegrityError`
naming the object and the chunk. The wrapped key is *not* bound, so a KEK rotation rewrites
only the header (:meth:`Envelope.rewrapped`), never the chunks.

The nonce of a chunk is its index and final flag: unique because the data key is unique per
object and never reused (every write draws a fresh one).

Plaintext offsets map to ciphertext offsets without reading anything but the header, so a
ranged read fetches and decrypts only the chunks under its range (:meth:`Envelope.chunk_span`).

Example:
    >>> from xtremehub.security.keyring import MemoryKeyring
    >>> kek = MemoryKeyring()
    >>> env = Envelope.new(kek, "genomes", "reads/a.fastq", chunk_size=4)
    >>> blob = env.header() + b"".join(env.encrypt_chunks([b"hello world"]))
    >>> len(blob) - HEADER_SIZE, plaintext_size(len(blob), 4)
    (59, 11)
    >>> opened = Envelope.parse(blob[:HEADER_SIZE], kek, "reads/a.fastq")
    >>> first, last, span = opened.chunk_span(6, 11, 11)  # chunks 1 and 2: plaintext [4, 11)
    >>> first, last, span
    (1, 2, ByteRange(start=20, end=59))
    >>> opened.decrypt_span(blob[HEADER_SIZE + span.start : HEADER_SIZE + span.end], first, last, 11)
    b'o world'
    >>> moved = Envelope.parse(blob[:HEADER_SIZE], kek, "reads/b.fastq")  # A's ciphertext served as B
    >>> moved.decrypt_span(blob[HEADER_SIZE:], 0, 2, 11)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xtremehub.errors.IntegrityError: reads/b.fastq: chunk 0 of 3 failed authentication (tampered, ...)
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from xtremehub.errors import IntegrityError
from xtremehub.security.keys import KeyEncryptionKeys
from xtremehub.storage.base import ByteRange

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "TAG_SIZE",
    "VERSION",
    "Envelope",
    "chunk_size_of",
    "ciphertext_size",
    "plaintext_size",
]

MAGIC = b"XHUBENC"
VERSION = 1
#: Fixed header size: plaintext sizes follow from ciphertext sizes without a read, and a
#: re-wrapped (rotated) data key always fits in place.
HEADER_SIZE = 1024
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 1
MAX_CHUNK_SIZE = 64 * 1024 * 1024

_FIXED = struct.Struct(">7sBII16s")  # magic, version, chunk_size, header_size, object_id


def _ad_prefix(chunk_size: int, object_id: bytes, name: str) -> bytes:
    encoded = name.encode()
    return MAGIC + struct.pack(">BI16sI", VERSION, chunk_size, object_id, len(encoded)) + encoded


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def plaintext_size(ciphertext_size: int, chunk_size: int) -> int:
    """The plaintext size of an encrypted object of ``ciphertext_size`` bytes (header included).

    Example:
        >>> plaintext_size(HEADER_SIZE + 16, 65536), plaintext_size(HEADER_SIZE + 65552 + 17, 65536)
        (0, 65537)
    """
    body = ciphertext_size - HEADER_SIZE
    if body < TAG_SIZE:
        return -1  # not a complete envelope: readers report it as truncated
    chunks = -(-body // (chunk_size + TAG_SIZE))
    return body - chunks * TAG_SIZE


def chunk_size_of(header: bytes, name: str) -> int:
    """The chunk size a header declares, checked but without unwrapping its key (for sizes)."""
    if len(header) < _FIXED.size:
        raise IntegrityError(f"{name}: truncated envelope header ({len(header)} of {HEADER_SIZE} bytes)")
    magic, version, chunk_size, header_size, _ = _FIXED.unpack_from(header)
    if magic != MAGIC:
        raise IntegrityError(f"{name}: not an encrypted XtremeHub object (bad magic)")
    if version != VERSION or header_size != HEADER_SIZE:
        raise IntegrityError(f"{name}: unsupported envelope version {version} (header size {header_size})")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise IntegrityError(f"{name}: invalid chunk size {chunk_size} in the envelope header")
    return int(chunk_size)


def ciphertext_size(size: int, chunk_size: int) -> int:
    """The stored size of a ``size``-byte plaintext (header and tags included).

    Example:
        >>> ciphertext_size(0, 65536) - HEADER_SIZE, ciphertext_size(65537, 65536) - HEADER_SIZE
        (16, 65569)
    """
    chunks = max(1, -(-size // chunk_size))
    return HEADER_SIZE + size + chunks * TAG_SIZE


@dataclass(frozen=True, slots=True)
class Envelope:
    """One object's encryption context: its data key, identity and chunking.

    Build with :meth:`new` (writing) or :meth:`parse` (reading). ``name`` is the object's
    key in its store; it is bound into every chunk, so ciphertext moved to another name
    does not decrypt there.
    """

    name: str
    label: str
    dataset: str
    chunk_size: int
    object_id: bytes
    wrapped_key: bytes
    _aead: AESGCM
    _ad: bytes

    def __repr__(self) -> str:  # never the key
        return f"Envelope(name={self.name!r}, dataset={self.dataset!r}, chunk_size={self.chunk_size})"

    @classmethod
    def new(
        cls,
        keys: KeyEncryptionKeys,
        dataset: str,
        name: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        label: str | None = None,
    ) -> Envelope:
        """A fresh envelope: a new random data key (wrapped by ``dataset``'s KEK) and object id.

        ``label`` names the object in error messages (default ``name``; e.g. its URL).
        """
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}], not {chunk_size}")
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = keys.wrap(dataset, data_key)
        object_id = os.urandom(16)
        ad = _ad_prefix(chunk_size, object_id, name)
        return cls(name, label or name, dataset, chunk_size, object_id, wrapped, AESGCM(data_key), ad)

    @classmethod
    def parse(cls, header: bytes, keys: KeyEncryptionKeys, name: str, *, label: str | None = None) -> Envelope:
        """Read a header and unwrap its data key; the envelope decrypts ``name``'s chunks only.

        Raises:
            IntegrityError: not an XtremeHub envelope, an unknown version, a malformed header,
                or a wrapped key that fails to unwrap.
        """
        label = label or name
        chunk_size = chunk_size_of(header, label)
        if len(header) < HEADER_SIZE:
            raise IntegrityError(f"{label}: truncated envelope header ({len(header)} of {HEADER_SIZE} bytes)")
        object_id = _FIXED.unpack_from(header)[4]
        try:
            pos = _FIXED.size
            (n,) = struct.unpack_from(">H", header, pos)
            dataset = header[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
            (m,) = struct.unpack_from(">H", header, pos)
            wrapped = header[pos + 2 : pos + 2 + m]
            if pos + 2 + m > HEADER_SIZE or len(wrapped) != m:
                raise ValueError("wrapped key overruns the header")
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            raise IntegrityError(f"{label}: malformed envelope header ({type(exc).__name__})") from None
        try:
            data_key = keys.unwrap(dataset, wrapped)
        except IntegrityError as exc:
            raise IntegrityError(f"{label}: {exc}") from None
        if len(data_key) != 32:
            raise IntegrityError(f"{label}: the unwrapped data key has the wrong length")
        ad = _ad_prefix(chunk_size, object_id, name)
        return cls(name, label, dataset, chunk_size, object_id, wrapped, AESGCM(data_key), ad)

    def header(self) -> bytes:
        """The ``HEADER_SIZE``-byte header (no secret: the data key is wrapped)."""
        dataset = self.dataset.encode()
        body = (
            _FIXED.pack(MAGIC, VERSION, self.chunk_size, HEADER_SIZE, self.object_id)
            + struct.pack(">H", len(dataset))
            + dataset
            + struct.pack(">H", len(self.wrapped_key))
            + self.wrapped_key
        )
        if len(body) > HEADER_SIZE:
            raise ValueError(f"dataset name and wrapped key too long for the {HEADER_SIZE}-byte header")
        return body.ljust(HEADER_SIZE, b"\x00")

    def rewrapped(self, keys: KeyEncryptionKeys) -> Envelope:
        """The same envelope with its data key wrapped again by the dataset's current KEK.

        The chunks stay valid: only :meth:`header` changes (this is what KEK rotation does).
        """
        unwrapped = keys.unwrap(self.dataset, self.wrapped_key)
        return dataclasses.replace(self, wrapped_key=keys.wrap(self.dataset, unwrapped))

    # -- chunks ------------------------------------------------------------------------
    def seal(self, index: int, plaintext: bytes, final: bool) -> bytes:
        """Encrypt chunk ``index`` (``final``: the last chunk of the object)."""
        ad = self._ad + struct.pack(">QB", index, final)
        return self._aead.encrypt(_nonce(index, final), plaintext, ad)

    def open_chunk(self, index: int, ciphertext: bytes | memoryview, final: bool, total: int) -> bytes:
        """Decrypt chunk ``index`` of ``total``; an :class:`IntegrityError` names object and chunk."""
        ad = self._ad + struct.pack(">QB", index, final)
        try:
            return self._aead.decrypt(_nonce(index, final), ciphertext, ad)
        except InvalidTag:
            raise self._failed(index, total) from None

    def _failed(self, index: int, total: int) -> IntegrityError:
        return IntegrityError(
            f"{self.label}: chunk {index} of {total} failed authentication "
            "(tampered, reordered, truncated, or another object's ciphertext)"
        )

    def encrypt_chunks(self, data: Iterable[bytes]) -> Iterator[bytes]:
        """Encrypt a stream of plaintext pieces (any sizes) into ciphertext chunks, lazily.

        One chunk is held back until the next arrives, so the last one carries the final flag.
        """
        size = self.chunk_size
        buf = bytearray()
        index = 0
        pending: bytes | None = None
        for piece in data:
            view = memoryview(piece).cast("B")
            pos = 0
            full: list[bytes] = []
            if buf:
                pos = min(size - len(buf), len(view))
                buf += view[:pos]
                if len(buf) == size:
                    full.append(bytes(buf))
                    buf.clear()
            while len(view) - pos >= size:
                full.append(bytes(view[pos : pos + size]))
                pos += size
            buf += view[pos:]
            for chunk in full:
                if pending is not None:
                    yield self.seal(index, pending, False)
                    index += 1
                pending = chunk
        if buf:
            if pending is not None:
                yield self.seal(index, pending, False)
                index += 1
            pending = bytes(buf)
        yield self.seal(index, pending or b"", True)

    def chunk_count(self, size: int) -> int:
        """How many chunks a ``size``-byte plaintext has (an empty one has one)."""
        return max(1, -(-size // self.chunk_size))

    def chunk_span(self, start: int, end: int, size: int) -> tuple[int, int, ByteRange]:
        """``(first, last, body_range)``: the chunks under plaintext ``[start, end)`` of a
        ``size``-byte object and their ciphertext range relative to the end of the header.
        ``end`` must be in ``(start, size]``.
        """
        step = self.chunk_size + TAG_SIZE
        first, last = start // self.chunk_size, (end - 1) // self.chunk_size
        stored = size + self.chunk_count(size) * TAG_SIZE
        return first, last, ByteRange(first * step, min((last + 1) * step, stored))

    def decrypt_span(
        self, body: bytes, first: int, last: int, size: int, start: int | None = None, end: int | None = None
    ) -> bytes:
        """Decrypt chunks ``first..last`` of a ``size``-byte object from their ciphertext ``body``;
        with ``start``/``end`` (plaintext offsets in the object) only those bytes are returned.

        Chunks are decrypted in place into one buffer, so the plaintext is copied once.
        """
        step = self.chunk_size + TAG_SIZE
        total = self.chunk_count(size)
        view = memoryview(body)
        pieces = []
        for offset, index in enumerate(range(first, last + 1)):
            piece = view[offset * step : (offset + 1) * step]
            if len(piece) < TAG_SIZE:
                raise IntegrityError(f"{self.label}: chunk {index} of {total} is missing (truncated object)")
            pieces.append((index, piece))
        out = bytearray(sum(len(piece) - TAG_SIZE for _, piece in pieces))
        target = memoryview(out)
        pos = 0
        for index, piece in pieces:
            n = len(piece) - TAG_SIZE
            ad = self._ad + struct.pack(">QB", index, index == total - 1)
            try:
                self._aead.decrypt_into(_nonce(index, index == total - 1), piece, ad, target[pos : pos + n])
            except InvalidTag:
                raise self._failed(index, total) from None
            pos += n
        base = first * self.chunk_size
        lo = 0 if start is None else start - base
        hi = len(out) if end is None else end - base
        return bytes(target[lo:hi])
