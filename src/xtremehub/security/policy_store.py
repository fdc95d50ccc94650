"""Where policies live: ``*.cedar`` files under any XtremeHub storage URL, versioned and audited.

A policy source is a directory or prefix (``policies/``, ``/etc/xhub/policies``,
``s3://governance/policies/``) holding one or more ``*.cedar`` files and, once a policy was
changed through :meth:`PolicyStore.update`, a manifest ``policyset.json`` with the set's
version and the digest of its predecessor. A directory under version control works as is:
hand edits are picked up on the next reload and count as a new version.

The digest of a policy set is the SHA-256 of the sorted ``(file name, SHA-256 of its text)``
pairs, so two processes that see the same files agree on it. An update names the digest it is
based on; if the set changed in between, :class:`~xtremehub.errors.StalePolicy` is raised and
nothing is written. Every change seen (a file added, replaced or removed) is appended to the
audit log with the old and new hash of the file.

Example:
    >>> store = PolicyStore("mem://policy-doc/policies/")
    >>> first = store.update({"base.cedar": 'permit(principal, action, resource);'}, base=store.load().digest)
    >>> first.version, sorted(first.sources)
    (1, ['base.cedar'])
    >>> store.update({"base.cedar": None}, base="0" * 64)
    Traceback (most recent call last):
    ...
    xtremehub.errors.StalePolicy: policy set mem://policy-doc/policies/ is at version 1 (digest ...), \
but the update is based on 000000000000; reload and retry
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import ConfigError, ObjectNotFound, StalePolicy

if TYPE_CHECKING:
    from xtremehub.security.audit import AuditLog

__all__ = ["MANIFEST", "POLICY_SUFFIX", "PolicyChange", "PolicySnapshot", "PolicyStore", "diff", "text_hash"]

log = logging.getLogger(__name__)

#: File name of a policy source's version manifest.
MANIFEST = "policyset.json"
#: Policy files are the objects whose names end with this suffix.
POLICY_SUFFIX = ".cedar"
_EMPTY_DIGEST = hashlib.sha256(b"[]").hexdigest()


def text_hash(text: str) -> str:
    """SHA-256 (hex) of a policy file's text, as the audit log records it.

    Example:
        >>> text_hash("")[:12]
        'e3b0c44298fc'
    """
    return hashlib.sha256(text.encode()).hexdigest()


def _set_digest(hashes: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(hashes.items())).encode()).hexdigest()


@dataclass(frozen=True)
class PolicySnapshot:
    """One version of a policy source.

    Attributes:
        source: the directory or prefix URL it was read from.
        sources: policy file name -> Cedar text.
        version: 0 for a source never updated through :meth:`PolicyStore.update`; each
            update (or hand edit after one) adds one.
        predecessor: digest of the version this one replaced (None for the first).
        digest: SHA-256 over the sorted (file name, text hash) pairs.
    """

    source: str
    sources: Mapping[str, str] = field(default_factory=dict)
    version: int = 0
    predecessor: str | None = None
    digest: str = _EMPTY_DIGEST

    @property
    def hashes(self) -> dict[str, str]:
        """File name -> SHA-256 of its text."""
        return {name: text_hash(text) for name, text in self.sources.items()}


@dataclass(frozen=True)
class PolicyChange:
    """A policy file added (``old_hash`` None), replaced, or removed (``new_hash`` None)."""

    name: str
    old_hash: str | None
    new_hash: str | None

    @property
    def kind(self) -> str:
        """``add``, ``replace`` or ``remove``."""
        if self.old_hash is None:
            return "add"
        return "remove" if self.new_hash is None else "replace"


def diff(old: PolicySnapshot, new: PolicySnapshot) -> list[PolicyChange]:
    """The file-level changes from ``old`` to ``new``, by file name.

    Example:
        >>> a = PolicySnapshot("p/", {"x.cedar": "1", "y.cedar": "2"})
        >>> b = PolicySnapshot("p/", {"x.cedar": "1!", "z.cedar": "3"})
        >>> [(c.name, c.kind) for c in diff(a, b)]
        [('x.cedar', 'replace'), ('y.cedar', 'remove'), ('z.cedar', 'add')]
    """
    before, after = old.hashes, new.hashes
    changes = []
    for name in sorted(before.keys() | after.keys()):
        if before.get(name) != after.get(name):
            changes.append(PolicyChange(name, before.get(name), after.get(name)))
    return changes


class PolicyStore:
    """The ``*.cedar`` files under one directory or prefix URL, with versioned, audited updates.

    Args:
        url: a directory or prefix URL (a trailing ``/`` is added).
        settings: storage settings (credentials, endpoints) for ``url``.
        audit: where changes are recorded; None records nothing.

    Thread-safe. Updates from several processes to a local directory are serialised by a file
    lock; on an object store only by the digest check (there is no compare-and-swap: two
    updates racing within one read-write window can both pass it; keep one writer there).
    """

    def __init__(self, url: str, *, settings: Settings | None = None, audit: AuditLog | None = None) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self._settings = settings
        self._audit = audit
        self._lock = threading.RLock()
        self._last: PolicySnapshot | None = None
        self._prefix_key = storage.split_url(self.url)[2]

    def __repr__(self) -> str:
        return f"PolicyStore({self.url!r})"

    def fingerprint(self) -> tuple[tuple[str, int, str | None], ...]:
        """A cheap change token: name, size and etag of every file (one listing, no reads)."""
        try:
            infos = list(storage.list(self.url, settings=self._settings))
        except ObjectNotFound:
            return ()
        return tuple(sorted((info.key, info.size, info.etag) for info in infos if self._name(info.key)))

    def load(self) -> PolicySnapshot:
        """Read the current policy set (an absent source is an empty set, denying everything)."""
        with self._lock:
            snapshot = self._read()
            self._observe(snapshot, subject="policy-loader")
            return snapshot

    def update(self, changes: Mapping[str, str | None], *, base: str, subject: str = "policy-admin") -> PolicySnapshot:
        """Add or replace (text) and remove (None) policy files, based on the set with digest ``base``.

        Raises:
            StalePolicy: the source's digest is no longer ``base``; nothing was written.
            ConfigError: a file name is not a plain ``*.cedar`` name.
        """
        for name in changes:
            if "/" in name or not name.endswith(POLICY_SUFFIX) or name.startswith("."):
                raise ConfigError(f"{self.url}: policy file name {name!r} must be a plain '*{POLICY_SUFFIX}' name")
        with self._lock, self._process_lock():
            current = self._read()
            self._observe(current, subject="policy-loader")
            if current.digest != base:
                raise StalePolicy(
                    f"policy set {self.url} is at version {current.version} (digest {current.digest[:12]}), "
                    f"but the update is based on {base[:12]}; reload and retry"
                )
            sources = dict(current.sources)
            for name, text in changes.items():
                if text is None:
                    sources.pop(name, None)
                else:
                    sources[name] = text
            hashes = {name: text_hash(text) for name, text in sources.items()}
            new = PolicySnapshot(
                self.url, sources, version=current.version + 1, predecessor=current.digest, digest=_set_digest(hashes)
            )
            for name, text in changes.items():
                if text is None:
                    if name in current.sources:
                        storage.delete(self.url + name, settings=self._settings)
                else:
                    storage.put(self.url + name, text.encode(), settings=self._settings)
            manifest = {"version": new.version, "predecessor": new.predecessor, "digest": new.digest}
            storage.put(self.url + MANIFEST, json.dumps(manifest, indent=1).encode(), settings=self._settings)
            self._observe(new, subject=subject)
            log.info("policy set %s updated to version %d by %s", self.url, new.version, subject)
            return new

    # -- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        """For a local directory, an ``flock`` on ``.policyset.lock`` in it: updates from several
        processes are serialised, so the digest check is exact. Object stores have no lock."""
        scheme, _, key = storage.split_url(self.url)
        if scheme != "file":
            yield
            return
        directory = Path("/" + key)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".policyset.lock", "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _name(self, key: str) -> str | None:
        return _policy_file_name(self._prefix_key, key)

    def _read(self) -> PolicySnapshot:
        try:
            names = [name for info in storage.list(self.url, settings=self._settings) if (name := self._name(info.key))]
        except ObjectNotFound:
            names = []
        sources: dict[str, str] = {}
        manifest: dict[str, object] = {}
        for name in names:
            try:
                data = storage.get(self.url + name, settings=self._settings)
            except ObjectNotFound:  # removed between list and get: the next reload sees it
                continue
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{self.url}{name}: not UTF-8 text at byte {exc.start}") from exc
            if name == MANIFEST:
                try:
                    loaded = json.loads(text)
                except ValueError as exc:
                    raise ConfigError(f"{self.url}{name}: not JSON ({exc})") from exc
                manifest = loaded if isinstance(loaded, dict) else {}
            else:
                sources[name] = text
        digest = _set_digest({name: text_hash(text) for name, text in sources.items()})
        version, predecessor = 0, None
        if manifest:
            m_version = manifest.get("version")
            m_digest = manifest.get("digest")
            m_pred = manifest.get("predecessor")
            if not isinstance(m_version, int) or not isinstance(m_digest, str):
                raise ConfigError(f"{self.url}{MANIFEST}: needs an integer 'version' and a string 'digest'")
            if m_digest == digest:
                version, predecessor = m_version, m_pred if isinstance(m_pred, str) else None
            else:  # edited by hand (e.g. a git checkout) after the last update: a new version
                version, predecessor = m_version + 1, m_digest
        return PolicySnapshot(self.url, sources, version=version, predecessor=predecessor, digest=digest)

    def _observe(self, snapshot: PolicySnapshot, *, subject: str) -> None:
        previous, self._last = self._last, snapshot
        if self._audit is None:
            return
        if previous is None:
            self._audit.append(
                "policy",
                subject=subject,
                action="load",
                resource=f"policyset:{self.url}",
                detail={"version": snapshot.version, "digest": snapshot.digest, "files": len(snapshot.sources)},
            )
            return
        for change in diff(previous, snapshot):
            self._audit.append(
                "policy",
                subject=subject,
                action=change.kind,
                resource=f"policy:{self.url}{change.name}",
                detail={
                    "old_hash": change.old_hash,
                    "new_hash": change.new_hash,
                    "version": snapshot.version,
                    "predecessor": snapshot.predecessor,
                    "digest": snapshot.digest,
                },
            )


def _policy_file_name(prefix_key: str, key: str) -> str | None:
    """The file name of ``key`` if it is a policy file or the manifest directly under the prefix."""
    name = key.removeprefix(prefix_key).lstrip("/")
    if "/" in name:
        return None
    if (name.endswith(POLICY_SUFFIX) and not name.startswith(".")) or name == MANIFEST:
        return name
    return None
