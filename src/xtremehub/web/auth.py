"""Who is calling and may they: bearer tokens and per-endpoint authorisation for the REST API.

Security on (``WebConfig.security``): every API request but the health check and the OpenAPI
document needs ``Authorization: Bearer <token>``, validated by a
:class:`~xtremehub.security.identity.TokenValidator` (an
:class:`~xtremehub.security.oidc.OIDCValidator` trusting ``oidc_issuer``). A missing, malformed,
forged or expired token is **401** with ``WWW-Authenticate: Bearer``; a valid token whose
identity the :class:`~xtremehub.security.authz.Authorizer` denies is **403**. Each endpoint
names the action and resource (``dataset``, ``object``, ``scope`` or ``stream``, as the policy
engine defines them, see ``docs/security.md``). Without policies every valid token may do
everything (as the stream server does).

A request may state its purpose of use in the ``X-XHub-Purpose`` header: every decision of
the request is then taken with ``context.purpose`` set to it, which is what the usage policy
of an approved access request asks for (without the header a request has no purpose).

Security off (the embedded default, on loopback): no token is read; every request is made by
the local single user :data:`LOCAL_USER` with role ``admin``, and every action is allowed.

Example:
    >>> from xtremehub.security.authz import Action, Resource
    >>> gate = Gate.local()
    >>> who = gate.authenticate(None)
    >>> who.subject, gate.authorize(who, Action.ADMIN, Resource("dataset", "ds-1")).allowed
    ('local', True)
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from xtremehub.catalog.store.limits import MAX_PURPOSE
from xtremehub.errors import AuthenticationFailed, InvalidMetadata
from xtremehub.security.authz import AccessRequest, Action, Authorizer, Decision, Resource, decide_each
from xtremehub.security.identity import Identity, TokenValidator
from xtremehub.security.residual import Condition, Const, Untranslatable

__all__ = [
    "LOCAL_USER",
    "PURPOSE_HEADER",
    "AllowAuthenticated",
    "Caller",
    "Gate",
    "bearer_token",
    "caller",
    "stated_purpose",
]

log = logging.getLogger(__name__)

#: The identity of every request when security is off: one local user with every right.
LOCAL_USER = Identity(subject="local", roles=frozenset({"admin"}), issuer="xhub-local")
_MAX_TOKEN = 16 * 1024
#: The request header that states the purpose of use (``context.purpose`` of its decisions).
PURPOSE_HEADER = "X-XHub-Purpose"
#: Longest header value: a purpose of ``MAX_PURPOSE`` characters, each percent-encoded (up to 12
#: characters for a 4-byte UTF-8 character); the decoded purpose is then held to ``MAX_PURPOSE``.
_MAX_PURPOSE_ENCODED = 12 * MAX_PURPOSE


class AllowAuthenticated:
    """The authorizer when tokens are checked but no policy is given: any valid identity may act."""

    def decide(self, request: AccessRequest) -> Decision:
        return Decision(True, "authenticated (no policy configured)", "authenticated")

    def check(self, request: AccessRequest) -> Decision:
        return self.decide(request)

    def readable(self, request: AccessRequest) -> Condition:
        """Every resource (see :meth:`Gate.readable`)."""
        return Const(True)


@dataclass(frozen=True)
class Gate:
    """Authentication and authorisation of API requests.

    Attributes:
        validator: turns a bearer token into an identity; None: security off (:data:`LOCAL_USER`).
        authorizer: decides every request (deny by default); :class:`AllowAuthenticated` when
            no policy is configured.
    """

    validator: TokenValidator | None
    authorizer: Authorizer

    @classmethod
    def local(cls) -> Gate:
        """Security off: the local single user may do everything."""
        return cls(None, AllowAuthenticated())

    @property
    def secured(self) -> bool:
        return self.validator is not None

    def authenticate(self, token: str | None) -> Identity:
        """The caller's identity; :class:`AuthenticationFailed` (401) without a valid token."""
        if self.validator is None:
            return LOCAL_USER
        if not token:
            raise AuthenticationFailed("a bearer token is required (Authorization: Bearer <token>)")
        return self.validator.validate(token)

    def authorize(
        self, identity: Identity, action: Action, resource: Resource, *, purpose: str | None = None
    ) -> Decision:
        """The decision, or :class:`~xtremehub.errors.Forbidden` (403) when it is a denial."""
        return self.authorizer.check(AccessRequest(identity, action, resource, purpose=purpose))

    def allowed(self, identity: Identity, action: Action, resource: Resource, *, purpose: str | None = None) -> bool:
        """Whether ``identity`` may do ``action`` on ``resource`` for ``purpose`` (no exception)."""
        return self.authorizer.decide(AccessRequest(identity, action, resource, purpose=purpose)).allowed

    def allowed_each(
        self, identity: Identity, action: Action, resources: Sequence[Resource], *, purpose: str | None = None
    ) -> list[bool]:
        """:meth:`allowed` for each of ``resources`` (a page of a listing), decided in one batch
        when the authorizer offers it (the same decisions and audit records as one by one)."""
        requests = [AccessRequest(identity, action, resource, purpose=purpose) for resource in resources]
        return [decision.allowed for decision in decide_each(self.authorizer, requests)]

    def readable(self, identity: Identity, kind: str, *, purpose: str | None = None) -> Condition | None:
        """Which resources of ``kind`` ``identity`` may read for ``purpose``, as one condition over
        their id and attributes (the policies partially evaluated, :mod:`xtremehub.security.residual`),
        for a store to filter listings with; None when the authorizer cannot say it exactly (then
        the caller decides resource by resource).
        """
        readable = getattr(self.authorizer, "readable", None)
        if readable is None:
            return None
        try:
            cond: Condition = readable(AccessRequest(identity, Action.READ, Resource(kind, "*"), purpose=purpose))
        except Untranslatable as exc:
            log.info("listing %s for %s resource by resource: %s", kind, identity.subject, exc)
            return None
        return cond


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None without one.

    Raises:
        AuthenticationFailed: another scheme, or a header too long to be a token.
    """
    header = request.headers.get("authorization")
    if header is None:
        return None
    if len(header) > _MAX_TOKEN:
        raise AuthenticationFailed("the Authorization header is too long to hold a token")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
    return token.strip()


@dataclass(frozen=True)
class Caller:
    """The identity of a request, the purpose it states and the gate that authorises what it does.

    ``purpose`` comes from the request's :data:`PURPOSE_HEADER` (None without one): every
    decision of the request is taken for it, so that a usage policy an approved access
    request wrote (``when { context.purpose == "..." }``) applies to the requests that state
    that purpose, on the dataset's page, in search and on its data, and to no other.
    """

    identity: Identity
    gate: Gate
    purpose: str | None = None

    @property
    def subject(self) -> str:
        return self.identity.subject

    def may(self, action: Action, kind: str, name: str, attributes: Mapping[str, object] | None = None) -> Decision:
        """Authorise ``action`` on resource ``kind:name`` (403 when denied)."""
        return self.gate.authorize(
            self.identity, action, Resource(kind, name, dict(attributes or {})), purpose=self.purpose
        )

    def can(self, action: Action, kind: str, name: str, attributes: Mapping[str, object] | None = None) -> bool:
        """Whether the action would be allowed (for filtering listings)."""
        return self.gate.allowed(
            self.identity, action, Resource(kind, name, dict(attributes or {})), purpose=self.purpose
        )

    def can_each(self, action: Action, resources: Sequence[Resource]) -> list[bool]:
        """:meth:`can` for each of ``resources``, decided together (:meth:`Gate.allowed_each`)."""
        return self.gate.allowed_each(self.identity, action, resources, purpose=self.purpose)

    def readable(self, kind: str) -> Condition | None:
        """The caller's readable resources of ``kind`` as a condition (:meth:`Gate.readable`)."""
        return self.gate.readable(self.identity, kind, purpose=self.purpose)


