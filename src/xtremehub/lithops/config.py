"""Lithops configuration dicts, read the way Lithops reads them, mapped to XtremeHub settings.

A Lithops user's config (``{'lithops': {'storage': 'minio', ...}, 'minio': {...}}``,
or the YAML file Lithops reads) keeps working: :func:`default_config` fills in
Lithops's defaults and :func:`settings_for` turns the storage section (``localhost``,
``aws_s3``, ``minio``, ``ceph``, ... endpoints and credentials) into
:class:`~xtremehub.config.Settings`.

Example:
    >>> cfg = default_config({"lithops": {"storage": "minio"},
    ...                       "minio": {"endpoint": "http://127.0.0.1:9000", "storage_bucket": "b",
    ...                                 "access_key_id": "k", "secret_access_key": "s"}})
    >>> extract_storage_config(cfg)["backend"]
    'minio'
    >>> settings_for(extract_storage_config(cfg)).s3.endpoint_url
    'http://127.0.0.1:9000'
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from xtremehub.config import S3Settings, Settings, default_settings
from xtremehub.errors import ConfigError

__all__ = [
    "LITHOPS_TEMP_DIR",
    "S3_BACKENDS",
    "default_config",
    "extract_storage_config",
    "load_yaml_config",
    "settings_for",
]

#: Where Lithops's localhost storage keeps its buckets (the same place, so both see the same objects).
LITHOPS_TEMP_DIR = os.path.join(os.path.realpath(tempfile.gettempdir()), f"lithops-{os.getenv('USER', 'root')}")
#: Lithops storage backends that speak the S3 protocol: XtremeHub reaches them with its S3 store.
S3_BACKENDS = frozenset({"aws_s3", "minio", "ceph", "ibm_cos", "oracle_oss", "s3", "infinispan_s3"})
#: Config sections whose ``endpoint`` needs path-style addressing (self-hosted stores).
_PATH_STYLE = frozenset({"minio", "ceph"})


def load_yaml_config(config_filename: str) -> dict[str, Any]:
    """Read a Lithops YAML config file (needs PyYAML, which Lithops installs)."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - PyYAML comes with lithops
        from xtremehub.errors import MissingDependency

        raise MissingDependency("reading a Lithops YAML config needs PyYAML: pip install pyyaml") from exc
    with open(config_filename) as fh:
        data = yaml.safe_load(fh)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{config_filename}: a Lithops config must be a mapping, not {type(data).__name__}")
    return data


def default_config(
    config_data: Mapping[str, Any] | None = None,
    config_overwrite: Mapping[str, Any] | None = None,
    config_file: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """A full Lithops config: ``config_data`` (else ``config_file``, ``LITHOPS_CONFIG_FILE``,
    ``~/.lithops/config``) with Lithops's defaults filled in and ``config_overwrite`` applied."""
    if config_data is None:
        path = config_file or os.environ.get("LITHOPS_CONFIG_FILE") or os.path.expanduser("~/.lithops/config")
        config_data = load_yaml_config(path) if os.path.exists(path) else {}
    config = copy.deepcopy(dict(config_data))
    for section, values in (config_overwrite or {}).items():
        config.setdefault(section, {}).update(values)
    lithops = config.setdefault("lithops", {})
    lithops.setdefault("backend", "localhost")
    lithops.setdefault("storage", "localhost")
    lithops.setdefault("mode", "localhost" if lithops["backend"] == "localhost" else "serverless")
    lithops.setdefault("monitoring", "storage")
    storage = lithops["storage"]
    section = config.setdefault(storage, {})
    if "storage_bucket" in lithops:
        section.setdefault("storage_bucket", lithops["storage_bucket"])
    if storage == "localhost":
        section.setdefault("storage_bucket", "storage")
    config.setdefault("localhost", {})
    return config


def extract_storage_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a Lithops config a storage client needs (as Lithops's function of that name)."""
    backend = config["lithops"]["storage"]
    return {
        "monitoring_interval": config["lithops"].get("monitoring_interval", 2),
        "backend": backend,
        backend: dict(config.get(backend, {})),
    }


def settings_for(storage_config: Mapping[str, Any], base: Settings | None = None) -> Settings:
    """XtremeHub settings reaching the store a Lithops storage config names.

    S3-compatible backends map ``endpoint``, ``region``, ``access_key_id``,
    ``secret_access_key`` and ``session_token``; other backends leave ``base`` as it is.
    """
    base = base or default_settings()
    backend = storage_config.get("backend", "localhost")
    if backend not in S3_BACKENDS:
        return base
    section = storage_config.get(backend, {})
    fields: dict[str, Any] = {}
    endpoint = section.get("endpoint") or section.get("endpoint_url")
    if endpoint:
        fields["endpoint_url"] = endpoint if "://" in endpoint else f"https://{endpoint}"
    for name in ("region", "access_key_id", "secret_access_key", "session_token"):
        if section.get(name):
            fields[name] = section[name]
    if backend == "aws_s3" and "region" not in fields and section.get("region_name"):
        fields["region"] = section["region_name"]
    if backend in _PATH_STYLE:
        fields["addressing_style"] = "path"
    if not fields:
        return base
    s3 = base.s3
    return base.replace(s3=S3Settings(**{**{f: getattr(s3, f) for f in s3.__dataclass_fields__}, **fields}))
