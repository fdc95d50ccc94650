"""Encryption of WAL files at rest: AES-256-CTR at each byte's file position.

The WAL is read by position (a reader ``pread``-s any sub-range of an append record), so its
cipher must be seekable: AES-CTR whose counter is the file's random IV plus the 16-byte block
number of the position. Each WAL file starts, when encrypted, with a 32-byte header (magic and
the file's random IV, so no keystream is ever reused even if a file id were); the WAL's
positions stay those of the plaintext records (:class:`~.wal.WalFiles` adds the header size).

One random data key per store directory, wrapped by the dataset's key-encryption key, is
kept in ``<wal dir>/wal.key`` (only wrapped). Records keep their CRC32 for torn-write
detection; CTR adds confidentiality, not authentication, so a deliberate edit of a WAL file
is caught only as far as the CRC catches it (the LTS chunks, by contrast, are AES-GCM
envelopes). See ``docs/security.md``, "Encryption at rest".

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub.security.keyring import MemoryKeyring
    >>> cipher = WalCipher.open(Path(tempfile.mkdtemp()), MemoryKeyring(), "streams")
    >>> header = cipher.new_header()
    >>> iv = cipher.iv_of(header, "wal-1")
    >>> secret = cipher.apply(iv, 0, b"hello stream")
    >>> secret != b"hello stream", cipher.apply(iv, 6, secret[6:])
    (True, b'stream')
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from xtremehub.errors import CorruptData
from xtremehub.security.keys import KeyEncryptionKeys

__all__ = ["WAL_MAGIC", "WalCipher"]

WAL_MAGIC = b"XHWALENC"
_KEY_FILE = "wal.key"


class WalCipher:
    """Encrypts and decrypts WAL bytes at their positions (a stateless transform per call)."""

    #: Bytes of the per-file header (magic, IV, padding).
    HEADER = 32

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("a WAL data key has 32 bytes")
        self._algorithm = algorithms.AES(data_key)

    def __repr__(self) -> str:
        return "WalCipher(AES-256-CTR)"

    @classmethod
    def open(cls, directory: Path, keys: KeyEncryptionKeys, dataset: str) -> WalCipher:
        """The cipher of the WAL in ``directory``: its data key unwrapped, or made and stored wrapped."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / _KEY_FILE
        if path.exists():
            return cls(keys.unwrap(dataset, path.read_bytes()))
        data_key = os.urandom(32)
        tmp = directory / f".{_KEY_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(keys.wrap(dataset, data_key))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return cls(data_key)

    def new_header(self) -> bytes:
        """A fresh file header with a random IV."""
        return WAL_MAGIC + os.urandom(16) + bytes(self.HEADER - len(WAL_MAGIC) - 16)

    def iv_of(self, header: bytes, name: str) -> int:
        """The IV of a file from its header; :class:`CorruptData` if it is not an encrypted WAL file."""
        if len(header) < self.HEADER or not header.startswith(WAL_MAGIC):
            raise CorruptData(name, 0, "not an encrypted WAL file (the store is configured with encryption)")
        return int.from_bytes(header[len(WAL_MAGIC) : len(WAL_MAGIC) + 16], "big")

    def apply(self, iv: int, pos: int, data: bytes | memoryview) -> bytes:
        """Encrypt or decrypt (the same in CTR) ``data`` found at plaintext position ``pos``."""
        if not data:
            return b""
        block, skip = divmod(pos, 16)
        counter = ((iv + block) % (1 << 128)).to_bytes(16, "big")
        transform = Cipher(self._algorithm, modes.CTR(counter)).encryptor()
        if skip:
            transform.update(bytes(skip))
        return transform.update(data) + transform.finalize()
