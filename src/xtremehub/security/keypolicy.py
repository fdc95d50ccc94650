"""Per-dataset key policy documents (modelled on SCONE CAS sessions).

A :class:`KeyPolicy` says who may obtain a dataset's key-encryption key: subjects and roles,
purposes of use, and the code measurements (see :mod:`.attest`) a worker must present. Each
update carries the next ``version`` and the ``predecessor`` digest of the document it replaces;
the key service refuses an update based on anything but the current document
(:class:`~xtremehub.errors.StalePolicy`), so two administrators cannot silently overwrite
each other.

Example:
    >>> first = KeyPolicy("genomes", roles=frozenset({"research"}), purposes=frozenset({"research"}))
    >>> first.version, first.predecessor
    (1, None)
    >>> second = first.successor(measurements=frozenset({"sha256:ab"}))
    >>> second.version, second.predecessor == first.digest()
    (2, True)
    >>> KeyPolicy.from_dict(second.to_dict()) == second
    True
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xtremehub.errors import ConfigError

__all__ = ["DATASET_NAME", "KeyPolicy", "check_dataset_name"]

#: Dataset names: letters, digits and ``._-/``; no ``..``.
DATASET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$")


def check_dataset_name(name: str) -> str:
    """``name`` if it is a valid dataset name, else :class:`ConfigError`."""
    if not isinstance(name, str) or not DATASET_NAME.match(name) or ".." in name:
        raise ConfigError(f"dataset name {name!r} is invalid (letters, digits and ._-/, at most 200)")
    return name


def _strings(data: Mapping[str, Any], key: str, source: str) -> frozenset[str]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple | frozenset | set) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: field {key!r} must be a list of strings")
    return frozenset(value)


@dataclass(frozen=True)
class KeyPolicy:
    """Who, for which purpose and with which code may obtain ``dataset``'s key.

    An empty ``subjects`` and ``roles`` admit nobody (deny by default); an empty
    ``measurements`` admits no code. ``purposes`` empty admits no purpose.

    Attributes:
        dataset: the dataset the key belongs to.
        subjects: token subjects (users or clients) allowed.
        roles: roles, any of which admits the caller.
        purposes: purposes of use the key may be released for.
        measurements: code measurements (``sha256:...``) allowed to receive the key.
        version: 1 for the first document, +1 per update.
        predecessor: :meth:`digest` of the document this one replaces (None for version 1).
    """

    dataset: str
    subjects: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    measurements: frozenset[str] = frozenset()
    version: int = 1
    predecessor: str | None = None

    def __post_init__(self) -> None:
        check_dataset_name(self.dataset)
        if not isinstance(self.version, int) or self.version < 1:
            raise ConfigError(f"key policy of {self.dataset!r}: version must be an integer >= 1")
        for name in ("subjects", "roles", "purposes", "measurements"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """The document as plain JSON data, lists sorted."""
        return {
            "dataset": self.dataset,
            "subjects": sorted(self.subjects),
            "roles": sorted(self.roles),
            "purposes": sorted(self.purposes),
            "measurements": sorted(self.measurements),
            "version": self.version,
            "predecessor": self.predecessor,
        }

    def canonical(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical JSON: what the next version names as predecessor."""
        return "sha256:" + hashlib.sha256(self.canonical()).hexdigest()

    def successor(self, **changes: Any) -> KeyPolicy:
        """The next version with ``changes``, based on this one."""
        return replace(self, **changes, version=self.version + 1, predecessor=self.digest())

    def admits(self, subject: str, roles: frozenset[str]) -> bool:
        return subject in self.subjects or bool(self.roles & roles)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "key policy") -> KeyPolicy:
        """Parse a document; :class:`ConfigError` names the field that is wrong."""
        known = {"dataset", "subjects", "roles", "purposes", "measurements", "version", "predecessor"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {sorted(unknown)}")
        if "dataset" not in data or not isinstance(data["dataset"], str):
            raise ConfigError(f"{source}: field 'dataset' (a string) is required")
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"{source}: field 'version' must be an integer")
        predecessor = data.get("predecessor")
        if predecessor is not None and not isinstance(predecessor, str):
            raise ConfigError(f"{source}: field 'predecessor' must be a string")
        return cls(
            dataset=data["dataset"],
            subjects=_strings(data, "subjects", source),
            roles=_strings(data, "roles", source),
            purposes=_strings(data, "purposes", source),
            measurements=_strings(data, "measurements", source),
            version=version,
            predecessor=predecessor,
        )

    @classmethod
    def load(cls, path: Path | str) -> KeyPolicy:
        """Read a ``.toml`` or ``.json`` document."""
        path = Path(path)
        try:
            text = path.read_text()
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read key policy: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a key policy is a table/object")
        return cls.from_dict(data, source=str(path))
