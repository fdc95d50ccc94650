"""Local key-encryption keys: an in-memory or file keyring with KEK versions and rotation.

A :class:`Keyring` implements :class:`~xtremehub.security.keys.KeyEncryptionKeys`: it holds,
per dataset, numbered KEK versions and a current one. ``wrap`` uses the current version and
writes its number into the wrapped blob; ``unwrap`` uses the version the blob names, so
objects written before a :meth:`Keyring.rotate` stay readable. Re-wrapping their data keys
under the new version (:meth:`xtremehub.storage.encrypted.EncryptedStore.rewrap`) rewrites
headers only; after that the old version can be :meth:`Keyring.retire`-d.

A :class:`FileKeyring` keeps the KEKs in a JSON file (mode 0600) -- the single-machine,
no-set-up keyring: whoever can read the file can read the data, so on a shared cluster use
the key service instead. Encrypted stores find their keys through a *key source* URL taken
from :class:`~xtremehub.config.EncryptionSettings` (only the URL travels to workers, never a
key): ``file:///path/keyring.json``, ``mem://name`` (this process only), or a scheme another
module registered with :func:`register_key_source` (the key service registers its own).

Example:
    >>> ring = MemoryKeyring()
    >>> wrapped = ring.wrap("genomes", b"k" * 32)
    >>> ring.rotate("genomes")
    2
    >>> ring.unwrap("genomes", wrapped) == b"k" * 32, wrapped_version(ring.wrap("genomes", b"k" * 32))
    (True, 2)
    >>> ring.unwrap("other", wrapped)
    Traceback (most recent call last):
    ...
    xtremehub.errors.KeyReleaseDenied: no key-encryption key for dataset 'other' in this keyring
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import json
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from xtremehub.errors import ConfigError, IntegrityError, KeyReleaseDenied
from xtremehub.plugins import Registry
from xtremehub.security.keys import KeyEncryptionKeys

__all__ = [
    "FileKeyring",
    "KeySourceFactory",
    "Keyring",
    "MemoryKeyring",
    "open_keys",
    "register_key_source",
    "wrapped_version",
]

log = logging.getLogger(__name__)

_WRAP_MAGIC = b"XK1"
_WRAP = struct.Struct(">3sI12s")  # magic, KEK version, nonce


def wrapped_version(wrapped: bytes) -> int:
    """The KEK version a wrapped data key was made with (raises IntegrityError if malformed)."""
    if len(wrapped) < _WRAP.size or not wrapped.startswith(_WRAP_MAGIC):
        raise IntegrityError("malformed wrapped data key")
    return int(_WRAP.unpack_from(wrapped)[1])


def _ad(dataset: str, version: int) -> bytes:
    return b"xhub-kek\x00" + dataset.encode() + b"\x00" + str(version).encode()


class Keyring:
    """Versioned KEKs per dataset, in this process's memory.

    Args:
        create: make a KEK for a dataset on its first ``wrap`` (otherwise
            :class:`~xtremehub.errors.KeyReleaseDenied`).
    """

    def __init__(self, *, create: bool = True) -> None:
        self._create = create
        self._lock = threading.RLock()
        self._keks: dict[str, dict[int, bytes]] = {}
        self._current: dict[str, int] = {}

    def __repr__(self) -> str:  # names datasets and versions, never keys
        return f"{type(self).__name__}({ {d: self._current[d] for d in sorted(self._current)} })"

    # -- management --------------------------------------------------------------------
    def datasets(self) -> list[str]:
        with self._lock:
            self._refresh()
            return sorted(self._current)

    def versions(self, dataset: str) -> list[int]:
        """The KEK versions held for ``dataset`` (oldest first)."""
        with self._lock:
            self._refresh()
            return sorted(self._keks.get(dataset, {}))

    def current(self, dataset: str) -> int:
        """The version new data keys of ``dataset`` are wrapped with."""
        with self._lock:
            self._refresh()
            if dataset not in self._current:
                raise KeyReleaseDenied(f"no key-encryption key for dataset {dataset!r} in this keyring")
            return self._current[dataset]

    def create(self, dataset: str) -> int:
        """Make ``dataset``'s first KEK (idempotent); its version."""
        with self._mutating():
            if dataset not in self._current:
                self._keks[dataset] = {1: AESGCM.generate_key(bit_length=256)}
                self._current[dataset] = 1
                log.info("created key-encryption key version 1 of dataset %r", dataset)
            return self._current[dataset]

    def rotate(self, dataset: str) -> int:
        """A new current KEK version for ``dataset`` (older versions still unwrap); its number."""
        with self._mutating():
            versions = self._keks.setdefault(dataset, {})
            version = max(versions, default=0) + 1
            versions[version] = AESGCM.generate_key(bit_length=256)
            self._current[dataset] = version
            log.info("rotated the key-encryption key of dataset %r to version %d", dataset, version)
            return version

    def retire(self, dataset: str, version: int) -> None:
        """Forget an old KEK version (after every data key was re-wrapped); not the current one."""
        with self._mutating():
            if self._current.get(dataset) == version:
                raise ConfigError(f"KEK version {version} of dataset {dataset!r} is current; rotate first")
            self._keks.get(dataset, {}).pop(version, None)

    # -- KeyEncryptionKeys ---------------------------------------------------------------
    def wrap(self, dataset: str, data_key: bytes) -> bytes:
        with self._lock:
            self._refresh()
            if dataset not in self._current:
                if not self._create:
                    raise KeyReleaseDenied(f"no key-encryption key for dataset {dataset!r} in this keyring")
                self.create(dataset)
            version = self._current[dataset]
            kek = self._keks[dataset][version]
        nonce = os.urandom(12)
        return _WRAP.pack(_WRAP_MAGIC, version, nonce) + AESGCM(kek).encrypt(nonce, data_key, _ad(dataset, version))

    def unwrap(self, dataset: str, wrapped: bytes) -> bytes:
        version = wrapped_version(wrapped)
        kek = self._kek(dataset, version)
        if kek is None:
            self._refresh(force=True)  # rotated by another process since we read it
            kek = self._kek(dataset, version)
        if kek is None:
            if dataset not in self._current:
                raise KeyReleaseDenied(f"no key-encryption key for dataset {dataset!r} in this keyring")
            raise KeyReleaseDenied(f"KEK version {version} of dataset {dataset!r} is not in this keyring (retired?)")
        nonce = _WRAP.unpack_from(wrapped)[2]
        try:
            return AESGCM(kek).decrypt(nonce, wrapped[_WRAP.size :], _ad(dataset, version))
        except InvalidTag:
            raise IntegrityError(
                f"the wrapped data key (dataset {dataset!r}, KEK version {version}) failed authentication"
            ) from None

    def _kek(self, dataset: str, version: int) -> bytes | None:
        with self._lock:
            return self._keks.get(dataset, {}).get(version)

    # -- persistence hooks (FileKeyring) ------------------------------------------------
    def _refresh(self, force: bool = False) -> None:
        """Re-read persisted state (nothing to do in memory)."""

    @contextlib.contextmanager
    def _mutating(self) -> Iterator[None]:
        with self._lock:
            yield


