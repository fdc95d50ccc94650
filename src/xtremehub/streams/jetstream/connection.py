"""A connection to a NATS JetStream cluster shared by the JetStream segment store and controller.

URL form: ``nats://host:4222[,host2:4222,...][?namespace=xh&replicas=3]``. ``namespace`` prefixes
every JetStream stream, subject and key-value bucket this backend creates (several independent
stream stores can share one cluster); ``replicas`` is the JetStream replication factor of what
it creates (default: 3 when the URL names 3 or more servers, else 1).

Example:
    >>> parse_url("nats://a:4222,b:4223?namespace=lab&replicas=3")
    JetStreamSettings(servers=('nats://a:4222', 'nats://b:4223'), namespace='lab', replicas=3, timeout=30.0)
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs

from xtremehub.errors import InvalidStreamArgument, MissingDependency, ServerUnavailable
from xtremehub.streams.jetstream._loop import LoopThread

__all__ = ["BACKEND", "REQUEST_TIMEOUT", "JetStreamConnection", "JetStreamSettings", "parse_url", "transient"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How errors and docs name this backend.
BACKEND = "NATS JetStream backend"

#: Seconds one JetStream request waits for its reply before it is retried (same message id, so a
#: retried publish lands once): short, so that a request lost with a node is re-sent soon.
REQUEST_TIMEOUT = 2.0

_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class JetStreamSettings:
    """Where the cluster is and how this store lays itself out in it."""

    servers: tuple[str, ...]
    namespace: str = "xh"
    replicas: int = 1
    #: Seconds an operation keeps retrying through a leader election or a lost node before failing.
    timeout: float = 30.0


def parse_url(url: str) -> JetStreamSettings:
    """Settings of a ``nats://`` URL (``InvalidStreamArgument`` naming the URL when malformed)."""
    if not url.startswith("nats://"):
        raise InvalidStreamArgument(f"{url!r}: a JetStream URL starts with nats://")
    hosts, _, query = url[len("nats://") :].partition("?")
    servers = tuple(f"nats://{h.strip()}" for h in hosts.split(",") if h.strip())
    if not servers:
        raise InvalidStreamArgument(f"{url!r}: no server named")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    namespace = params.pop("namespace", "xh")
    if not _NAMESPACE.match(namespace):
        raise InvalidStreamArgument(f"{url!r}: namespace {namespace!r} must be 1-32 letters, digits, '_' or '-'")
    try:
        replicas = int(params.pop("replicas", "3" if len(servers) >= 3 else "1"))
        timeout = float(params.pop("timeout", "30"))
    except ValueError as exc:
        raise InvalidStreamArgument(f"{url!r}: replicas and timeout must be numbers") from exc
    if params:
        raise InvalidStreamArgument(f"{url!r}: unknown parameters {sorted(params)}")
    if not 1 <= replicas <= 5:
        raise InvalidStreamArgument(f"{url!r}: replicas must be 1 to 5 (JetStream's limit)")
    return JetStreamSettings(servers, namespace, replicas, timeout)


def transient(exc: BaseException) -> bool:
    """True for errors a leader election or a lost node causes: retry the operation."""
    import nats.errors
    import nats.js.errors

    if isinstance(exc, nats.js.errors.ServiceUnavailableError | nats.js.errors.NoStreamResponseError):
        return True
    if isinstance(exc, nats.js.errors.APIError):
        return exc.code in (503, 504) or exc.err_code in (10008, 10077)  # cluster not available / leader gone
    return isinstance(
        exc,
        nats.errors.TimeoutError
        | nats.errors.NoRespondersError
        | nats.errors.ConnectionReconnectingError
        | asyncio.TimeoutError,
    )


class JetStreamConnection:
    """One nats-py client on a background event loop; closed when the last user releases it."""

    def __init__(self, settings: JetStreamSettings) -> None:
        try:
            import nats
        except ImportError as exc:  # pragma: no cover - the extra is installed in tests
            raise MissingDependency("the JetStream backend needs nats-py: pip install 'xtremehub[nats]'") from exc
        self.settings = settings
        self.loop = LoopThread(f"nats-{settings.namespace}")
        self._users = 0
        self._lock = threading.Lock()
        try:
            self.nc: Any = self.loop.run(
                nats.connect(
                    servers=list(settings.servers),
                    connect_timeout=5,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.2,
                    name=f"xtremehub-{settings.namespace}",
                ),
                timeout=60,
            )
        except Exception as exc:
            self.loop.stop()
            raise ServerUnavailable(f"{BACKEND}: cannot connect to {','.join(settings.servers)}: {exc}") from exc
        self.js: Any = self.nc.jetstream(timeout=REQUEST_TIMEOUT)

    @classmethod
    def open(cls, url: str) -> JetStreamConnection:
        """Connect to the cluster a ``nats://`` URL names."""
        return cls(parse_url(url))

    def acquire(self) -> JetStreamConnection:
        """Count one more user (a store or a controller)."""
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        """One user is done; the last one closes the client and stops the loop."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            try:
                self.loop.run(self.nc.close(), timeout=10)
            except Exception:  # closing anyway
                log.debug("closing the NATS connection", exc_info=True)
            self.loop.stop()

    def call(self, make: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``make()`` on the loop, retrying through failover for up to the configured timeout."""
        return self.loop.run(self.retry(make, what))

    async def retry(self, make: Callable[[], Awaitable[T]], what: str) -> T:
        """Await ``make()``, again after transient errors until ``settings.timeout`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout
        pause = 0.02
        while True:
            try:
                return await make()
            except Exception as exc:
                if not transient(exc):
                    raise
                if loop.time() > deadline:
                    raise ServerUnavailable(f"{BACKEND}: {what}: cluster unavailable: {exc!r}") from exc
                log.debug("%s: %r, retrying", what, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)

    async def ensure_stream(self, name: str, subjects: list[str], **config: Any) -> None:
        """Create a JetStream stream unless it exists."""
        import nats.js.errors

        try:
            await self.js.stream_info(name)
            return
        except nats.js.errors.NotFoundError:
            pass
        await self.js.add_stream(
            name=name, subjects=subjects, num_replicas=self.settings.replicas, storage="file", **config
        )
