"""The policy engine: Cedar policies deciding :class:`~xtremehub.security.authz.AccessRequest` s.

:class:`CedarAuthorizer` implements :class:`~xtremehub.security.authz.Authorizer` with the
`Cedar <https://www.cedarpolicy.com>`_ language (evaluated by ``cedarpy``, the Rust engine).
Nothing outside this module sees Cedar: callers build an ``AccessRequest`` and get a
``Decision`` naming the policy that decided it. Deny by default: a request no policy permits,
or that any ``forbid`` policy matches, is denied.

How a request looks to a policy (namespace ``XHub``):

- ``principal``: ``XHub::User::"<subject>"``, a member (``in``) of ``XHub::Role::"<role>"`` for
  each role and ``XHub::Group::"<group>"`` for each group; attributes ``roles``, ``groups``
  (sets of strings), ``issuer``, and ``job`` / ``client`` when the identity has them.
- ``action``: ``XHub::Action::"read"``, ``"write"``, ``"admin"`` or ``"process"``.
- ``resource`` by :attr:`~xtremehub.security.authz.Resource.kind`:

  ====================  ==================================================================
  ``object``            ``XHub::Object::"s3://bucket/a/b/x.fq"`` in ``XHub::Prefix::"s3://bucket/a/b/"``
                        in ``XHub::Prefix::"s3://bucket/a/"`` in ``XHub::Bucket::"s3://bucket"``
                        (a name ending in ``/`` is itself a ``Prefix``)
  ``dataset``           ``XHub::Dataset::"<name>"``
  ``scope``/``stream``  ``XHub::Scope::"<scope>"``; ``XHub::Stream::"<scope>/<stream>"`` in its scope
  ``key``               ``XHub::Key::"<dataset>"`` (or ``"<dataset>#<version>"``) in ``XHub::Dataset::"<dataset>"``
  ====================  ==================================================================

  with the resource's string, integer, boolean and string-list attributes as entity attributes.
- ``context``: ``purpose`` (``""`` when none), ``time`` (Unix seconds), ``hour`` (0-23) and
  ``weekday`` (1 = Monday .. 7) in the configured time zone, and ``now`` (a Cedar ``datetime``).

A policy's id is its ``@id("...")`` annotation, else ``<file>#<n>``; an ``@reason("...")``
annotation is the reason a decision by it gives.

Example:
    >>> from xtremehub import storage
    >>> from xtremehub.security.authz import AccessRequest, Action, Resource
    >>> from xtremehub.security.identity import Identity
    >>> _ = storage.put("mem://policy-engine-doc/p/research.cedar", b'''
    ... @id("research-read") @reason("researchers read the lungs bucket for research")
    ... permit(principal in XHub::Role::"research", action == XHub::Action::"read",
    ...        resource in XHub::Bucket::"s3://lungs") when { context.purpose == "research" };''')
    >>> authz = CedarAuthorizer(PolicyConfig(sources=("mem://policy-engine-doc/p/",)))
    >>> alice = Identity("alice", roles=frozenset({"research"}))
    >>> fastq = Resource("object", "s3://lungs/ct/1.fq")
    >>> d = authz.decide(AccessRequest(alice, Action.READ, fastq, purpose="research"))
    >>> d.allowed, d.policy_id
    (True, 'research-read')
    >>> authz.check(AccessRequest(alice, Action.WRITE, fastq))
    Traceback (most recent call last):
    ...
    xtremehub.errors.Forbidden: alice may not write object 's3://lungs/ct/1.fq': no policy permits it \
(deny by default) [policy default-deny]
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xtremehub.config import Settings
from xtremehub.errors import ConfigError, MissingDependency, StorageError
from xtremehub.security.audit import forbidden
from xtremehub.security.authz import AccessRequest, Decision
from xtremehub.security.policy_store import PolicySnapshot, PolicyStore

if TYPE_CHECKING:
    import cedarpy

    from xtremehub.security.audit import AuditLog
    from xtremehub.security.authz import Authorizer
    from xtremehub.security.residual import Condition

__all__ = [
    "DEFAULT_DENY",
    "CedarAuthorizer",
    "PolicyConfig",
    "build_authorizer",
    "compile_policies",
    "object_name",
    "request_to_cedar",
]

log = logging.getLogger(__name__)

#: The ``policy_id`` of a denial that no policy decided.
DEFAULT_DENY = "default-deny"
_NS = "XHub"
_ERRORED_POLICY = re.compile(r"while evaluating policy `([^`]+)`")
_LONG = range(-(2**63), 2**63)


@dataclass(frozen=True)
class PolicyConfig:
    """Where the policies are and how they are evaluated.

    Attributes:
        sources: directories or storage URL prefixes holding ``*.cedar`` files (a directory under
            version control, ``s3://governance/policies/``, ...), all merged into one policy set.
        reload_interval: seconds between checks for changed policy files (one listing per
            source, done by the deciding thread); 0 turns automatic reloading off. A check that
            cannot reach a source (storage down) logs an error and keeps the policies in force.
        timezone: IANA zone of ``context.hour`` and ``context.weekday``.
        settings: storage settings for the sources.
    """

    sources: tuple[str, ...]
    reload_interval: float = 2.0
    timezone: str = "UTC"
    settings: Settings | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sources, str):
            raise ConfigError("PolicyConfig.sources must be a tuple of URLs, not one string")
        if self.reload_interval < 0:
            raise ConfigError(f"PolicyConfig.reload_interval must be >= 0, got {self.reload_interval}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"PolicyConfig.timezone: unknown time zone {self.timezone!r}") from None


@dataclass(frozen=True)
class _Compiled:
    policies: cedarpy.PolicySet
    reasons: Mapping[str, str]  # policy id -> its @reason, if any
    effects: Mapping[str, str]  # policy id -> permit/forbid
    snapshots: tuple[PolicySnapshot, ...]
    #: no policy reads a named entity (``XHub::Dataset::"x".owner``, ``XHub::Object::"y" in ...``):
    #: requests may then share one entity list (see :meth:`CedarAuthorizer.decide_batch`)
    batchable: bool = True

    @property
    def digest(self) -> str:
        return ",".join(s.digest[:16] for s in self.snapshots)


def _cedarpy() -> Any:
    try:
        import cedarpy
    except ImportError as exc:  # pragma: no cover - the extra is installed for tests
        raise MissingDependency("the Cedar policy engine needs cedarpy: pip install 'xtremehub[security]'") from exc
    return cedarpy


def compile_policies(snapshots: Sequence[PolicySnapshot]) -> _Compiled:
    """Parse every policy file of ``snapshots`` into one Cedar policy set with our policy ids.

    Raises:
        ConfigError: a file does not parse (naming it and Cedar's message) or two policies
            share an id.
    """
    cedar = _cedarpy()
    static: dict[str, object] = {}
    origin: dict[str, str] = {}
    reasons: dict[str, str] = {}
    effects: dict[str, str] = {}
    for snapshot in snapshots:
        for name in sorted(snapshot.sources):
            where = f"{snapshot.source}{name}"
            try:
                est = json.loads(cedar.policies_to_json_str(snapshot.sources[name]))
            except ValueError as exc:
                raise ConfigError(f"{where}: not valid Cedar: {exc}") from None
            if est.get("templates"):
                raise ConfigError(f"{where}: Cedar templates are not supported; write static policies")
            stem = name.removesuffix(".cedar")
            for n, (_, policy) in enumerate(sorted(est.get("staticPolicies", {}).items(), key=_policy_order)):
                annotations = policy.get("annotations") or {}
                pid = str(annotations.get("id") or f"{stem}#{n}")
                if pid in origin:
                    raise ConfigError(f"{where}: policy id {pid!r} is also used in {origin[pid]}")
                origin[pid] = where
                static[pid] = policy
                effects[pid] = str(policy.get("effect"))
                if annotations.get("reason"):
                    reasons[pid] = str(annotations["reason"])
    try:
        est_all = {"staticPolicies": static, "templates": {}, "templateLinks": []}
        policies = cedar.PolicySet.from_json_str(json.dumps(est_all))
    except ValueError as exc:  # pragma: no cover - each file parsed above
        raise ConfigError(f"policy set {[s.source for s in snapshots]}: {exc}") from None
    batchable = not any(_reads_named_entity(policy) for policy in static.values())
    return _Compiled(policies, reasons, effects, tuple(snapshots), batchable)


#: Operators that only compare an entity literal operand (no attribute, tag or ancestor lookup of it).
_COMPARES = frozenset({"==", "!="})
#: Operators whose right operand is only compared (``x in E``: the ancestors of ``x`` are read, not E's).
_COMPARES_RIGHT = frozenset({"in", "contains"})
#: Set operators whose set literal operand's entity elements are only compared, by side.
_SET_RIGHT = frozenset({"in", "containsAll", "containsAny"})
_SET_LEFT = frozenset({"contains", "containsAll", "containsAny"})


def _reads_named_entity(node: object) -> bool:
    """Whether a policy (its JSON form) may read a named entity's attributes, tags or ancestors.

    Such a policy could see a different entity list when requests are decided together (another
    request's resource entity), so it keeps their decisions one by one. The test is an
    allow-list: an entity literal is safe only where it is compared (an operand of ``==`` or
    ``!=``, the right operand of ``in`` or ``contains``, an element of a set literal compared by
    ``in``/``contains``/``containsAll``/``containsAny``); anywhere else (``.attr``, ``has``,
    ``is``, the left of ``in``, inside ``if``, a record, a call) the policy is not batched.
    """
    if isinstance(node, list):
        return any(_reads_named_entity(item) for item in node)
    if not isinstance(node, dict):
        return False
    if "__entity" in node:
        return True
    for key, value in node.items():
        if isinstance(value, dict) and key in _COMPARES | _COMPARES_RIGHT | _SET_LEFT:
            for side in ("left", "right"):
                if side in value and not _compared_only(key, side, value[side]) and _reads_named_entity(value[side]):
                    return True
            if _reads_named_entity({k: v for k, v in value.items() if k not in ("left", "right")}):
                return True
        elif _reads_named_entity(value):
            return True
    return False


def _entity_literal(node: object) -> bool:
    return (
        isinstance(node, dict)
        and set(node) == {"Value"}
        and isinstance(node["Value"], dict)
        and "__entity" in node["Value"]
    )


def _compared_only(op: str, side: str, operand: object) -> bool:
    """Whether ``operand``, the ``side`` operand of ``op``, is an entity literal (or a set literal of
    entity literals and safe expressions) that ``op`` only compares."""
    if _entity_literal(operand):
        return op in _COMPARES or (side == "right" and op in _COMPARES_RIGHT)
    is_set = isinstance(operand, dict) and set(operand) == {"Set"} and isinstance(operand["Set"], list)
    if is_set and ((side == "right" and op in _SET_RIGHT) or (side == "left" and op in _SET_LEFT)):
        assert isinstance(operand, dict)
        return all(_entity_literal(e) or not _reads_named_entity(e) for e in operand["Set"])
    return False


def _policy_order(item: tuple[str, object]) -> int:
    return int(item[0].removeprefix("policy") or 0)


def _cedar_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uid(kind: str, name: str) -> dict[str, str]:
    return {"type": f"{_NS}::{kind}", "id": name}


def _attrs(values: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, bool | str) or (isinstance(value, int) and value in _LONG):
            out[key] = value
        elif isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
            out[key] = sorted(value)
    return out


def _object_chain(name: str) -> tuple[dict[str, str], list[dict[str, object]]]:
    """The entity of an object/prefix URL and its ancestors (prefixes up to the bucket)."""
    scheme, sep, rest = name.partition("://")
    root = f"{scheme}://" if sep else ""
    body = rest if sep else name
    parts = body.split("/")
    is_prefix = name.endswith("/")
    if is_prefix:
        parts = parts[:-1]
    chain: list[dict[str, str]] = []  # from the resource up
    if sep and len(parts) <= 1:
        chain.append(_uid("Bucket", root + parts[0]))
    else:
        chain.append(_uid("Prefix" if is_prefix else "Object", name))
        for i in range(len(parts) - 1, 0, -1):
            prefix = "/".join(parts[:i])
            if not prefix:  # the root of a local path
                continue
            if sep and i == 1:
                chain.append(_uid("Bucket", root + prefix))
            else:
                chain.append(_uid("Prefix", root + prefix + "/"))
    entities: list[dict[str, object]] = [
        {"uid": uid, "attrs": {}, "parents": [chain[i + 1]] if i + 1 < len(chain) else []}
        for i, uid in enumerate(chain)
    ]
    return chain[0], entities


def object_name(name: str) -> str | None:
    """The name an object/prefix URL is judged by, or None when it is refused.

    Local paths (and ``file://`` URLs) become absolute, normalised paths, as the local store
    resolves them, so ``/data/ct/../raw/x`` is judged as ``/data/raw/x``; in other schemes a
    ``.`` or ``..`` segment is refused (a store may resolve it, a prefix policy would not).

    Example:
        >>> object_name("file:///data/ct/../raw/x"), object_name("s3://b/ct/../raw/x")
        ('/data/raw/x', None)
    """
    scheme, sep, rest = name.partition("://")
    if not sep or scheme == "file":
        local = rest if sep else name
        normal = posixpath.normpath(os.path.abspath(local) if not local.startswith("/") else local)
        normal = "/" + normal.lstrip("/")
        return normal + "/" if name.endswith("/") and normal != "/" else normal
    if any(part in (".", "..") for part in rest.split("/")):
        return None
    return name


def _resource_entities(kind: str, name: str) -> tuple[dict[str, str], list[dict[str, object]]] | None:
    if kind in ("object", "prefix", "bucket"):
        canonical = object_name(name)
        if canonical is None:
            return None
        if kind == "prefix" and not canonical.endswith("/"):
            canonical += "/"
        return _object_chain(canonical)
    if kind == "dataset":
        uid = _uid("Dataset", name)
        return uid, [{"uid": uid, "attrs": {}, "parents": []}]
    if kind == "scope":
        uid = _uid("Scope", name)
        return uid, [{"uid": uid, "attrs": {}, "parents": []}]
    if kind == "stream":
        scope = _uid("Scope", name.partition("/")[0])
        uid = _uid("Stream", name)
        return uid, [{"uid": uid, "attrs": {}, "parents": [scope]}, {"uid": scope, "attrs": {}, "parents": []}]
    if kind == "key":
        dataset = _uid("Dataset", name.partition("#")[0])
        uid = _uid("Key", name)
        return uid, [{"uid": uid, "attrs": {}, "parents": [dataset]}, {"uid": dataset, "attrs": {}, "parents": []}]
    return None


def request_to_cedar(request: AccessRequest, zone: ZoneInfo | None = None) -> tuple[dict[str, object], list[object]]:
    """The Cedar request and entities for ``request`` (None resource: an unknown kind).

    Example:
        >>> from xtremehub.security.authz import AccessRequest, Action, Resource
        >>> from xtremehub.security.identity import Identity
        >>> req, ents = request_to_cedar(AccessRequest(Identity("a"), Action.READ, Resource("stream", "s/t")))
        >>> req["resource"], [e["uid"]["type"] for e in ents]
        ({'type': 'XHub::Stream', 'id': 's/t'}, ['XHub::User', 'XHub::Stream', 'XHub::Scope'])
    """
    ident = request.identity
    principal = _uid("User", ident.subject)
    p_attrs: dict[str, object] = {
        "roles": sorted(ident.roles),
        "groups": sorted(ident.groups),
        "issuer": ident.issuer,
    }
    if ident.job_id is not None:
        p_attrs["job"] = ident.job_id
    if ident.client is not None:
        p_attrs["client"] = ident.client
    parents = [_uid("Role", r) for r in sorted(ident.roles)] + [_uid("Group", g) for g in sorted(ident.groups)]
    entities: list[object] = [{"uid": principal, "attrs": p_attrs, "parents": parents}]
    resolved = _resource_entities(request.resource.kind, request.resource.name)
    resource: dict[str, str] | None = None
    if resolved is not None:
        resource, r_entities = resolved
        r_entities[0]["attrs"] = _attrs(request.resource.attributes)
        entities.extend(r_entities)
    at = datetime.fromtimestamp(request.at, zone or UTC)
    context = {
        "purpose": request.purpose or "",
        "time": int(request.at),
        "hour": at.hour,
        "weekday": at.isoweekday(),
        "now": {
            "__extn": {
                "fn": "datetime",
                "arg": datetime.fromtimestamp(request.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            }
        },
    }
    cedar_request: dict[str, object] = {
        "principal": principal,
        "action": _uid("Action", request.action.value),
        "resource": resource,
        "context": context,
    }
    return cedar_request, entities


class CedarAuthorizer:
    """An :class:`~xtremehub.security.authz.Authorizer` evaluating Cedar policies from files or stores.

    Args:
        config: the policy sources and evaluation settings.
        audit: records policy loads and every added, replaced or removed policy file (decisions
            are recorded by wrapping this in :class:`~xtremehub.security.audit.Audited`).

    Raises:
        ConfigError: the policies do not parse at start (a bad file on a later reload is
            logged and audited, and the previous policies stay in force).
    """

    def __init__(self, config: PolicyConfig, *, audit: AuditLog | None = None) -> None:
        self.config = config
        self._cedar = _cedarpy()
        self._zone = ZoneInfo(config.timezone)
        self._audit = audit
        self.stores = tuple(PolicyStore(url, settings=config.settings, audit=audit) for url in config.sources)
        self._reload_lock = threading.Lock()
        self._fingerprints = tuple(store.fingerprint() for store in self.stores)
        self._compiled = compile_policies([store.load() for store in self.stores])
        self._checked = time.monotonic()

    def __repr__(self) -> str:
        return f"CedarAuthorizer(sources={self.config.sources!r}, digest={self.policy_digest!r})"

    @property
    def policy_digest(self) -> str:
        """Digest(s) of the policy set(s) in force: what a decision was made under."""
        return self._compiled.digest

    @property
    def versions(self) -> tuple[int, ...]:
        """The version of each source's policy set."""
        return tuple(s.version for s in self._compiled.snapshots)

    def decide(self, request: AccessRequest) -> Decision:
        """Permit or deny ``request``; the decision names the deciding policy (or ``default-deny``)."""
        self._maybe_reload()
        return self._decide_alone(self._compiled, request)

    def decide_batch(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        """:meth:`decide` of each of ``requests``, in order, with one Cedar evaluation for them all.

        The decisions are those :meth:`decide` gives one by one: the requests share one entity
        list only when their entities agree (the same principal; a resource named twice with the
        same attributes) and no policy reads a named entity; otherwise each is decided alone.
        """
        self._maybe_reload()
        compiled = self._compiled
        if not compiled.batchable:  # decided one by one anyway: no request converted twice
            return [self._decide_alone(compiled, request) for request in requests]
        decisions: list[Decision | None] = [None] * len(requests)
        batch: list[tuple[int, dict[str, object]]] = []
        shared: dict[str, object] = {}  # entity uid (as JSON) -> the entity
        consistent = True
        for i, request in enumerate(requests):
            cedar_request, entities = request_to_cedar(request, self._zone)
            if cedar_request["resource"] is None:
                decisions[i] = _refused(request)
                continue
            batch.append((i, cedar_request))
            for entity in entities:
                assert isinstance(entity, dict)
                key = json.dumps(entity["uid"], sort_keys=True)
                # compared as JSON: Python's == holds True == 1, which Cedar tells apart
                if json.dumps(shared.setdefault(key, entity), sort_keys=True) != json.dumps(entity, sort_keys=True):
                    consistent = False
        if not consistent or len(batch) < 2:
            return [
                d if d is not None else self._decide_alone(compiled, r)
                for d, r in zip(decisions, requests, strict=True)
            ]
        results = self._cedar.is_authorized_batch([r for _, r in batch], compiled.policies, list(shared.values()))
        for (i, _), result in zip(batch, results, strict=True):
            # a request with evaluation errors is decided alone: its messages (and an entity that
            # does not parse) are then its own
            alone = bool(result.diagnostics.errors)
            decisions[i] = (
                self._decide_alone(compiled, requests[i]) if alone else self._decision(compiled, requests[i], result)
            )
        return [d for d in decisions if d is not None]

    def _decide_alone(self, compiled: _Compiled, request: AccessRequest) -> Decision:
        cedar_request, entities = request_to_cedar(request, self._zone)
        if cedar_request["resource"] is None:
            return _refused(request)
        return self._decision(compiled, request, self._cedar.is_authorized(cedar_request, compiled.policies, entities))

    def _decision(self, compiled: _Compiled, request: AccessRequest, result: Any) -> Decision:
        """The decision Cedar's ``result`` for ``request`` is, failing closed on a forbid that errs."""
        diagnostics = result.diagnostics
        ids = sorted(diagnostics.reasons)
        # first lines only: an entity-parse error goes on to dump the request's entities
        errors = [str(e).split("\n", 1)[0] for e in diagnostics.errors]
        if errors:
            log.warning("policy evaluation errors for %s: %s", request.resource.name, "; ".join(errors))
        failed_forbids = sorted(
            {m for e in errors for m in _ERRORED_POLICY.findall(e) if compiled.effects.get(m) == "forbid"}
        )
        if failed_forbids:  # Cedar skips a policy that errors: for a forbid that would fail open
            reason = "; ".join(e for e in errors if any(f"`{pid}`" in e for pid in failed_forbids))
            return Decision(False, f"forbid policy could not be evaluated, denied (fail closed): {reason}",
                            ",".join(failed_forbids))  # fmt: skip
        if result.allowed:
            return Decision(True, self._why(compiled, ids, "permitted by"), ",".join(ids))
        if ids:
            return Decision(False, self._why(compiled, ids, "forbidden by"), ",".join(ids))
        if errors and not _ERRORED_POLICY.search(errors[0]):
            return Decision(False, f"the request could not be evaluated (deny): {errors[0]}", DEFAULT_DENY)
        note = f"; {len(errors)} policies could not be evaluated" if errors else ""
        return Decision(False, f"no policy permits it (deny by default){note}", DEFAULT_DENY)

    def check(self, request: AccessRequest) -> Decision:
        """:meth:`decide`, raising :class:`~xtremehub.errors.Forbidden` on a denial."""
        decision = self.decide(request)
        if not decision.allowed:
            raise forbidden(request, decision)
        return decision

    def readable(self, request: AccessRequest) -> Condition:
        """The resources of ``request.resource.kind`` that ``request`` (its name ignored) is allowed
        on, as a :data:`~xtremehub.security.residual.Condition` (Cedar partial evaluation with the
        resource unknown; see :mod:`xtremehub.security.residual`).

        Raises:
            Untranslatable: the policies say something about such resources that a condition
                cannot (the caller then decides resource by resource).
        """
        from xtremehub.security.residual import Const, Untranslatable, allowed

        self._maybe_reload()
        compiled = self._compiled
        cedar_request, entities = request_to_cedar(request, self._zone)
        resource = cedar_request.pop("resource")
        if not isinstance(resource, dict):
            raise Untranslatable(f"unknown resource kind {request.resource.kind!r}")
        principal = cedar_request["principal"]
        action = cedar_request["action"]
        assert isinstance(principal, dict)
        assert isinstance(action, dict)
        if any(ord(c) < 32 for c in principal["id"]):
            raise Untranslatable("a subject with control characters")
        cedar_request["principal"] = f"{principal['type']}::{_cedar_string(principal['id'])}"
        cedar_request["action"] = f"{action['type']}::{_cedar_string(action['id'])}"
        result = self._cedar.is_authorized_partial(cedar_request, compiled.policies, entities[:1])
        errors = result.diagnostics.errors if hasattr(result.diagnostics, "errors") else []
        if errors:
            raise Untranslatable(f"partial evaluation failed: {errors}")
        if result.decision.name == "Allow":
            return Const(True)
        if result.decision.name == "Deny":
            return Const(False)
        return allowed(result.residuals, str(resource["type"]))

    def reload(self, *, force: bool = False) -> bool:
        """Re-read the sources if a file changed (``force``: always); True if the policies changed.

        Raises:
            ConfigError: a changed file does not parse; the previous policies stay in force.
        """
        with self._reload_lock:
            self._checked = time.monotonic()
            fingerprints = tuple(store.fingerprint() for store in self.stores)
            if not force and fingerprints == self._fingerprints:
                return False
            snapshots = [store.load() for store in self.stores]
            self._fingerprints = fingerprints
            if [s.digest for s in snapshots] == [s.digest for s in self._compiled.snapshots]:
                return False
            try:
                compiled = compile_policies(snapshots)
            except ConfigError as exc:
                if self._audit is not None:
                    self._audit.append(
                        "policy",
                        subject="policy-loader",
                        action="reject",
                        resource="policyset:" + ",".join(self.config.sources),
                        reason=str(exc),
                    )
                raise
            self._compiled = compiled
            log.info("policies reloaded: %s (versions %s)", compiled.digest, self.versions)
            return True

    def _maybe_reload(self) -> None:
        interval = self.config.reload_interval
        if not interval or time.monotonic() - self._checked < interval:
            return
        if not self._reload_lock.acquire(blocking=False):
            return  # another thread is reloading; decide with the policies in force
        try:
            if time.monotonic() - self._checked < interval:
                return  # another thread has just checked
            self._checked = time.monotonic()
        finally:
            self._reload_lock.release()
        try:
            self.reload()
        except ConfigError as exc:
            log.error("policy reload refused, previous policies stay in force: %s", exc)
        except StorageError as exc:  # as OPA keeps its last bundle: an outage is not a policy change
            log.error("policy sources unreachable, previous policies stay in force: %s", exc)

    @staticmethod
    def _why(compiled: _Compiled, ids: Sequence[str], verb: str) -> str:
        texts = [compiled.reasons[i] for i in ids if i in compiled.reasons]
        names = ", ".join(ids)
        return f"{verb} {names}: {'; '.join(texts)}" if texts else f"{verb} {names}"


def _refused(request: AccessRequest) -> Decision:
    """The denial of a request whose resource cannot be named to Cedar."""
    kind = request.resource.kind
    why = (
        "'.' and '..' path segments are refused"
        if kind in ("object", "prefix", "bucket")
        else f"unknown resource kind {kind!r}"
    )
    return Decision(False, f"{why} (deny)", DEFAULT_DENY)


def build_authorizer(config: PolicyConfig, audit: AuditLog | None = None) -> Authorizer:
    """The authorizer an entry point uses: Cedar policies from ``config``, every decision and
    policy change recorded in ``audit`` when given.

    Example:
        >>> authz = build_authorizer(PolicyConfig(sources=("mem://build-authz-doc/none/",)))
        >>> from xtremehub.security.authz import AccessRequest, Action, Resource
        >>> from xtremehub.security.identity import Identity
        >>> authz.decide(AccessRequest(Identity("eve"), Action.READ, Resource("scope", "x"))).policy_id
        'default-deny'
    """
    from xtremehub.security.audit import Audited

    engine = CedarAuthorizer(config, audit=audit)
    return engine if audit is None else Audited(engine, audit)
