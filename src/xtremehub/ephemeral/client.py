"""Clients of the node service, and the :class:`Store` behind ``xhub-eph://bucket/key`` URLs.

A client on the node of the service (it can read the service's node token in the
memory directory) writes objects straight into the memory tier and reads them by
opening or mapping their files: the service only commits and locates. Elsewhere,
bytes travel over the TCP connection. ``XHUB_EPH_ADDRESS=host:port`` names a
service explicitly (another node); otherwise the service announced under
``settings.home`` is used. ``XHUB_EPH_LOCAL=0`` forces the TCP path.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub import storage
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> settings = Settings(home=Path(tempfile.mkdtemp()))
    >>> svc = NodeService(TierConfig(memory_limit="16MiB"), settings).start()
    >>> storage.put("xhub-eph://scratch/a.txt", b"tier zero", settings=settings).size
    9
    >>> storage.get_range("xhub-eph://scratch/a.txt", 5, 9, settings=settings)
    b'zero'
    >>> svc.stop()
"""

from __future__ import annotations

import builtins
import mmap
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xtremehub.config import Settings
from xtremehub.ephemeral.rpc import RpcClient
from xtremehub.ephemeral.service import read_service_file
from xtremehub.errors import InvalidRange, StorageError, StorageUnavailable
from xtremehub.storage.base import ObjectInfo, PutSource, Store
from xtremehub.storage.chunks import iter_chunks

__all__ = ["EphemeralClient", "EphemeralStore", "client_for", "reset_clients"]

_CHUNK = 8 << 20