class MemoryKeyring(Keyring):
    """A keyring in this process only: tests, and data that never leaves the process.

    :meth:`named` gives the one keyring of a name (what ``mem://name`` key sources open).
    """

    _named: ClassVar[dict[str, MemoryKeyring]] = {}
    _named_lock = threading.Lock()

    @classmethod
    def named(cls, name: str) -> MemoryKeyring:
        with cls._named_lock:
            return cls._named.setdefault(name, cls())


class FileKeyring(Keyring):
    """KEKs in a JSON file (mode 0600, created on first use), shared by the processes of one machine.

    Changes (a new dataset, a rotation) are made under an exclusive ``flock`` and written
    atomically; readers pick them up when they meet a version they do not know.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        super().__init__(create=create)
        self.path = Path(path).expanduser()
        self._mtime: int | None = None
        self._refresh(force=True)

    def __repr__(self) -> str:
        return f"FileKeyring({str(self.path)!r})"

    def _refresh(self, force: bool = False) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if not force and stat.st_mtime_ns == self._mtime:
            return
        try:
            raw = json.loads(self.path.read_text())
            keks = {
                d: {int(v): base64.b64decode(k) for v, k in entry["versions"].items()}
                for d, entry in raw["datasets"].items()
            }
            current = {d: int(entry["current"]) for d, entry in raw["datasets"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"keyring {self.path} is not a valid keyring file ({type(exc).__name__})") from None
        with self._lock:
            self._keks, self._current, self._mtime = keks, current, stat.st_mtime_ns

    @contextlib.contextmanager
    def _mutating(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._refresh(force=True)
                yield
                self._save()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self) -> None:
        doc = {
            "datasets": {
                d: {
                    "current": self._current[d],
                    "versions": {str(v): base64.b64encode(k).decode() for v, k in self._keks[d].items()},
                }
                for d in sorted(self._current)
            }
        }
        from xtremehub.security.keyservice_store import write_private

        write_private(self.path, json.dumps(doc).encode())  # fsync'd: losing the file loses every object
        self._mtime = self.path.stat().st_mtime_ns


# -- key sources ---------------------------------------------------------------------------

#: ``(source_url) -> KeyEncryptionKeys``: opens the KEKs a key-source URL names.
KeySourceFactory = Callable[[str], KeyEncryptionKeys]

KEY_SOURCES: Registry[KeySourceFactory] = Registry(
    "key source",
    "xtremehub.key_sources",
    {
        "file": "xtremehub.security.keyring:_file_source",
        "mem": "xtremehub.security.keyring:_memory_source",
    },
)


def register_key_source(scheme: str, factory: KeySourceFactory | str) -> None:
    """Make ``scheme://...`` key-source URLs open with ``factory`` (e.g. the key service's client).

    ``factory`` is a callable ``(url) -> KeyEncryptionKeys`` or a dotted path ``"module:callable"``.
    """
    KEY_SOURCES.register(scheme, factory)


def open_keys(source: str) -> KeyEncryptionKeys:
    """The KEKs named by a key-source URL (cached per URL in this process).

    Example:
        >>> open_keys("mem://doc") is open_keys("mem://doc")
        True
        >>> open_keys("vault://x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        xtremehub.errors.ConfigError: key source vault://x: unknown scheme 'vault'; known: file, ...
    """
    return _open_keys(source)


@functools.lru_cache(maxsize=64)
def _open_keys(source: str) -> KeyEncryptionKeys:
    scheme, sep, _ = source.partition("://")
    if not sep:
        scheme, source = "file", f"file://{os.path.abspath(source)}"
    if scheme not in KEY_SOURCES:
        raise ConfigError(f"key source {source}: unknown scheme {scheme!r}; known: {', '.join(KEY_SOURCES.names())}")
    return KEY_SOURCES.load(scheme)(source)


def _file_source(source: str) -> KeyEncryptionKeys:
    return FileKeyring("/" + source.partition("://")[2].lstrip("/"))


def _memory_source(source: str) -> KeyEncryptionKeys:
    return MemoryKeyring.named(source.partition("://")[2])
