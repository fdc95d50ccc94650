"""Typed, frozen settings: explicit arguments > ``XHUB_*`` environment > config file > defaults.

The config file is TOML, found at ``$XHUB_CONFIG`` or ``~/.config/xtremehub/config.toml``::

    home = "/data/xhub"               # XHUB_HOME: data home of the embedded default
    log_level = "INFO"                # XHUB_LOG_LEVEL

    [s3]                              # XHUB_S3_<FIELD>, e.g. XHUB_S3_ENDPOINT_URL
    endpoint_url = "https://s3.eu-west-1.amazonaws.com"
    region = "eu-west-1"

    [s3.buckets.scratch]              # per-bucket override: fields not given inherit [s3]
    endpoint_url = "http://127.0.0.1:8333"
    access_key_id = "admin"
    secret_access_key = "secret"
    addressing_style = "path"

    [executor]                        # XHUB_EXECUTOR_<FIELD>
    backend = "local"
    workers = 4

    [telemetry]                       # XHUB_TELEMETRY_<FIELD>
    dir = "s3://bucket/telemetry/"    # XHUB_TELEMETRY_DIR: one JSON-lines object per job

    [catalog]                         # XHUB_CATALOG_<FIELD>
    url = "postgresql://catalog@db.example/xhub"  # XHUB_CATALOG_URL; default sqlite <home>/catalog.db
    admins = ["alice"]                # subjects that may decide any access request
    policies = "s3://governance/policies/"  # where approved access requests become usage policies
    lineage = true                    # XHUB_CATALOG_LINEAGE=1: every executor records job lineage
    streams = "tcp://streams.example:9090"  # what xhub-stream:// URLs name; default <home>/streams
    streams_lts = "s3://streams/lts/" # that store's LTS (needed with a tcp:// server)
    audit_log = "/var/log/xhub/catalog.log"  # default <home>/audit/catalog.log; "off": none

    [encryption]                      # XHUB_ENCRYPTION_<FIELD>: enc+<scheme>:// stores
    keys = "file:///etc/xhub/keyring.json"  # where KEKs come from (a URL, never a key)
    dataset = "genomes"               # whose KEK wraps the data keys of new objects
    chunk_size = 65536                # plaintext bytes per AES-GCM chunk

When no S3 credential is configured, the standard ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` and
``AWS_ENDPOINT_URL`` variables are used, so existing AWS set-ups keep working.

Example:
    >>> s = Settings.load(env={"XHUB_S3_REGION": "eu-west-1"}, config_file=None)
    >>> s.s3.region
    'eu-west-1'
    >>> s.replace(executor=ExecutorSettings(workers=8)).executor.workers
    8
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xtremehub.errors import ConfigError

__all__ = [
    "CatalogSettings",
    "EncryptionSettings",
    "ExecutorSettings",
    "S3Settings",
    "Settings",
    "TelemetrySettings",
    "configured_settings",
    "default_config_path",
    "default_settings",
    "use_process_settings",
]

_SECRETS = ("access_key_id", "secret_access_key", "session_token")

AddressingStyle = Literal["auto", "path", "virtual"]
StartMethod = Literal["fork", "forkserver", "spawn"]


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """How to reach an S3-compatible store (AWS, MinIO, Ceph, SeaweedFS)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing_style: AddressingStyle = "auto"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_retries: int = 3
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    max_concurrency: int = 32
    list_page_size: int = 1000  # keys per LIST request (S3 caps it at 1000)

    @property
    def has_credentials(self) -> bool:
        """Whether an access key, secret or session token is set."""
        return any(getattr(self, name) is not None for name in _SECRETS)

    def without_secrets(self) -> S3Settings:
        """A copy with no credential: what may travel to other processes."""
        return dataclasses.replace(self, access_key_id=None, secret_access_key=None, session_token=None)

    def __post_init__(self) -> None:
        if self.addressing_style not in ("auto", "path", "virtual"):
            raise ConfigError(f"s3.addressing_style must be auto, path or virtual, not {self.addressing_style!r}")
        for name in ("connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"s3.{name} must be > 0")
        if self.max_retries < 0 or self.max_concurrency < 1:
            raise ConfigError("s3.max_retries must be >= 0 and s3.max_concurrency >= 1")


@dataclass(frozen=True, kw_only=True)
class ExecutorSettings:
    """Defaults for :class:`xtremehub.FunctionExecutor`."""

    backend: str = "local"
    workers: int | None = None  # None: one per CPU core
    retries: int = 0
    start_method: StartMethod = "fork" if os.name == "posix" else "spawn"
    progress: bool | None = None  # None: only on a TTY

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"executor.workers must be >= 1, not {self.workers}")
        if self.retries < 0:
            raise ConfigError(f"executor.retries must be >= 0, not {self.retries}")
        if self.start_method not in ("fork", "forkserver", "spawn"):
            raise ConfigError(f"executor.start_method must be fork, forkserver or spawn, not {self.start_method!r}")


