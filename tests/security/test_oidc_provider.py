"""Our validator against an independent, OpenID-Certified provider (npm ``oidc-provider``).

The provider issues JWT access tokens for the resource ``urn:xtremehub:*`` (audience
``xtremehub``) by the client-credentials grant, signed ES256 or RS256, with a Keycloak-style
``realm_access.roles`` claim.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request

import jwt
import pytest

from xtremehub.errors import AuthenticationFailed
from xtremehub.security.oidc import OIDCConfig, OIDCValidator, RoleMapping


def _client_credentials(issuer: str, resource: str) -> str:
    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "scope": "streams:read", "resource": resource}
    ).encode()
    request = urllib.request.Request(f"{issuer}/token", data=body, method="POST")
    basic = base64.b64encode(b"xhub-test:xhub-test-secret").decode()
    request.add_header("Authorization", f"Basic {basic}")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["token_type"].lower() == "bearer"
    return str(answer["access_token"])


@pytest.mark.parametrize(("resource", "alg"), [("urn:xtremehub:es256", "ES256"), ("urn:xtremehub:rs256", "RS256")])
def test_validates_oidc_provider_tokens(oidc_provider: str, resource: str, alg: str) -> None:
    token = _client_credentials(oidc_provider, resource)
    assert jwt.get_unverified_header(token)["alg"] == alg
    mapping = RoleMapping(mapping={"realm:research": ("lungs-reader",)})
    validator = OIDCValidator(OIDCConfig(issuer=oidc_provider, audience="xtremehub", roles=mapping))
    who = validator.validate(token)
    assert who.subject == "xhub-test"  # client credentials: the client is the subject
    assert who.client == "xhub-test"
    assert who.issuer == oidc_provider
    assert who.roles == frozenset({"lungs-reader"})
    assert validator.jwks.fetches == 1


def test_oidc_provider_tokens_checked_for_audience_and_algorithm(oidc_provider: str) -> None:
    token = _client_credentials(oidc_provider, "urn:xtremehub:rs256")
    with pytest.raises(AuthenticationFailed, match="wrong audience"):
        OIDCValidator(OIDCConfig(issuer=oidc_provider, audience="someone-else")).validate(token)
    with pytest.raises(AuthenticationFailed, match="algorithm 'RS256' refused"):
        OIDCValidator(OIDCConfig(issuer=oidc_provider, audience="xtremehub", algorithms=("ES256",))).validate(token)
    # Trusting another issuer name with the same keys: the token's iss does not match.
    other = OIDCConfig(issuer=f"{oidc_provider}/other", audience="xtremehub", jwks_uri=f"{oidc_provider}/jwks")
    with pytest.raises(AuthenticationFailed, match="wrong issuer"):
        OIDCValidator(other).validate(token)
