"""May they: what an authorisation request is made of, and the protocol that decides it.

Example:
    >>> from xtremehub.security.identity import Identity
    >>> req = AccessRequest(Identity("alice"), Action.READ, Resource("stream", "lungs/ct"), purpose="research")
    >>> req.resource.kind, req.action.value
    ('stream', 'read')
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from xtremehub.security.identity import Identity

__all__ = [
    "AccessRequest",
    "Action",
    "Authorizer",
    "BatchAuthorizer",
    "Decision",
    "ReloadableAuthorizer",
    "Resource",
    "decide_each",
]


class Action(enum.StrEnum):
    """What is being done to a resource."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    PROCESS = "process"


@dataclass(frozen=True)
class Resource:
    """What is being accessed.

    Attributes:
        kind: ``"object"`` (a bucket, prefix or key URL), ``"dataset"``, ``"scope"``,
            ``"stream"`` (``scope/stream``) or ``"key"`` (a dataset's key).
        name: its name or URL.
        attributes: extra attributes a policy may test (owner, tags, ...).
    """

    kind: str
    name: str
    attributes: Mapping[str, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class AccessRequest:
    """One authorisation question: may ``identity`` do ``action`` on ``resource`` for ``purpose``?"""

    identity: Identity
    action: Action
    resource: Resource
    purpose: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Decision:
    """The answer, with the policy that decided it (for the audit log)."""

    allowed: bool
    reason: str
    policy_id: str | None = None


class Authorizer(Protocol):
    """Decides access requests; deny by default.

    ``decide`` returns the decision; ``check`` raises :class:`~xtremehub.errors.Forbidden`
    when it is a denial.
    """

    def decide(self, request: AccessRequest) -> Decision: ...

    def check(self, request: AccessRequest) -> Decision: ...


@runtime_checkable
class BatchAuthorizer(Authorizer, Protocol):
    """An authorizer that decides many requests at once (a page of search results).

    ``decide_batch(requests)`` returns what ``decide`` returns for each, in order, with the
    same records (an audited authorizer records each decision as ``decide`` would).
    """

    def decide_batch(self, requests: Sequence[AccessRequest]) -> list[Decision]: ...


@runtime_checkable
class ReloadableAuthorizer(Authorizer, Protocol):
    """An authorizer whose policies can be re-read on demand (the Cedar policy engine).

    ``reload(force=True)`` re-reads every policy source now, without waiting for the reload
    interval; it returns whether the policies changed and raises
    :class:`~xtremehub.errors.ConfigError` (policies that do not parse; the previous ones stay in
    force) or :class:`~xtremehub.errors.StorageError` (a source unreachable).
    """

    def reload(self, *, force: bool = False) -> bool: ...


def decide_each(authorizer: Authorizer, requests: Sequence[AccessRequest]) -> list[Decision]:
    """The decision of each of ``requests``, in order: in one batch when ``authorizer`` offers it."""
    if isinstance(authorizer, BatchAuthorizer):
        return authorizer.decide_batch(requests)
    return [authorizer.decide(request) for request in requests]