@dataclass(frozen=True, kw_only=True)
class TelemetrySettings:
    """Where task telemetry goes (see ``docs/telemetry.md``).

    ``dir``: a local directory or storage URL prefix; when set, every job's task
    records are written there as ``<job_id>.jsonl``. ``None`` (default): kept in
    memory only (``fexec.job_summary()``).
    """

    dir: str | None = None


@dataclass(frozen=True, kw_only=True)
class EncryptionSettings:
    """How ``enc+<scheme>://`` stores encrypt (see ``docs/security.md``, "Encryption at rest").

    ``keys``: a key-source URL naming where key-encryption keys come from
    (``file:///path/keyring.json``, ``mem://name``, or a key-service URL); ``None``: the file
    keyring ``<home>/keys/keyring.json``. Only this URL travels to workers, never a key.
    ``dataset``: whose KEK wraps the data keys of objects written (readers take the dataset
    from each object's header). ``chunk_size``: plaintext bytes per AES-GCM chunk of new objects.
    """

    keys: str | None = None
    dataset: str = "default"
    chunk_size: int = 64 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= 64 * 1024 * 1024:
            raise ConfigError(f"encryption.chunk_size must be in [1, 67108864], not {self.chunk_size}")
        if not self.dataset:
            raise ConfigError("encryption.dataset must not be empty")


@dataclass(frozen=True, kw_only=True)
class CatalogSettings:
    """Where the data catalog lives (see ``docs/catalog.md``).

    ``url``: ``sqlite:///path/catalog.db`` or ``postgresql://user@host:port/db``; ``None``: the
    embedded default ``<home>/catalog.db``. ``admins``: subjects allowed to decide any access
    request (besides the dataset's owner). ``policies``: the policy source (directory or storage
    prefix) where approved access requests are written as Cedar usage policies; ``None``:
    ``<home>/policies/``. ``audit_log``: the hash-chained audit log (a local file: every process
    that opens the catalog appends to it) of every catalog change, access request and decision; ``None``:
    ``<home>/audit/catalog.log``; ``"off"``: none. Its checkpoints are signed with
    ``<home>/audit.key`` (created if missing).

    Example:
        >>> CatalogSettings(admins="alice, bob").admins
        ('alice', 'bob')
        >>> CatalogSettings().audit_location(Path("/data/xhub"))
        '/data/xhub/audit/catalog.log'
        >>> CatalogSettings(audit_log="off").audit_location(Path("/data/xhub")) is None
        True
    """

    url: str | None = None
    admins: tuple[str, ...] = ()
    policies: str | None = None
    #: every FunctionExecutor records job lineage in this catalog (``XHUB_CATALOG_LINEAGE=1``)
    lineage: bool = False
    #: the stream store ``xhub-stream://<scope>/<stream>`` URLs name: a stream server
    #: (``tcp://host:port``) or an embedded store's data directory (None: ``<home>/streams``)
    streams: str | None = None
    #: that store's long-term storage URL (None: the embedded store's default; a server needs it)
    streams_lts: str | None = None
    audit_log: str | None = None

    def audit_location(self, home: Path) -> str | None:
        """Where catalog changes and decisions are audited (None: auditing turned off)."""
        if self.audit_log is None:
            return str(home / "audit" / "catalog.log")
        return None if self.audit_log.strip().lower() == "off" else self.audit_log

    def __post_init__(self) -> None:
        admins: object = self.admins
        if isinstance(admins, str):
            admins = [a.strip() for a in admins.split(",") if a.strip()]
        if not isinstance(admins, list | tuple) or not all(isinstance(a, str) for a in admins):
            raise ConfigError(f"catalog.admins must be a list of subjects, not {self.admins!r}")
        object.__setattr__(self, "admins", tuple(admins))
        if self.audit_log is not None and "://" in self.audit_log:
            raise ConfigError(
                f"catalog.audit_log must be a local file, not {self.audit_log!r}: every process that opens "
                "the catalog appends to it (a file is locked per append; a storage prefix has one writer)"
            )
        if self.url is not None and not self.url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ConfigError(f"catalog.url must be a sqlite:/// or postgresql:// URL, not {self.url!r}")


