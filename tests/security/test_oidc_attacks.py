"""Token validation against the embedded issuer: the good path and every token attack of issue 12."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security.issuer import EmbeddedIssuer, SigningKeys
from xtremehub.security.oidc import JWKSCache, OIDCConfig, OIDCValidator, RoleMapping, fetch_json


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(issuer: EmbeddedIssuer, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": issuer.url,
        "sub": "mallory",
        "aud": "xtremehub",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["admin"]},
    }
    claims.update(overrides)
    return claims


def _refused(validator: OIDCValidator, token: str, check: str) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        validator.validate(token)
    message = str(info.value)
    assert check in message
    assert not token or token not in message
    assert all(part not in message for part in token.split(".") if len(part) > 8)
    return message


def test_valid_token_gives_identity_with_roles(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    token = issuer.issue("alice", roles=["research"], groups=["/lungs"], client="cli")
    who = validator.validate(token)
    assert who.subject == "alice"
    assert who.roles == frozenset({"research"})
    assert who.groups == frozenset({"/lungs"})
    assert who.issuer == issuer.url
    assert who.client == "cli"
    assert who.expires_at is not None
    assert who.expires_at > time.time()


def test_forged_signature(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(_claims(issuer), other, algorithm="ES256", headers={"kid": issuer.keys.current})
    _refused(validator, forged, "signature check failed")
    # A valid token whose payload was edited (roles raised) keeps its signature: refused too.
    head, _, sig = issuer.issue("bob").split(".")
    _refused(validator, f"{head}.{_b64(json.dumps(_claims(issuer)).encode())}.{sig}", "signature check failed")


def test_alg_none(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    header = _b64(json.dumps({"alg": "none", "kid": issuer.keys.current}).encode())
    token = f"{header}.{_b64(json.dumps(_claims(issuer)).encode())}."
    _refused(validator, token, "algorithm 'none' refused")


def test_hs256_signed_with_the_public_key(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    jwk = issuer.keys.jwks()["keys"][0]
    public = jwt.PyJWK(jwk).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "kid": jwk["kid"], "typ": "JWT"}).encode())
        + "."
        + _b64(json.dumps(_claims(issuer)).encode())
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    _refused(validator, f"{signing_input}.{_b64(signature)}", "algorithm 'HS256' refused")


def test_hmac_cannot_be_configured() -> None:
    with pytest.raises(ConfigError, match="HS256"):
        OIDCConfig(issuer="https://idp.example", audience="x", algorithms=("RS256", "HS256"))
    with pytest.raises(ConfigError, match="none"):
        OIDCConfig(issuer="https://idp.example", audience="x", algorithms=("none",))
    with pytest.raises(ConfigError, match="https"):
        OIDCConfig(issuer="http://idp.example", audience="x")


def test_expired(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    now = int(time.time())
    token = issuer.issue("alice", lifetime=-10, extra={"iat": now - 100, "nbf": now - 100})
    _refused(validator, token, "token expired at")


def test_expired_within_leeway_passes(issuer: EmbeddedIssuer) -> None:
    lenient = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", leeway=30))
    assert lenient.validate(issuer.issue("alice", lifetime=-10)).subject == "alice"


def test_not_yet_valid(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    token = issuer.issue("alice", extra={"nbf": int(time.time()) + 120})
    _refused(validator, token, "token not valid before")
    token = issuer.issue("alice", extra={"iat": int(time.time()) + 120})
    _refused(validator, token, "token issued in the future")


def test_wrong_issuer(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    token = issuer.issue("alice", extra={"iss": "http://127.0.0.1:1/evil"})
    _refused(validator, token, "wrong issuer")


def test_wrong_audience(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    token = issuer.issue("alice", client="other", extra={"aud": "another-service"})
    _refused(validator, token, "wrong audience")


def test_audience_through_azp(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    token = issuer.issue("alice", client="xtremehub", extra={"aud": "account"})
    assert validator.validate(token).subject == "alice"
    strict = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", accept_azp=False))
    _refused(strict, token, "wrong audience")


def test_missing_claims(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    claims = _claims(issuer)
    del claims["exp"]
    token = issuer.keys.sign(claims)
    _refused(validator, token, "'exp' claim")
    _refused(validator, "not-a-jwt", "malformed token")
    _refused(validator, "", "no token")


def test_unknown_kid_one_refresh_then_refusal(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    validator.validate(issuer.issue("alice"))
    assert validator.jwks.fetches == 1
    other = ec.generate_private_key(ec.SECP256R1())
    for _ in range(5):
        token = jwt.encode(_claims(issuer), other, algorithm="ES256", headers={"kid": "made-up"})
        _refused(validator, token, "unknown signing key id 'made-up'")
    # min_refresh (10 s) allows no second fetch: a flood of made-up kids costs the provider nothing.
    assert validator.jwks.fetches == 1


def test_unknown_kid_refresh_finds_rotated_key(issuer: EmbeddedIssuer) -> None:
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", jwks_min_refresh=0))
    old_token = issuer.issue("alice")
    validator.validate(old_token)
    old_kid = issuer.keys.current
    new_kid = issuer.keys.rotate()
    assert issuer.keys.kids() == [old_kid, new_kid]  # overlap: the old key is still published
    assert validator.validate(issuer.issue("bob")).subject == "bob"
    assert validator.jwks.fetches == 2
    assert validator.validate(old_token).subject == "alice"  # tokens of the old key still pass


def test_rotated_key_leaves_jwks_after_overlap() -> None:
    now = [1000.0]
    keys = SigningKeys(overlap=300, clock=lambda: now[0])
    first = keys.current
    now[0] += 10
    second = keys.rotate()
    now[0] += 299
    assert keys.kids() == [first, second]  # a token of the first key may still be valid
    now[0] += 2
    assert keys.kids() == [second]


def test_keycloak_role_claims_mapped(issuer: EmbeddedIssuer) -> None:
    mapping = RoleMapping(
        mapping={"realm:pravega_lungs": ("lungs-reader",), "group:/surgery": ("video",)},
        clients=("xtremehub",),
    )
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", roles=mapping))
    token = issuer.issue(
        "carol",
        roles=["pravega_lungs", "offline_access"],
        groups=["/surgery", "/other"],
        extra={"resource_access": {"xtremehub": {"roles": ["ingest"]}, "account": {"roles": ["manage"]}}},
    )
    who = validator.validate(token)
    assert who.roles == frozenset({"lungs-reader", "offline_access", "video", "ingest"})
    strict = OIDCValidator(
        OIDCConfig(
            issuer=issuer.url, audience="xtremehub", roles=RoleMapping(mapping=mapping.mapping, passthrough=False)
        )
    )
    assert strict.validate(token).roles == frozenset({"lungs-reader", "video"})


def test_no_token_in_logs(issuer: EmbeddedIssuer, validator: OIDCValidator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = issuer.issue("alice")
    bad = issuer.issue("alice", lifetime=-100)
    validator.validate(good)
    with pytest.raises(AuthenticationFailed):
        validator.validate(bad)
    for token in (good, bad):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text


def test_validated_tokens_cached_until_expiry(issuer: EmbeddedIssuer) -> None:
    now = [time.time()]
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", leeway=0), clock=lambda: now[0])
    token = issuer.issue("alice", lifetime=30)
    first = validator.validate(token)
    assert validator.validate(token) is first  # a cache hit: the same Identity
    now[0] += 31
    with pytest.raises(AuthenticationFailed, match="expired"):
        validator.validate(token)  # the cache never outlives the token


def test_provider_outage(issuer: EmbeddedIssuer) -> None:
    now = [0.0]
    down = [False]
    config = OIDCConfig(issuer=issuer.url, audience="xtremehub", jwks_max_age=60, jwks_min_refresh=10)

    def fetch(url: str) -> dict[str, object]:
        if down[0]:
            raise AuthenticationFailed(f"identity provider unreachable: GET {url} failed")
        return fetch_json(url, timeout=5)

    validator = OIDCValidator(config, jwks=JWKSCache(config, fetch=fetch, clock=lambda: now[0]))
    validator.validate(issuer.issue("alice"))
    down[0] = True
    now[0] += 120  # the key set is old and the provider is down: the keys fetched before still work
    assert validator.validate(issuer.issue("bob")).subject == "bob"
    assert validator.validate(issuer.issue("carol")).subject == "carol"
    assert validator.jwks.fetches == 2  # the first fetch and one failed attempt, none more for min_refresh

    cold = OIDCValidator(config, jwks=JWKSCache(config, fetch=fetch, clock=lambda: now[0]))
    for _ in range(3):  # never fetched: refused at once, one attempt per min_refresh
        with pytest.raises(AuthenticationFailed, match="unreachable"):
            cold.validate(issuer.issue("dave"))


def test_refresh_and_id_tokens_are_not_access_tokens(issuer: EmbeddedIssuer, validator: OIDCValidator) -> None:
    refresh = issuer._answer("alice", ("research",), (), "xtremehub", refresh=True)["refresh_token"]
    _refused(validator, refresh, "not an access token")
    for kind in ("ID", "Refresh", "Offline"):  # Keycloak's typ claims
        _refused(validator, issuer.issue("alice", client="xtremehub", extra={"typ": kind}), "not an access token")
    for_the_idp = issuer.issue("alice", client="xtremehub", extra={"aud": issuer.url})
    _refused(validator, for_the_idp, "wrong audience")
