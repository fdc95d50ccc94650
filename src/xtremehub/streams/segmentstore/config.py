"""Configuration of the segment store: one frozen value passed to :class:`SegmentStore`.

Example:
    >>> cfg = SegmentStoreConfig(data_dir="/tmp/xhub-doc-store")
    >>> cfg.lts_url
    '/tmp/xhub-doc-store/lts/'
    >>> cfg.backlog_budget == cfg.memory_budget + cfg.disk_budget
    True
    >>> SegmentStoreConfig(data_dir="/tmp/x", memory_budget=-1)
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: segment store memory_budget must be >= 0, not -1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xtremehub.config import EncryptionSettings, Settings
from xtremehub.errors import ConfigError

__all__ = ["SegmentStoreConfig"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True, kw_only=True)
class SegmentStoreConfig:
    """Where the store keeps its data and how much memory and disk it may use.

    Budgets: appended bytes not yet in long-term storage (LTS) are held in memory up to
    ``memory_budget`` and on local disk (the write-ahead log doubles as the spill tier) up to
    ``disk_budget`` more. Past ``memory_budget + disk_budget`` appends block and finally raise
    :class:`~xtremehub.errors.BackPressure` (after the caller's timeout, or
    ``backpressure_timeout``). Nothing acknowledged is lost.
    """

    #: Local directory owned by one store: WAL files, lock file, default LTS.
    data_dir: Path
    #: Long-term storage URL prefix (a local directory or ``s3://bucket/prefix/``);
    #: default ``<data_dir>/lts/``.
    lts_url: str = ""
    #: Settings used to reach the LTS store (S3 endpoint, credentials); default: the process settings.
    settings: Settings | None = field(default=None, repr=False)
    memory_budget: int = 256 * MiB
    disk_budget: int = 4 * GiB
    #: Roll to a new WAL file once the current one is this large.
    wal_file_size: int = 64 * MiB
    #: fsync (fdatasync) every group commit; turning it off loses the crash guarantee.
    fsync: bool = True
    #: Wait up to this many seconds for more appends before a group commit (0: commit at once;
    #: appends arriving during an fsync are batched anyway).
    group_commit_delay: float = 0.0
    #: Largest number of bytes written by one group commit.
    group_commit_bytes: int = 16 * MiB
    #: Largest single append (events are framed by the client; 8 MiB events plus headers fit).
    max_append_size: int = 9 * MiB
    #: Target size of one LTS chunk object.
    lts_chunk_size: int = 16 * MiB
    #: Seconds between tiering passes.
    tiering_interval: float = 1.0
    #: A segment's untiered bytes go to LTS once they fill half a chunk, or are this many seconds
    #: old, or at once when the segment is sealed or the backlog passes half the memory budget
    #: (so slow segments do not make many tiny chunk objects).
    lts_flush_delay: float = 5.0
    #: Backoff after an LTS failure: first delay and cap (doubles in between).
    lts_retry_initial: float = 0.5
    lts_retry_max: float = 30.0
    #: Size of each ranged GET of historical reads (LTS objects are read in parts of this size).
    lts_read_part_size: int = 8 * MiB
    #: Parts fetched ahead of a reader that reads a segment in order (0: none), and the bytes all
    #: such parts may hold together (in flight or fetched, not yet read); see :mod:`.readahead`.
    lts_read_ahead: int = 8
    lts_read_ahead_budget: int = 256 * MiB
    #: Default back-pressure timeout for appends that give none (``None``: wait forever).
    backpressure_timeout: float | None = 30.0
    #: Encryption at rest: WAL files (AES-256-CTR, see :mod:`.walcipher`) and LTS chunks (an
    #: ``enc+`` LTS store: AES-256-GCM envelopes) with keys from this key source and dataset
    #: (``keys=None``: the file keyring under the settings' home). ``None``: plaintext.
    encryption: EncryptionSettings | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if not self.lts_url:
            object.__setattr__(self, "lts_url", f"{self.data_dir / 'lts'}/")
        elif not self.lts_url.endswith("/"):
            object.__setattr__(self, "lts_url", self.lts_url + "/")
        for name in ("memory_budget", "disk_budget", "lts_read_ahead", "lts_read_ahead_budget"):
            if getattr(self, name) < 0:
                raise ConfigError(f"segment store {name} must be >= 0, not {getattr(self, name)}")
        for name in ("wal_file_size", "group_commit_bytes", "max_append_size", "lts_chunk_size", "lts_read_part_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"segment store {name} must be > 0, not {getattr(self, name)}")
        for name in ("group_commit_delay", "tiering_interval", "lts_flush_delay", "lts_retry_initial", "lts_retry_max"):
            if getattr(self, name) < 0:
                raise ConfigError(f"segment store {name} must be >= 0, not {getattr(self, name)}")

    @property
    def backlog_budget(self) -> int:
        """Untiered bytes accepted before appends are throttled."""
        return self.memory_budget + self.disk_budget

    @property
    def lts_store_url(self) -> str:
        """The URL the LTS chunks are written to: ``lts_url``, behind ``enc+`` when encrypting."""
        if self.encryption is None or self.lts_url.startswith("enc+"):
            return self.lts_url
        return ("enc+" if "://" in self.lts_url else "enc+file://") + self.lts_url

    @property
    def lts_settings(self) -> Settings | None:
        """The settings the LTS store is opened with (carrying ``encryption`` when set)."""
        if self.encryption is None:
            return self.settings
        from xtremehub.config import default_settings

        return (self.settings or default_settings()).replace(encryption=self.encryption)

    @property
    def wal_dir(self) -> Path:
        return self.data_dir / "wal"