def _default_home() -> Path:
    return Path("~/.xtremehub").expanduser()


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All XtremeHub settings; immutable, passed explicitly.

    Build with :meth:`load` (file + environment + overrides) or directly.
    """

    home: Path = field(default_factory=_default_home)
    log_level: str = "WARNING"
    s3: S3Settings = field(default_factory=S3Settings)
    buckets: Mapping[str, S3Settings] = field(default_factory=dict)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    encryption: EncryptionSettings = field(default_factory=EncryptionSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        # A read-only view keeps the frozen promise for the per-bucket table too.
        object.__setattr__(self, "buckets", types.MappingProxyType(dict(self.buckets)))

    def __hash__(self) -> int:
        return hash(
            (
                self.home,
                self.log_level,
                self.s3,
                tuple(sorted(self.buckets.items())),
                self.executor,
                self.telemetry,
                self.encryption,
                self.catalog,
            )
        )

    def s3_for(self, bucket: str) -> S3Settings:
        """S3 settings for one bucket: its override if any, else the global ``[s3]`` table."""
        return self.buckets.get(bucket, self.s3)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def without_secrets(self) -> Settings:
        """A copy with every S3 credential removed (global and per bucket): what travels to workers.

        Example:
            >>> s = Settings(s3=S3Settings(endpoint_url="http://s3:8333", secret_access_key="x"))
            >>> s.without_secrets().s3.secret_access_key is None, s.without_secrets().s3.endpoint_url
            (True, 'http://s3:8333')
        """
        return self.replace(
            s3=self.s3.without_secrets(), buckets={b: s.without_secrets() for b, s in self.buckets.items()}
        )

    def __reduce__(self) -> tuple[object, ...]:
        # mappingproxy is not picklable; rebuild from a plain dict.
        return (
            _rebuild_settings,
            (
                self.home,
                self.log_level,
                self.s3,
                dict(self.buckets),
                self.executor,
                self.telemetry,
                self.encryption,
                self.catalog,
            ),
        )

    @classmethod
    def load(
        cls,
        *,
        config_file: Path | str | Literal["default"] | None = "default",
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read settings: ``overrides`` > ``XHUB_*`` in ``env`` > config file > ``AWS_*`` > defaults.

        Args:
            config_file: a TOML file, ``None`` for none, or ``"default"`` for
                ``$XHUB_CONFIG`` / ``~/.config/xtremehub/config.toml`` (if it exists).
            env: environment to read (default ``os.environ``).
            overrides: top-level fields (``home``, ``log_level``) or whole sections
                given as objects or dicts (``s3={"region": "x"}``).
        """
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        path = default_config_path(env) if config_file == "default" else config_file
        if path is not None and (config_file != "default" or Path(path).exists()):
            raw = _read_toml(Path(path))
        _apply_aws_env(raw, env)
        _apply_xhub_env(raw, env)
        for key, value in overrides.items():
            if dataclasses.is_dataclass(value):
                raw[key] = value
            elif isinstance(value, Mapping) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return _build_settings(raw, source=str(path) if path else "<arguments>")


