"""A tiny role-based Authorizer for the stream-server tests.

It stands in for the policy engine of the ``secpolicy`` branch (which implements the same
:class:`~xtremehub.security.authz.Authorizer` protocol): each role grants actions on resources
matched by kind and an fnmatch pattern; everything else is denied.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from xtremehub.errors import Forbidden
from xtremehub.security.authz import AccessRequest, Decision

#: role -> [(action, kind, name pattern)]
Grants = Mapping[str, list[tuple[str, str, str]]]


class RoleAuthorizer:
    """Deny by default; allow what one of the caller's roles grants."""

    def __init__(self, grants: Grants) -> None:
        self.grants = grants
        self.requests: list[AccessRequest] = []

    def decide(self, request: AccessRequest) -> Decision:
        self.requests.append(request)
        for role in sorted(request.identity.roles):
            for action, kind, pattern in self.grants.get(role, []):
                if (
                    action == request.action.value
                    and kind == request.resource.kind
                    and fnmatch.fnmatchcase(request.resource.name, pattern)
                ):
                    return Decision(True, f"role {role} grants {action} on {kind} {pattern}", "test-roles")
        return Decision(False, "no role grants it", "test-roles")

    def check(self, request: AccessRequest) -> Decision:
        decision = self.decide(request)
        if not decision.allowed:
            raise Forbidden(
                f"{request.identity.subject} may not {request.action.value} "
                f"{request.resource.kind} {request.resource.name}: {decision.reason}"
            )
        return decision


#: The grants of the stream tests: admins set up, writers write and readers read the lungs scope.
STREAM_GRANTS: Grants = {
    "admin": [(a, k, "*") for a in ("read", "write", "admin") for k in ("scope", "stream")],
    "writer": [("read", "stream", "lungs/*"), ("write", "stream", "lungs/*")],
    "research": [("read", "stream", "lungs/*"), ("read", "scope", "lungs")],
}
