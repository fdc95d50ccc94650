"""Tier 0 (memory, node disk) over a persistency tier: the state of one node service.

Every object version is one file: in ``memory_dir`` (a tmpfs such as ``/dev/shm``,
so that processes on the node map it without a copy) or in ``disk_dir``. A write
lands in a temporary file and becomes visible by one index update under a lock
(:meth:`TieredStore.commit`): readers never see a partial object, and of two
writers of one key the one whose write *completes* last wins, atomically. Replaced
versions are unlinked; a reader that already opened one keeps reading it whole.

A background spiller keeps the tiers under their thresholds: least recently used,
unpinned objects move from memory to disk, and from disk to the persistency tier
(uploaded first when they are not there yet). With ``write_back`` every new object
is uploaded in the background while it stays in Tier 0. Uploads run on the one
spiller thread, in commit order, so an older version never overwrites a newer one.
When the persistency tier fails, Tier 0 keeps accepting writes up to its thresholds
and then refuses them with :class:`~xtremehub.errors.TierFull`; uploads resume when
the tier is back.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> tiers = TieredStore(TierConfig(memory_limit="1MiB", memory_dir=d / "m", persist_url=str(d / "p")))
    >>> _ = tiers.put_bytes("b", "k.txt", b"hello")
    >>> tiers.relocate("b", "k", wait=True)
    ['xhub-eph://b/k.txt']
    >>> (d / "p" / "b" / "k.txt").read_bytes()
    b'hello'
    >>> tiers.close()
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from xtremehub import storage
from xtremehub.config import Settings, default_settings
from xtremehub.ephemeral.config import TierConfig
from xtremehub.errors import ObjectNotFound, StorageError, StorageUnavailable, TierFull

__all__ = ["Entry", "TieredStore"]

log = logging.getLogger(__name__)

Tier = Literal["memory", "disk", "persist"]


def eph_url(bucket: str, key: str) -> str:
    return f"xhub-eph://{bucket}/{key}"


@dataclass
class Entry:
    """One object version known to the node."""

    bucket: str
    key: str
    size: int
    etag: str
    mtime: float
    tier: Tier
    path: Path | None
    dirty: bool  # not (yet) in the persistency tier
    pinned: bool = False
    expires: float | None = None
    last_access: float = field(default_factory=time.monotonic)

    def info(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "etag": self.etag, "mtime": self.mtime, "tier": self.tier}


@dataclass
class Stats:
    """Counters of one node (see :meth:`TieredStore.stats`)."""

    hits_memory: int = 0
    hits_disk: int = 0
    read_through: int = 0
    misses: int = 0
    demotions: int = 0
    spills: int = 0
    spilled_bytes: int = 0
    uploads: int = 0
    uploaded_bytes: int = 0
    upload_failures: int = 0
    expired: int = 0
    rejected_writes: int = 0


class TieredStore:
    """The tiers of one node: thread-safe; one instance per node service."""

    def __init__(self, config: TierConfig, settings: Settings | None = None) -> None:
        self.config = config
        self.settings = settings or default_settings()
        self.node_id = uuid.uuid4().hex
        shm = Path("/dev/shm")  # noqa: S108 - the node's tmpfs: memory files other processes map
        mem_root = config.memory_dir or (shm if shm.is_dir() else Path(tempfile.gettempdir()))
        self._owned: list[Path] = []
        self.memory_dir = self._make_dir(mem_root, config.memory_dir is None)
        self.disk_dir = self._make_dir(config.disk_dir or Path(tempfile.gettempdir()), config.disk_dir is None)
        self.tmp_dir = self.memory_dir / "tmp"
        self.tmp_dir.mkdir(exist_ok=True)
        (self.memory_dir / ".node-token").write_text(self.node_id)
        self.memory_limit = config.memory_bytes()
        self.disk_limit = config.disk_bytes(self.disk_dir)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._index: dict[tuple[str, str], Entry] = {}
        self._bytes = {"memory": 0, "disk": 0}
        self._pending = 0  # bytes of writes waiting for room: the spiller makes room for them too
        self._stats = Stats()
        self._persist_ok = True
        self._retry_at = 0.0
        self._closing = False
        self._relocations: list[tuple[list[Entry], str | None, threading.Event, list[str], list[BaseException]]] = []
        #: Storage actions (:mod:`xtremehub.ephemeral.actions`) see every commit first: called with
        #: ``(bucket, key, tmp, ttl, pin)``, they return the committed object's info when they
        #: handled the write (committing through :meth:`commit_version`), ``None`` when not theirs.
        self.write_hook: Callable[[str, str, Path, float | None, bool], dict[str, Any] | None] | None = None
        self._spiller = threading.Thread(target=self._spill_loop, name="xhub-eph-spiller", daemon=True)
        self._spiller.start()

    def _make_dir(self, root: Path, owned: bool) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="xhub-eph-", dir=root)) if owned else root
        if owned:
            _sweep_dead(root)
            (path / ".pid").write_text(str(os.getpid()))
            self._owned.append(path)
        else:  # a configured directory: start empty (Tier 0 does not survive a restart)
            for child in path.iterdir():
                if child.name.startswith(("o-", "tmp")):
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        return path

    # -- writes ------------------------------------------------------------------------------
    def new_tmp(self) -> Path:
        """A fresh temporary file path in the memory tier for a writer to fill and :meth:`commit`."""
        return self.tmp_dir / f"w-{uuid.uuid4().hex}"

    def commit(
        self, bucket: str, key: str, tmp: Path, *, ttl: float | None = None, pin: bool = False
    ) -> dict[str, Any]:
        """Make the written file ``tmp`` the current version of ``key`` (last complete write wins)."""
        url = eph_url(bucket, key)
        if not key or key.endswith("/"):
            tmp.unlink(missing_ok=True)
            raise ObjectNotFound(url, "an object key must be non-empty and not end with '/'")
        if tmp.parent != self.tmp_dir or not tmp.name.startswith("w-"):
            raise StorageError(url, f"{tmp} is not a temporary file of this node service")
        hook = self.write_hook
        if hook is not None:  # storage actions: transform or reduce the write, or None (not theirs)
            handled = hook(bucket, key, tmp, ttl, pin)
            if handled is not None:
                return handled
        return self.commit_version(bucket, key, tmp, ttl=ttl, pin=pin)

    def commit_version(
        self, bucket: str, key: str, tmp: Path, *, ttl: float | None = None, pin: bool = False
    ) -> dict[str, Any]:
        """:meth:`commit` without the :attr:`write_hook` (what the hook itself commits with)."""
        url = eph_url(bucket, key)
        try:
            size = tmp.stat().st_size
        except FileNotFoundError:
            raise StorageError(url, "the written temporary file vanished before commit") from None
        try:
            self._admit(url, size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        version = uuid.uuid4().hex
        path = self.memory_dir / f"o-{version}"
        os.rename(tmp, path)
        ttl = ttl if ttl is not None else self.config.default_ttl
        now = time.monotonic()
        entry = Entry(
            bucket, key, size, version, time.time(), "memory", path, True, pin, now + ttl if ttl else None, now
        )
        with self._lock:
            entry.mtime = time.time()  # taken under the lock: commit order is mtime order
            old = self._index.get((bucket, key))
            self._index[(bucket, key)] = entry
            self._bytes["memory"] += size
            if old is not None:
                self._forget(old)
            self._changed.notify_all()
        return entry.info()

    def put_bytes(self, bucket: str, key: str, data: bytes, **options: Any) -> dict[str, Any]:
        tmp = self.new_tmp()
        tmp.write_bytes(data)
        return self.commit(bucket, key, tmp, **options)

    def _admit(self, url: str, size: int) -> None:
        """Wait (bounded) until Tier 0 can hold ``size`` more bytes, else :class:`TierFull`."""
        capacity = self.memory_limit + self.disk_limit
        deadline = time.monotonic() + self.config.admit_timeout
        with self._lock:
            while self._bytes["memory"] + self._bytes["disk"] + size > capacity:
                if size > capacity:
                    self._stats.rejected_writes += 1
                    raise TierFull(url, f"object of {size} bytes is larger than Tier 0 ({capacity} bytes)")
                left = deadline - time.monotonic()
                if left <= 0:
                    self._pending = 0
                    self._stats.rejected_writes += 1
                    state = "available" if self._persist_ok else "unavailable"
                    raise TierFull(
                        url,
                        f"Tier 0 holds {self._bytes['memory']} B in memory and {self._bytes['disk']} B on disk "
                        f"(thresholds {self.memory_limit} + {self.disk_limit}); persistency tier "
                        f"{self.config.persist_url or '(none)'} is {state}: retry later",
                    )
                self._pending = size
                self._changed.notify_all()
                self._changed.wait(min(left, 0.1))
            self._pending = 0

    def _forget(self, entry: Entry) -> None:
        """Drop ``entry``'s Tier-0 file (lock held)."""
        if entry.tier in ("memory", "disk") and entry.path is not None:
            self._bytes[entry.tier] -= entry.size
            entry.path.unlink(missing_ok=True)
        entry.tier, entry.path = "persist", None

    # -- reads -------------------------------------------------------------------------------
    def locate(self, bucket: str, key: str) -> dict[str, Any]:
        """Where the current version of ``key`` lives in Tier 0 (read through from the persistency tier)."""
        with self._lock:
            entry = self._lookup(bucket, key)
            if entry is not None and entry.path is not None:
                entry.last_access = time.monotonic()
                if entry.tier == "memory":
                    self._stats.hits_memory += 1
                else:
                    self._stats.hits_disk += 1
                return {**entry.info(), "path": str(entry.path)}
        return self._read_through(bucket, key)

    def _lookup(self, bucket: str, key: str) -> Entry | None:
        entry = self._index.get((bucket, key))
        if entry is not None and entry.expires is not None and entry.expires <= time.monotonic():
            self._expire(entry)
            return None
        return entry

    def _expire(self, entry: Entry) -> None:
        self._forget(entry)
        self._index.pop((entry.bucket, entry.key), None)
        self._stats.expired += 1

    def _persist_url(self, bucket: str, key: str) -> str | None:
        return None if self.config.persist_url is None else f"{self.config.persist_url}{bucket}/{key}"

    def _read_through(self, bucket: str, key: str) -> dict[str, Any]:
        url = eph_url(bucket, key)
        remote = self._persist_url(bucket, key)
        if remote is None:
            with self._lock:
                self._stats.misses += 1
            raise ObjectNotFound(url, "no such key in Tier 0 (and no persistency tier)")
        tmp = self.new_tmp()
        try:
            with storage.open(remote, settings=self.settings) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
        except ObjectNotFound:
            tmp.unlink(missing_ok=True)
            with self._lock:
                self._stats.misses += 1
            raise ObjectNotFound(url, f"no such key in Tier 0 nor in {remote}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        size = tmp.stat().st_size
        version = uuid.uuid4().hex
        path = self.memory_dir / f"o-{version}"
        os.rename(tmp, path)
        now = time.monotonic()
        with self._lock:
            self._stats.read_through += 1
            current = self._index.get((bucket, key))
            if current is not None and current.path is not None:  # written meanwhile: that one wins
                path.unlink()
                return {**current.info(), "path": str(current.path)}
            entry = Entry(bucket, key, size, version, time.time(), "memory", path, False, last_access=now)
            if current is not None:
                entry.pinned, entry.expires = current.pinned, current.expires
            self._index[(bucket, key)] = entry
            self._bytes["memory"] += size
            self._changed.notify_all()
            return {**entry.info(), "path": str(path)}

    def head(self, bucket: str, key: str) -> dict[str, Any]:
        with self._lock:
            entry = self._lookup(bucket, key)
            if entry is not None:
                return entry.info()
        remote = self._persist_url(bucket, key)
        if remote is None:
            raise ObjectNotFound(eph_url(bucket, key), "no such key")
        try:
            info = storage.head(remote, settings=self.settings)
        except ObjectNotFound:
            raise ObjectNotFound(eph_url(bucket, key), f"no such key in Tier 0 nor in {remote}") from None
        mtime = info.mtime.timestamp() if info.mtime else time.time()
        return {"key": key, "size": info.size, "etag": info.etag or "", "mtime": mtime, "tier": "persist"}

    def list(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """Objects under ``prefix``: Tier 0 and the persistency tier, the Tier-0 version first."""
        found: dict[str, dict[str, Any]] = {}
        if self.config.persist_url is not None:
            base = f"{self.config.persist_url}{bucket}/"
            for info in storage.list(base + prefix, settings=self.settings):
                key = info.url[len(base) :] if info.url.startswith(base) else info.key
                if key.startswith(prefix):
                    mtime = info.mtime.timestamp() if info.mtime else 0.0
                    found[key] = {"key": key, "size": info.size, "etag": info.etag, "mtime": mtime, "tier": "persist"}
        with self._lock:
            for (b, key), entry in list(self._index.items()):
                if b == bucket and key.startswith(prefix) and self._lookup(b, key) is not None:
                    found[key] = entry.info()
        return [found[k] for k in sorted(found)]

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            entry = self._lookup(bucket, key)
            if entry is not None:
                self._forget(entry)
                del self._index[(bucket, key)]
        remote = self._persist_url(bucket, key)
        if remote is not None and (entry is None or not entry.dirty):
            try:
                storage.delete(remote, settings=self.settings)
            except ObjectNotFound:
                if entry is None:
                    raise ObjectNotFound(eph_url(bucket, key), "no such key") from None
        elif entry is None:
            raise ObjectNotFound(eph_url(bucket, key), "no such key")

    # -- policies ------------------------------------------------------------------------------
    def pin(self, bucket: str, key: str, pinned: bool = True) -> None:
        """Keep ``key`` in Tier 0 memory (never demoted nor spilled) until unpinned."""
        self.locate(bucket, key)  # read it in if it is only in the persistency tier
        with self._lock:
            entry = self._index[(bucket, key)]
            entry.pinned = pinned

    def relocate(self, bucket: str, prefix: str, *, to: str | None = None, wait: bool = True) -> builtins.list[str]:
        """Copy the Tier-0 objects under ``prefix`` to the persistency tier (or the URL prefix ``to``).

        Objects relocated to the persistency tier become clean: they may leave Tier 0
        without another upload. Returns the ``xhub-eph://`` URLs relocated (with
        ``wait``; without, the work is queued and ``[]`` returned).
        """
        if to is None and self.config.persist_url is None:
            raise StorageError(eph_url(bucket, prefix), "no persistency tier configured: give to=URL")
        with self._lock:
            entries = sorted(
                (e for (b, k), e in self._index.items() if b == bucket and k.startswith(prefix) and e.path),
                key=lambda e: e.key,
            )
            done, failed = threading.Event(), builtins.list[BaseException]()
            urls: builtins.list[str] = []
            self._relocations.append((entries, to, done, urls, failed))
            self._changed.notify_all()
        if not wait:
            return []
        done.wait()
        if failed:
            raise failed[0]
        return urls

    def stats(self) -> dict[str, Any]:
        """Bytes and objects per tier, hits, read-throughs, spills, uploads."""
        with self._lock:
            counts = {"memory": 0, "disk": 0, "persist": 0}
            dirty = 0
            for entry in self._index.values():
                counts[entry.tier] += 1
                dirty += entry.dirty
            return {
                "memory_bytes": self._bytes["memory"],
                "disk_bytes": self._bytes["disk"],
                "memory_limit": self.memory_limit,
                "disk_limit": self.disk_limit,
                "objects_memory": counts["memory"],
                "objects_disk": counts["disk"],
                "objects_persist_only": counts["persist"],
                "objects_not_persisted": dirty,
                "persist_available": self._persist_ok,
                **vars(self._stats),
            }

    # -- background spilling -------------------------------------------------------------------
    def _spill_loop(self) -> None:
        if self.config.background_nice:  # uploads yield the CPU to the jobs writing (Linux: per thread,
            try:  # inherited by the upload threads this one starts)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.config.background_nice)
            except (AttributeError, OSError) as exc:
                log.debug("ephemeral: cannot lower the spiller's priority: %s", exc)
        while True:
            with self._lock:
                if self._closing:
                    return
                self._changed.wait(self.config.spill_interval)
                if self._closing:
                    return
            try:
                self._spill_once()
            except Exception:  # never let the spiller die
                log.exception("ephemeral spiller pass failed")

    def _spill_once(self) -> None:
        self._run_relocations()
        now = time.monotonic()
        with self._lock:
            for old in [e for e in self._index.values() if e.expires is not None and e.expires <= now]:
                self._expire(old)
        while (entry := self._pick("memory", self.memory_limit)) is not None:
            if not self._demote(entry):
                break
        while (entry := self._pick("disk", self.disk_limit)) is not None:
            if not self._evict(entry):
                break
        if self.config.write_back:
            while (entry := self._next_dirty()) is not None:
                if not self._upload(entry):
                    break

    def _pick(self, tier: Tier, limit: int) -> Entry | None:
        with self._lock:
            if self._bytes[tier] + self._pending <= limit:
                return None
            candidates = [e for e in self._index.values() if e.tier == tier and not e.pinned]
            return min(candidates, key=lambda e: e.last_access, default=None)

    def _next_dirty(self) -> Entry | None:
        if not self._persist_usable():
            return None
        with self._lock:
            dirty = [e for e in self._index.values() if e.dirty and e.path is not None]
            return min(dirty, key=lambda e: e.mtime, default=None)

    def _persist_usable(self) -> bool:
        return self.config.persist_url is not None and (self._persist_ok or time.monotonic() >= self._retry_at)

    def _demote(self, entry: Entry) -> bool:
        """Move one memory object to disk (if there is room), else out of Tier 0."""
        while True:  # make room on disk by spilling its least recently used objects first (one LRU order)
            with self._lock:
                if self._bytes["disk"] + entry.size <= self.disk_limit:
                    break
                candidates = [e for e in self._index.values() if e.tier == "disk" and not e.pinned]
                victim = min(candidates, key=lambda e: e.last_access, default=None)
            if victim is None or entry.size > self.disk_limit:
                return self._evict(entry)
            if not self._evict(victim):
                return False
        target = self.disk_dir / f"o-{entry.etag}"
        src = entry.path
        if src is None:
            return True
        try:
            shutil.copyfile(src, target)
        except FileNotFoundError:
            return True  # replaced meanwhile
        except OSError as exc:  # disk full, I/O error: keep it in memory
            log.warning("ephemeral: cannot demote %s to disk: %s", eph_url(entry.bucket, entry.key), exc)
            target.unlink(missing_ok=True)
            return self._evict(entry)
        with self._lock:
            if self._index.get((entry.bucket, entry.key)) is not entry or entry.path != src:
                target.unlink(missing_ok=True)
                return True
            self._bytes["memory"] -= entry.size
            self._bytes["disk"] += entry.size
            entry.tier, entry.path = "disk", target
            self._stats.demotions += 1
            self._changed.notify_all()
        src.unlink(missing_ok=True)
        return True

    def _evict(self, entry: Entry) -> bool:
        """Take one object out of Tier 0, uploading it first when it is not persisted."""
        if entry.dirty and not self._upload(entry):
            return False
        with self._lock:
            if self._index.get((entry.bucket, entry.key)) is not entry or entry.dirty or entry.path is None:
                return True
            self._stats.spills += 1
            self._stats.spilled_bytes += entry.size
            self._forget(entry)
            self._changed.notify_all()
        return True

    def _upload(self, entry: Entry, to: str | None = None) -> bool:
        """Copy one object to the persistency tier (or ``to``); ``False`` when that tier fails."""
        target = to or self._persist_url(entry.bucket, entry.key)
        if target is None or (to is None and not self._persist_usable()):
            return False
        with self._lock:
            path = entry.path
        if path is None:
            return True
        try:
            with open(path, "rb") as fh:
                storage.put(target, fh, settings=self.settings)
        except FileNotFoundError:
            return True  # replaced or deleted meanwhile: the newer version has its own turn
        except StorageError as exc:
            with self._lock:
                self._stats.upload_failures += 1
                if to is None:
                    self._persist_ok = False
                    self._retry_at = time.monotonic() + 1.0
            log.warning("ephemeral: upload of %s to %s failed: %s", eph_url(entry.bucket, entry.key), target, exc)
            if to is not None:
                raise
            return False
        with self._lock:
            self._stats.uploads += 1
            self._stats.uploaded_bytes += entry.size
            if to is None:
                self._persist_ok = True
                if entry.path == path:
                    entry.dirty = False
            self._changed.notify_all()
        return True

    def _run_relocations(self) -> None:
        with self._lock:
            jobs, self._relocations = self._relocations, []
        for entries, to, done, urls, failed in jobs:
            try:
                for entry in entries:
                    target = None if to is None else to.rstrip("/") + "/" + entry.key
                    if to is None and not entry.dirty:
                        urls.append(eph_url(entry.bucket, entry.key))
                        continue
                    if not self._upload(entry, target):
                        raise StorageUnavailable(
                            self.config.persist_url or "", f"cannot relocate {eph_url(entry.bucket, entry.key)}"
                        )
                    urls.append(eph_url(entry.bucket, entry.key))
            except BaseException as exc:
                failed.append(exc)
            finally:
                done.set()

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop spilling; with ``relocate_on_close``, persist every object not yet persisted first."""
        if self.config.relocate_on_close and self.config.persist_url is not None:
            with self._lock:
                buckets = sorted({b for (b, _), e in self._index.items() if e.dirty and e.path})
            for bucket in buckets:
                try:
                    self.relocate(bucket, "")
                except StorageError as exc:
                    log.error("ephemeral: relocate on close of bucket %s failed: %s", bucket, exc)
        with self._lock:
            self._closing = True
            self._changed.notify_all()
        self._spiller.join(timeout=30)
        for path in self._owned:
            shutil.rmtree(path, ignore_errors=True)

    def iter_entries(self) -> Iterator[Entry]:
        with self._lock:
            yield from list(self._index.values())


def _sweep_dead(root: Path) -> None:
    """Remove the Tier-0 directories that killed services left behind (their process is gone)."""
    for child in root.glob("xhub-eph-*"):
        try:
            pid = int((child / ".pid").read_text())
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(pid):
            log.info("ephemeral: removing %s of a service that is gone (pid %d)", child, pid)
            shutil.rmtree(child, ignore_errors=True)