def _rebuild_settings(
    home: Path,
    log_level: str,
    s3: S3Settings,
    buckets: dict[str, S3Settings],
    executor: ExecutorSettings,
    telemetry: TelemetrySettings | None = None,
    encryption: EncryptionSettings | None = None,
    catalog: CatalogSettings | None = None,
) -> Settings:
    return Settings(
        home=home,
        log_level=log_level,
        s3=s3,
        buckets=buckets,
        executor=executor,
        telemetry=telemetry or TelemetrySettings(),
        encryption=encryption or EncryptionSettings(),
        catalog=catalog or CatalogSettings(),
    )


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XHUB_CONFIG`` or ``~/.config/xtremehub/config.toml``."""
    env = os.environ if env is None else env
    if env.get("XHUB_CONFIG"):
        return Path(env["XHUB_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path("~/.config").expanduser()
    return base / "xtremehub" / "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


_AWS_ENV = {
    "AWS_ENDPOINT_URL_S3": "endpoint_url",
    "AWS_ENDPOINT_URL": "endpoint_url",
    "AWS_REGION": "region",
    "AWS_DEFAULT_REGION": "region",
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
}


def _apply_aws_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    s3 = raw.setdefault("s3", {})
    if not isinstance(s3, dict):
        return  # not a table: _build_section reports it as a ConfigError
    for var, name in _AWS_ENV.items():
        if env.get(var) and name not in s3:
            s3[name] = env[var]


_SECTIONS: dict[str, type[Any]] = {
    "s3": S3Settings,
    "executor": ExecutorSettings,
    "telemetry": TelemetrySettings,
    "encryption": EncryptionSettings,
    "catalog": CatalogSettings,
}


def _apply_xhub_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for top in ("home", "log_level"):
        if f"XHUB_{top.upper()}" in env:
            raw[top] = env[f"XHUB_{top.upper()}"]
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            var = f"XHUB_{section.upper()}_{f.name.upper()}"
            if var in env:
                table = raw.setdefault(section, {})
                if not isinstance(table, dict):
                    raise ConfigError(f"{section} must be a table, not {table!r}")
                table[f.name] = env[var]


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Turn a TOML/env value into the field's declared type, with a clear error."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, args))}, not {value!r}")
        return value
    if (annotation in (int, float) and isinstance(value, bool)) or (
        annotation is int and isinstance(value, float) and not value.is_integer()
    ):  # int(True) == 1 and int(2.5) == 2 would silently accept a wrong value
        raise ConfigError(f"{where}: cannot read {value!r} as {annotation.__name__}")
    try:
        if annotation is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("1", "true", "yes", "on")
            return bool(value)
        if annotation in (int, float, str):
            return annotation(value)
        if annotation is Path:
            return Path(str(value)).expanduser()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {value!r} as {annotation.__name__}") from exc
    return value


def _build_section(cls: type[Any], raw: Any, where: str, base: Any = None) -> Any:
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table, not {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known - ({"buckets"} if where == "s3" else set())
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items() if k in known}
    if base is not None:
        try:
            return dataclasses.replace(base, **values)
        except ConfigError as exc:  # name the bucket table, not just the field
            raise ConfigError(f"{where}: {exc}") from exc
    return cls(**values)


#: Tables of the config file that other modules read themselves (``[web]``: xtremehub.web.config).
_FOREIGN_TABLES = frozenset({"web"})


def _build_settings(raw: Mapping[str, Any], source: str) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(raw) - known - _FOREIGN_TABLES
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    if "home" in raw:
        kwargs["home"] = _coerce(raw["home"], Path, "home")
    if "log_level" in raw:
        kwargs["log_level"] = str(raw["log_level"]).upper()
    s3_raw = raw.get("s3", {})
    s3 = _build_section(S3Settings, s3_raw, "s3")
    kwargs["s3"] = s3
    buckets_raw: dict[str, Any] = {}
    s3_buckets = s3_raw.get("buckets", {}) if isinstance(s3_raw, Mapping) else {}
    for where, table in (("s3.buckets", s3_buckets), ("buckets", raw.get("buckets", {}))):
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table of per-bucket tables, not {table!r}")
        buckets_raw.update(table)
    kwargs["buckets"] = {
        name: _build_section(S3Settings, table, f"s3.buckets.{name}", base=s3) for name, table in buckets_raw.items()
    }
    if "executor" in raw:
        kwargs["executor"] = _build_section(ExecutorSettings, raw["executor"], "executor")
    if "telemetry" in raw:
        kwargs["telemetry"] = _build_section(TelemetrySettings, raw["telemetry"], "telemetry")
    if "encryption" in raw:
        kwargs["encryption"] = _build_section(EncryptionSettings, raw["encryption"], "encryption")
    if "catalog" in raw:
        kwargs["catalog"] = _build_section(CatalogSettings, raw["catalog"], "catalog")
    return Settings(**kwargs)


_process_settings: Settings | None = None
_loaded: tuple[tuple[tuple[str, str], ...], Settings] | None = None


def use_process_settings(settings: Settings | None) -> None:
    """Make ``settings`` this process's default (called once by worker bootstrap code).

    A worker started by an executor receives its executor's settings this way, so
    store URLs resolve on the worker exactly as on the client.
    """
    global _process_settings
    _process_settings = settings


def default_settings() -> Settings:
    """This process's settings: those given to :func:`use_process_settings`, else
    :func:`configured_settings`."""
    if _process_settings is not None:
        return _process_settings
    return configured_settings()


def configured_settings() -> Settings:
    """What this process's own configuration says (:meth:`Settings.load`), whatever
    :func:`use_process_settings` installed; re-read when ``XHUB_*``/``AWS_*`` variables change.

    Workers look up credentials here that their executor did not ship.
    """
    global _loaded
    snapshot = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("XHUB_", "AWS_"))))
    if _loaded is None or _loaded[0] != snapshot:
        _loaded = (snapshot, Settings.load())
    return _loaded[1]