def stated_purpose(value: str | None) -> str | None:
    """A stated purpose of use: percent-decoded (UTF-8), trimmed; None when empty.

    HTTP header values and cookies carry Latin-1 at most, so a purpose with other characters
    travels percent-encoded (``urllib.parse.quote``); a ``%`` not followed by two hex digits
    stays as it is.

    Raises:
        InvalidMetadata: longer than an access request's purpose may be, or with control characters.

    Example:
        >>> stated_purpose("  lung cancer research "), stated_purpose("  "), stated_purpose("%E7%A0%94%E7%A9%B6")
        ('lung cancer research', None, '研究')
    """
    if value is None:
        return None
    try:
        value = urllib.parse.unquote(value, errors="strict").strip() if "%" in value else value.strip()
    except UnicodeDecodeError:
        raise InvalidMetadata(PURPOSE_HEADER, "percent-encoded bytes that are not UTF-8") from None
    if len(value) > MAX_PURPOSE:
        raise InvalidMetadata(PURPOSE_HEADER, f"{len(value)} characters; at most {MAX_PURPOSE}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidMetadata(PURPOSE_HEADER, "control characters are not allowed")
    return value or None


def caller(
    request: Request,
    purpose: Annotated[
        str | None,
        Header(
            alias=PURPOSE_HEADER,
            max_length=_MAX_PURPOSE_ENCODED,
            description="the purpose of use this request is made for (usage policies of approved access "
            f"requests apply only to requests stating their purpose); at most {MAX_PURPOSE} characters, "
            "percent-encoded UTF-8 for characters outside ASCII",
        ),
    ] = None,
) -> Caller:
    """FastAPI dependency: authenticate the request (401 without a valid token)."""
    gate: Gate = request.app.state.xhub.gate
    identity = gate.authenticate(bearer_token(request) if gate.secured else None)
    return Caller(identity, gate, stated_purpose(purpose))


#: Annotated parameter type: ``who: CallerDep`` in an endpoint authenticates its request.
CallerDep = Annotated[Caller, Depends(caller)]
