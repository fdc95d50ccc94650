"""Code measurement and attestation: what code is asking for a key.

:func:`measure` hashes what a task runs: the task function's byte code (and every code object
nested in it), the source files it and its module came from, the pinned versions of the
packages it depends on and the interpreter version. A dataset's key policy lists the
measurements allowed to obtain its key.

An :class:`Attester` produces :class:`Evidence` of the measurement bound to a request's
``report_data`` (the hash of the nonce and the ephemeral public key); an
:class:`EvidenceVerifier` on the key service checks it and returns the measurement.
:class:`SoftwareAttester` measures in the worker's own interpreter: **without a TEE this is a
policy gate, not a hardware proof** -- a root user on the worker can send any measurement.
A hardware attester (SGX DCAP quote with MRENCLAVE, SEV-SNP report, TDX quote with MRTD/RTMRs)
implements the same two protocols: it puts ``report_data`` into the quote, and its verifier
checks the quote's signature chain and returns the enclave measurement.

Example:
    >>> def task(x: int) -> int:
    ...     return x + 1
    >>> m = measure(task)
    >>> m.startswith("sha256:") and m == measure(task)
    True
    >>> def other(x: int) -> int:
    ...     return x + 2
    >>> measure(other) == m
    False
    >>> ev = SoftwareAttester(task).attest(b"r" * 32)
    >>> SoftwareVerifier().verify(ev, b"r" * 32) == m
    True
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xtremehub.errors import KeyReleaseDenied

__all__ = [
    "DEFAULT_PACKAGES",
    "Attester",
    "Evidence",
    "EvidenceVerifier",
    "SoftwareAttester",
    "SoftwareVerifier",
    "measure",
    "measurement_parts",
]

#: Packages whose pinned versions every measurement includes.
DEFAULT_PACKAGES: tuple[str, ...] = ("xtremehub", "cryptography", "cloudpickle")


def _code_digest(code: types.CodeType, h: Any) -> None:
    """Feed a code object to ``h``: byte code, names, constants, nested code; not line numbers or paths."""
    for part in (
        code.co_qualname,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    ):
        h.update(repr(part).encode())
        h.update(b"\x00")
    h.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            h.update(_const(const).encode())
        h.update(b"\x01")


def _const(value: object) -> str:
    """A constant's text, the same in every process: set constants (``x in {"a", "b"}``) sorted,
    as their iteration order depends on the per-process string hash seed."""
    if isinstance(value, frozenset):
        return "frozenset{" + ",".join(sorted(_const(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_const(v) for v in value) + ")"
    return repr(value)


def _file_digest(path: str | None) -> str:
    if not path:
        return "none"
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _unwrap(func: Callable[..., Any]) -> types.FunctionType:
    target: Any = func
    while isinstance(target, types.MethodType) or hasattr(target, "__wrapped__"):
        target = target.__func__ if isinstance(target, types.MethodType) else target.__wrapped__
    if not isinstance(target, types.FunctionType):
        target = getattr(target, "__call__", None)  # noqa: B004 - a callable object: measure its method
        if isinstance(target, types.MethodType):
            target = target.__func__
    if not isinstance(target, types.FunctionType):
        raise KeyReleaseDenied(f"cannot measure {type(func).__name__!r}: not a Python function")
    return target


def measurement_parts(func: Callable[..., Any], packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """What :func:`measure` hashes, readable (to explain a mismatch).

    Files are named by their base name (paths differ between machines) and hashed by content;
    a file the worker cannot read counts as ``"unreadable"``, which never matches.
    """
    target = _unwrap(func)
    h = hashlib.sha256()
    _code_digest(target.__code__, h)
    files = {Path(target.__code__.co_filename).name: _file_digest(target.__code__.co_filename)}
    module = sys.modules.get(target.__module__)
    module_file = getattr(module, "__file__", None)
    if module_file:
        files[Path(module_file).name] = _file_digest(module_file)
    return {
        "function": f"{target.__module__}:{target.__qualname__}",
        "code": h.hexdigest(),
        "files": dict(sorted(files.items())),
        "packages": {name: _version(name) for name in sorted(set(packages))},
        "interpreter": f"{sys.implementation.name}-{platform.python_version()}",
    }


def measure(func: Callable[..., Any], packages: Iterable[str] = DEFAULT_PACKAGES) -> str:
    """The code measurement of ``func``: ``"sha256:<hex>"`` over :func:`measurement_parts`."""
    canonical = json.dumps(measurement_parts(func, packages), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Evidence:
    """What a worker presents: the attestation kind, the claimed measurement and its proof.

    Attributes:
        kind: ``"software"``, or a TEE's (``"sgx-dcap"``, ``"sev-snp"``, ``"tdx"``).
        measurement: the measurement the attester claims.
        report_data: hex of the request digest the evidence is bound to.
        quote: the hardware quote (base64), empty for software evidence.
    """

    kind: str
    measurement: str
    report_data: str
    quote: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "measurement": self.measurement,
            "report_data": self.report_data,
            "quote": self.quote,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        try:
            return cls(
                str(data["kind"]), str(data["measurement"]), str(data["report_data"]), str(data.get("quote", ""))
            )
        except KeyError as exc:
            raise KeyReleaseDenied(f"evidence lacks the field {exc.args[0]!r}") from None


class Attester(Protocol):
    """Runs in the worker: evidence of the code it runs, bound to ``report_data``."""

    def attest(self, report_data: bytes) -> Evidence: ...


class EvidenceVerifier(Protocol):
    """Runs in the key service: checks evidence against ``report_data``, returns the measurement,
    or raises :class:`~xtremehub.errors.KeyReleaseDenied`."""

    def verify(self, evidence: Evidence, report_data: bytes) -> str: ...


@dataclass(frozen=True)
class SoftwareAttester:
    """Measures ``code`` with :func:`measure` in this interpreter (no hardware root of trust).

    Picklable: it travels to workers with the task, and measures the copy the worker runs.
    """

    code: Callable[..., Any]
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    _cache: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def measurement(self) -> str:
        if "m" not in self._cache:
            self._cache["m"] = measure(self.code, self.packages)
        return self._cache["m"]

    def attest(self, report_data: bytes) -> Evidence:
        return Evidence("software", self.measurement(), report_data.hex())

    def __getstate__(self) -> dict[str, Any]:
        return {"code": self.code, "packages": self.packages}  # the worker measures its own copy

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "code", state["code"])
        object.__setattr__(self, "packages", state["packages"])
        object.__setattr__(self, "_cache", {})


@dataclass(frozen=True)
class SoftwareVerifier:
    """Accepts ``"software"`` evidence bound to this request and returns its measurement.

    It cannot tell a real measurement from a forged one: it checks only the binding to the
    request. Replace it with a TEE quote verifier to make the measurement a proof.
    """

    def verify(self, evidence: Evidence, report_data: bytes) -> str:
        if evidence.kind != "software":
            raise KeyReleaseDenied(f"attestation kind {evidence.kind!r} is not accepted by this key service")
        if evidence.report_data != report_data.hex():
            raise KeyReleaseDenied("the evidence is not bound to this request (report data differs)")
        return evidence.measurement
