"""The frozen configuration of one ephemeral node service (its tiers and thresholds).

Thresholds are absolute byte counts (``"512MiB"``, ``2_000_000``) or fractions of
the medium (``0.25``: a quarter of the machine's RAM for the memory tier, of the
disk directory's file system for the disk tier).

Example:
    >>> cfg = TierConfig(memory_limit="64MiB", disk_limit=0, persist_url="s3://bucket/eph/")
    >>> cfg.memory_bytes(), cfg.disk_bytes()
    (67108864, 0)
    >>> parse_size("1.5GiB")
    1610612736
    >>> TierConfig(memory_limit="lots")
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: ephemeral memory_limit: cannot read 'lots' as a size (bytes, '512MiB' or a fraction)
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from xtremehub.errors import ConfigError

__all__ = ["TierConfig", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2}
_UNITS |= {"g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")

Size = int | float | str


def parse_size(value: Size, where: str = "size") -> int | float:
    """Bytes (int) from ``"512MiB"``/``"2GB"``/``123``, or a fraction (float in ``(0, 1]``) kept as is."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: cannot read {value!r} as a size (bytes, '512MiB' or a fraction)")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{where}: must be >= 0, not {value}")
        return value
    if isinstance(value, float):
        if not 0 < value <= 1:
            raise ConfigError(f"{where}: a fraction must be in (0, 1], not {value}")
        return value
    match = _SIZE.match(str(value))
    unit = match[2].lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(f"{where}: cannot read {value!r} as a size (bytes, '512MiB' or a fraction)")
    if not unit and "." in match[1]:
        return parse_size(float(match[1]), where)
    return int(float(match[1]) * _UNITS[unit])


@dataclass(frozen=True, kw_only=True)
class TierConfig:
    """How one node service keeps its objects.

    Attributes:
        memory_limit: Tier-0 memory budget; above it the least recently used
            objects move to the disk tier (or the persistency tier).
        disk_limit: node-local disk budget (``0``: no disk tier).
        memory_dir: where memory-tier objects live (a tmpfs: ``/dev/shm``), so that
            processes on the node map them without a copy through the service.
        disk_dir: node-local directory of the disk tier (default: a temporary directory).
        persist_url: the persistency tier, any XtremeHub store URL prefix
            (``s3://bucket/eph/``, ``/data/eph/``); ``None``: objects live only in Tier 0.
        write_back: upload every new object to the persistency tier in the background
            (AI checkpoints: written to Tier 0 at memory speed, durable soon after).
        relocate_on_close: when the service stops, relocate every object not yet in
            the persistency tier there first.
        default_ttl: seconds after which objects written without a TTL expire (``None``: never).
        admit_timeout: how long a write over the thresholds waits for spilling to free
            space before it fails with :class:`~xtremehub.errors.TierFull`.
        spill_interval: seconds between background passes of the spiller.
        background_nice: niceness added to the spiller thread and the upload threads it
            starts, so that background persistence yields the CPU to the jobs (0: none; at 10 the
            2 GB checkpoint bench showed no smaller stall and a 2.6x longer write-back).
        action_workers: at most this many processes run storage actions
            (:mod:`xtremehub.ephemeral.actions`), started when first needed.
    """

    memory_limit: Size = 0.25
    disk_limit: Size = 0
    memory_dir: Path | None = None
    disk_dir: Path | None = None
    persist_url: str | None = None
    write_back: bool = False
    relocate_on_close: bool = False
    default_ttl: float | None = None
    admit_timeout: float = 10.0
    spill_interval: float = 0.2
    background_nice: int = 0
    action_workers: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "memory_limit", parse_size(self.memory_limit, "ephemeral memory_limit"))
        object.__setattr__(self, "disk_limit", parse_size(self.disk_limit, "ephemeral disk_limit"))
        for name in ("memory_dir", "disk_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())
        if self.persist_url is not None and not self.persist_url.endswith("/"):
            object.__setattr__(self, "persist_url", self.persist_url + "/")
        if self.persist_url is not None and self.persist_url.startswith("xhub-eph://"):
            raise ConfigError("ephemeral persist_url cannot itself be an xhub-eph:// URL")
        if self.default_ttl is not None and self.default_ttl <= 0:
            raise ConfigError(f"ephemeral default_ttl must be > 0 seconds, not {self.default_ttl}")
        if not 0 <= self.background_nice <= 19:
            raise ConfigError(f"ephemeral background_nice must be in 0..19, not {self.background_nice}")
        if self.action_workers < 1:
            raise ConfigError(f"ephemeral action_workers must be >= 1, not {self.action_workers}")
        if self.admit_timeout < 0 or self.spill_interval <= 0:
            raise ConfigError("ephemeral admit_timeout must be >= 0 and spill_interval > 0")

    def memory_bytes(self) -> int:
        """The memory threshold in bytes (a fraction is of the machine's total RAM)."""
        limit = self.memory_limit
        return int(limit * psutil.virtual_memory().total) if isinstance(limit, float) else int(limit)

    def disk_bytes(self, disk_dir: Path | None = None) -> int:
        """The disk threshold in bytes (a fraction is of the disk directory's file system)."""
        limit = self.disk_limit
        if isinstance(limit, float):
            where = disk_dir or self.disk_dir or Path(os.getcwd())
            return int(limit * shutil.disk_usage(where).total)
        return int(limit)