class EphemeralClient:
    """Operations on one node service (thread- and fork-safe)."""

    def __init__(self, address: str, *, local: bool | None = None) -> None:
        self.address = address
        self.rpc = RpcClient(address)
        hello, _ = self.rpc.call("hello")
        self.node_token = str(hello["node_token"])
        self.tmp_dir = Path(hello["tmp_dir"])
        if local is None:
            local = os.environ.get("XHUB_EPH_LOCAL", "1") != "0" and self._same_node(Path(hello["memory_dir"]))
        self.local = local

    def _same_node(self, memory_dir: Path) -> bool:
        try:
            return (memory_dir / ".node-token").read_text() == self.node_token
        except OSError:
            return False

    # -- writes ----------------------------------------------------------------------------------
    def put(
        self, bucket: str, key: str, data: PutSource, *, ttl: float | None = None, pin: bool = False
    ) -> dict[str, Any]:
        """Write an object; visible to readers only once complete (last complete write wins)."""
        options = {"bucket": bucket, "key": key, "ttl": ttl, "pin": pin}
        if not self.local:
            if isinstance(data, bytes | bytearray | memoryview):
                return self.rpc.call("put", options, memoryview(data))[0]
            return self.rpc.stream("put", {**options, "stream": True}, b"", iter_chunks(data, _CHUNK))[0]
        tmp = self.tmp_dir / f"w-{os.urandom(16).hex()}"
        try:
            with open(tmp, "wb") as fh:
                if isinstance(data, bytes | bytearray | memoryview):
                    fh.write(data)
                else:
                    for chunk in iter_chunks(data, _CHUNK):
                        fh.write(chunk)
            return self.rpc.call("commit", {**options, "tmp": str(tmp)})[0]
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"xhub-eph://{bucket}/{key}", f"writing into Tier 0 failed: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- reads -----------------------------------------------------------------------------------
    def locate(self, bucket: str, key: str) -> dict[str, Any]:
        return self.rpc.call("locate", {"bucket": bucket, "key": key})[0]

    def _open_local(self, bucket: str, key: str) -> int:
        for _ in range(5):
            path = self.locate(bucket, key)["path"]  # ObjectNotFound (a FileNotFoundError) passes
            try:
                return os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # moved to another tier between locate and open
        raise StorageError(f"xhub-eph://{bucket}/{key}", "object kept moving between tiers; retry")

    def read(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (clipped); :class:`InvalidRange` when ``start`` is past the end."""
        if not self.local:
            return self.rpc.call("read", {"bucket": bucket, "key": key, "start": start, "end": end})[1]
        fd = self._open_local(bucket, key)
        try:
            size = os.fstat(fd).st_size
            if start > size:
                raise InvalidRange(f"xhub-eph://{bucket}/{key}", f"bytes [{start}, {end}) start past the end ({size})")
            return _pread_all(fd, min(end, size) - start, start)
        finally:
            os.close(fd)

    def view(self, bucket: str, key: str) -> memoryview:
        """A read-only, zero-copy view of the whole object (a mapping of its Tier-0 file; same node only).

        The view stays valid even if the object is replaced or spilled meanwhile.
        """
        if not self.local:
            return memoryview(self.read(bucket, key, 0, 1 << 62))
        fd = self._open_local(bucket, key)
        try:
            if os.fstat(fd).st_size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(fd, 0, prot=mmap.PROT_READ))
        finally:
            os.close(fd)

    def head(self, bucket: str, key: str) -> dict[str, Any]:
        return self.rpc.call("head", {"bucket": bucket, "key": key})[0]

    def list(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        return list(self.rpc.call("list", {"bucket": bucket, "prefix": prefix})[0]["objects"])

    def delete(self, bucket: str, key: str) -> None:
        self.rpc.call("delete", {"bucket": bucket, "key": key})

    def copy(self, bucket: str, src: str, dst: str) -> dict[str, Any]:
        return self.rpc.call("copy", {"bucket": bucket, "src": src, "dst": dst})[0]

    # -- policies --------------------------------------------------------------------------------
    def pin(self, bucket: str, key: str, pinned: bool = True) -> None:
        """Keep an object in Tier 0 memory (``pinned=False`` releases it)."""
        self.rpc.call("pin", {"bucket": bucket, "key": key, "pinned": pinned})

    def relocate(self, bucket: str, prefix: str, *, to: str | None = None, wait: bool = True) -> builtins.list[str]:
        """Copy Tier-0 objects under ``prefix`` to the persistency tier (or the URL prefix ``to``)."""
        return list(self.rpc.call("relocate", {"bucket": bucket, "prefix": prefix, "to": to, "wait": wait})[0]["urls"])

    def stats(self) -> dict[str, Any]:
        """Bytes per tier, hits, read-throughs, spills and uploads of the node."""
        return dict(self.rpc.call("stats")[0]["stats"])

    def close(self) -> None:
        self.rpc.close()


def _pread_all(fd: int, count: int, offset: int) -> bytes:
    if count <= 0:
        return b""
    data = os.pread(fd, count, offset)
    if len(data) == count:
        return data
    parts = [data]
    got = len(data)
    while got < count:
        more = os.pread(fd, count - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


_CLIENTS: dict[tuple[str, int], EphemeralClient] = {}
_CLIENTS_LOCK = threading.Lock()


def service_address(settings: Settings) -> str:
    """``XHUB_EPH_ADDRESS``, else the address announced under ``settings.home``."""
    return os.environ.get("XHUB_EPH_ADDRESS") or str(read_service_file(settings)["address"])


def client_for(settings: Settings) -> EphemeralClient:
    """The (cached, per process) client of the node service ``settings`` lead to."""
    address = service_address(settings)
    key = (address, os.getpid())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
    if client is None:
        client = EphemeralClient(address)
        with _CLIENTS_LOCK:
            client = _CLIENTS.setdefault(key, client)
    return client


def reset_clients(address: str | None = None) -> None:
    """Close and forget this process's cached clients (of ``address``, or all): after a service stops."""
    with _CLIENTS_LOCK:
        keys = [k for k in _CLIENTS if address is None or k[0] == address]
        clients = [_CLIENTS.pop(k) for k in keys]
    for client in clients:
        client.close()


def _info(bucket: str, raw: dict[str, Any]) -> ObjectInfo:
    key = str(raw["key"])
    mtime = datetime.fromtimestamp(float(raw["mtime"]), tz=UTC) if raw.get("mtime") is not None else None
    return ObjectInfo(
        url=f"xhub-eph://{bucket}/{key}", key=key, size=int(raw["size"]), etag=raw.get("etag"), mtime=mtime
    )


class EphemeralStore(Store):
    """``xhub-eph://bucket/key``: one bucket of the node service's tiers.

    Buckets need no creation. :meth:`open` on the service's node reads the Tier-0
    file directly.
    """

    max_concurrency = 8

    def __init__(self, bucket: str, settings: Settings) -> None:
        self.bucket = bucket
        self.settings = settings

    @property
    def client(self) -> EphemeralClient:
        try:
            return client_for(self.settings)
        except StorageUnavailable as exc:
            raise StorageUnavailable(self.url(""), exc.detail) from None

    def __repr__(self) -> str:
        return f"EphemeralStore({self.bucket!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EphemeralStore) and (other.bucket, other.settings.home) == (
            self.bucket,
            self.settings.home,
        )

    def __hash__(self) -> int:
        return hash(("xhub-eph", self.bucket, self.settings.home))

    def url(self, key: str) -> str:
        return f"xhub-eph://{self.bucket}/{key}"

    def get(self, key: str) -> bytes:
        return self.client.read(self.bucket, key, 0, 1 << 62)

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        return self.client.read(self.bucket, key, start, end)

    def put(self, key: str, data: PutSource) -> ObjectInfo:
        return _info(self.bucket, self.client.put(self.bucket, key, data))

    def head(self, key: str) -> ObjectInfo:
        return _info(self.bucket, self.client.head(self.bucket, key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for raw in self.client.list(self.bucket, prefix):
            yield _info(self.bucket, raw)

    def delete(self, key: str) -> None:
        self.client.delete(self.bucket, key)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        return _info(self.bucket, self.client.copy(self.bucket, src, dst))
