"""Where the key service keeps its secrets: a master key, and per-dataset KEKs sealed under it.

Layout of the key directory (directories 0700, files 0600)::

    DIR/datasets/<dataset, %-quoted>/kek-<version>.sealed   AES-256-GCM under the master key,
                                                            associated data "<dataset>|<version>"
    DIR/datasets/<dataset>/policy.json                      the current key policy
    DIR/datasets/<dataset>/policy-<version>.json            every version, kept

The master key (32 bytes, hex or base64 or raw) comes from the file named by
``XHUB_MASTER_KEY_FILE`` or from ``XHUB_MASTER_KEY``; it is never logged or shown.

Example:
    >>> import tempfile
    >>> store = KeyStore(tempfile.mkdtemp(), MasterKey(b"m" * 32))
    >>> store.ensure(["genomes"])["genomes"], store.rotate("genomes"), store.current_version("genomes")
    (1, 2, 2)
    >>> len(store.kek("genomes", 1)), store.kek("genomes", 1) != store.kek("genomes", 2)
    (32, True)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xtremehub.errors import ConfigError, IntegrityError, StalePolicy
from xtremehub.security.keypolicy import KeyPolicy, check_dataset_name
from xtremehub.security.sealing import aead_decrypt, aead_encrypt

__all__ = ["KEK_BYTES", "KeyStore", "MasterKey", "write_private"]

log = logging.getLogger(__name__)
KEK_BYTES = 32
_KEK_FILE = re.compile(r"^kek-(\d+)\.sealed$")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 (created so, never world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power loss
        finally:
            os.close(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class MasterKey:
    """A 32-byte master key; its value never appears in a repr, log or error.

    Example:
        >>> MasterKey(b"k" * 32)
        MasterKey(<hidden>)
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError(f"master key must be 32 bytes, got {len(key)}")
        self._key = key

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a MasterKey is not picklable: it never leaves the key service")

    @staticmethod
    def _decode(text: bytes, source: str) -> bytes:
        stripped = text.strip()
        if len(text) == 32 and len(stripped) != 64:
            return text  # raw bytes
        with contextlib.suppress(ValueError):
            if len(stripped) == 64:
                return bytes.fromhex(stripped.decode("ascii"))
        with contextlib.suppress(ValueError, binascii.Error):
            raw = base64.b64decode(stripped, validate=True)
            if len(raw) == 32:
                return raw
        raise ConfigError(f"{source}: master key must be 32 bytes, as 64 hex digits or base64")

    @classmethod
    def from_file(cls, path: Path | str) -> MasterKey:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the master key file ({exc.strerror})") from None
        if path.stat().st_mode & 0o077:
            log.warning("master key file %s is readable by group or others; chmod 600 it", path)
        return cls(cls._decode(data, str(path)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MasterKey:
        """From ``XHUB_MASTER_KEY_FILE`` (a path) or ``XHUB_MASTER_KEY`` (hex/base64)."""
        env = os.environ if environ is None else environ
        if env.get("XHUB_MASTER_KEY_FILE"):
            return cls.from_file(env["XHUB_MASTER_KEY_FILE"])
        if env.get("XHUB_MASTER_KEY"):
            return cls(cls._decode(env["XHUB_MASTER_KEY"].encode(), "XHUB_MASTER_KEY"))
        raise ConfigError("no master key: set XHUB_MASTER_KEY_FILE (a 0600 file) or XHUB_MASTER_KEY")

    @classmethod
    def generate(cls, path: Path | str) -> MasterKey:
        """A new random key, written as hex to ``path`` (mode 0600); refuses to overwrite."""
        path = Path(path)
        if path.exists():
            raise ConfigError(f"{path}: exists; not overwriting a master key")
        key = cls(os.urandom(32))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, key._key.hex().encode() + b"\n")
        return key

    def derive(self, label: str) -> bytes:
        """A 32-byte subkey for ``label`` (HKDF-SHA256)."""
        return HKDF(hashes.SHA256(), 32, salt=None, info=f"xhub/{label}".encode()).derive(self._key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        return aead_encrypt(self._key, plaintext, aad)

    def open(self, box: bytes, aad: bytes) -> bytes:
        return aead_decrypt(self._key, box, aad)


class KeyStore:
    """Per-dataset KEK versions and key policies in a directory, KEKs sealed under ``master``.

    Writers on one directory (a server and the CLI) serialise on a lock file.
    """

    def __init__(self, directory: Path | str, master: MasterKey) -> None:
        self.directory = Path(directory)
        self._master = master
        (self.directory / "datasets").mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._keks: dict[tuple[str, int], bytes] = {}

    def __repr__(self) -> str:
        return f"KeyStore({str(self.directory)!r})"

    def _dir(self, dataset: str) -> Path:
        return self.directory / "datasets" / urllib.parse.quote(check_dataset_name(dataset), safe="")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock, open(self.directory / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def datasets(self) -> list[str]:
        return sorted(urllib.parse.unquote(p.name) for p in (self.directory / "datasets").iterdir() if p.is_dir())

    def versions(self, dataset: str) -> list[int]:
        d = self._dir(dataset)
        if not d.is_dir():
            return []
        return sorted(int(m.group(1)) for p in d.iterdir() if (m := _KEK_FILE.match(p.name)))

    def current_version(self, dataset: str) -> int | None:
        versions = self.versions(dataset)
        return versions[-1] if versions else None

    def _add_version(self, dataset: str, version: int) -> None:
        d = self._dir(dataset)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        sealed = self._master.seal(os.urandom(KEK_BYTES), f"{dataset}|{version}".encode())
        write_private(d / f"kek-{version}.sealed", sealed)

    def ensure(self, datasets: Iterable[str]) -> dict[str, int]:
        """Create a first KEK for each dataset that has none; the current version of each."""
        out = {}
        with self._writing():
            for dataset in datasets:
                current = self.current_version(dataset)
                if current is None:
                    self._add_version(dataset, 1)
                    current = 1
                out[dataset] = current
        return out

    def rotate(self, dataset: str) -> int:
        """Add a new KEK version (the old ones stay, to unwrap old data keys); the new version."""
        with self._writing():
            version = (self.current_version(dataset) or 0) + 1
            self._add_version(dataset, version)
        log.info("rotated the KEK of dataset %r to version %d", dataset, version)
        return version

    def kek(self, dataset: str, version: int) -> bytes:
        """The KEK ``version`` of ``dataset``; :class:`LookupError` if there is none."""
        cached = self._keks.get((dataset, version))
        if cached is not None:
            return cached
        path = self._dir(dataset) / f"kek-{int(version)}.sealed"
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise LookupError(f"dataset {dataset!r} has no KEK version {version}") from None
        try:
            kek = self._master.open(sealed, f"{dataset}|{version}".encode())
        except IntegrityError:
            raise IntegrityError(
                f"{path}: the sealed KEK does not open (another master key, or the file was altered)"
            ) from None
        self._keks[(dataset, version)] = kek
        return kek

    def policy(self, dataset: str) -> KeyPolicy | None:
        path = self._dir(dataset) / "policy.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        return KeyPolicy.from_dict(data, source=str(path))

    def put_policy(self, policy: KeyPolicy) -> KeyPolicy | None:
        """Install ``policy`` if it is based on the current one; returns the one it replaced.

        :class:`StalePolicy` if ``policy.predecessor`` is not the current document's digest
        (or, for a first document, is set), or its version is not the next one.
        """
        with self._writing():
            current = self.policy(policy.dataset)
            expected_version = 1 if current is None else current.version + 1
            expected_predecessor = None if current is None else current.digest()
            if policy.predecessor != expected_predecessor or policy.version != expected_version:
                now = "none" if current is None else f"version {current.version} ({current.digest()})"
                raise StalePolicy(
                    f"key policy update for {policy.dataset!r} (version {policy.version}, "
                    f"predecessor {policy.predecessor}) is not based on the current policy: {now}"
                )
            d = self._dir(policy.dataset)
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            text = json.dumps(policy.to_dict(), indent=2, sort_keys=True).encode()
            write_private(d / f"policy-{policy.version}.json", text)
            write_private(d / "policy.json", text)
        return current
