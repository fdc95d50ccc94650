"""Who is calling: the identity a validated token stands for, and how tokens are obtained.

Example:
    >>> alice = Identity(subject="alice", roles=frozenset({"research"}), issuer="https://idp")
    >>> alice.has_role("research"), alice.has_role("admin")
    (True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Identity", "TokenProvider", "TokenSource", "TokenValidator", "current_token"]


@dataclass(frozen=True)
class Identity:
    """A caller whose token was validated.

    Attributes:
        subject: the token's ``sub`` (a user or a client id).
        roles: XtremeHub roles mapped from the provider's role and group claims.
        groups: the provider's groups, as given.
        issuer: the ``iss`` of the token.
        client: the ``azp``/client id the token was issued to, if any.
        expires_at: ``exp`` as a Unix time (None: never, only for the embedded default).
        job_id: set on a job token: the job this identity is bound to.
        claims: the remaining claims, for policies that use attributes.
    """

    subject: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    issuer: str = ""
    client: str | None = None
    expires_at: float | None = None
    job_id: str | None = None
    claims: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    def has_role(self, role: str) -> bool:
        """Whether ``role`` is one of this identity's roles."""
        return role in self.roles


class TokenValidator(Protocol):
    """Turns a bearer token into an :class:`Identity` or raises
    :class:`~xtremehub.errors.AuthenticationFailed` (never echoing the token)."""

    def validate(self, token: str) -> Identity: ...


class TokenProvider(Protocol):
    """Gives a current access token, refreshing it when it is about to expire."""

    def token(self) -> str: ...


#: What APIs accept as ``token=``: a token string, a provider, or a zero-argument callable.
TokenSource = str | TokenProvider | Callable[[], str]


def current_token(source: TokenSource) -> str:
    """The token a :data:`TokenSource` gives now (a provider is asked each time: it refreshes).

    Example:
        >>> current_token("abc"), current_token(lambda: "def")
        ('abc', 'def')
    """
    if isinstance(source, str):
        return source
    provider = getattr(source, "token", None)
    if callable(provider):
        return str(provider())
    if callable(source):
        return str(source())
    raise TypeError(f"token= must be a string, a TokenProvider or a callable, not {type(source).__name__}")
