"""Ephemeral tiered store: ``xhub-eph://bucket/key`` objects in Tier 0 (memory, node disk)
over a persistency tier (any XtremeHub store URL), served by one node service per node.

* :class:`TierConfig` (frozen): thresholds, directories, persistency tier, write-back,
  relocate-on-close, default TTL.
* :class:`NodeService` / ``xhub eph serve``: the node's tiers behind a small RPC server
  with named handlers; :class:`ServiceProcess` runs it as a child process.
* :class:`EphemeralClient`: put/read/view (zero-copy on the node)/pin/relocate/stats;
  ``xhub-eph://`` URLs work wherever XtremeHub takes a URL, and with ``fsspec``.
* :mod:`xtremehub.ephemeral.actions`: storage actions, code run next to the data in the
  node service's workers (on-write transforms, on-read views, reducers).

See ``docs/ephemeral.md``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub import storage
    >>> from xtremehub.config import Settings
    >>> d = Path(tempfile.mkdtemp())
    >>> settings = Settings(home=d)
    >>> with NodeService(TierConfig(memory_limit="16MiB", persist_url=str(d / "s3")), settings).start() as svc:
    ...     _ = storage.put("xhub-eph://ckpt/step-1.bin", b"weights", settings=settings)
    ...     client = client_for(settings)
    ...     client.relocate("ckpt", "step-")
    ...     bytes(client.view("ckpt", "step-1.bin"))
    ['xhub-eph://ckpt/step-1.bin']
    b'weights'
    >>> (d / "s3" / "ckpt" / "step-1.bin").read_bytes()
    b'weights'
"""

from __future__ import annotations

from xtremehub.ephemeral.client import EphemeralClient, EphemeralStore, client_for
from xtremehub.ephemeral.config import TierConfig, parse_size
from xtremehub.ephemeral.service import NodeService, ServiceProcess

__all__ = [
    "EphemeralClient",
    "EphemeralStore",
    "NodeService",
    "ServiceProcess",
    "TierConfig",
    "client_for",
    "parse_size",
]
