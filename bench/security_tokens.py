"""Per-request cost of token validation with a cached JWKS: plain PyJWT vs our OIDCValidator, one run.

For each algorithm (ES256, RS256, EdDSA) a key pair is made and tokens are signed like a
Keycloak access token (iss, sub, aud, azp, exp, iat, nbf, realm_access.roles, groups). The
baseline is ``jwt.decode`` with the public key already parsed and the same checks (algorithm,
issuer, audience, expiry); ours is ``OIDCValidator.validate`` with its JWKS already fetched
(the key set is served from memory, so no network is measured), which also reads the header,
pins the algorithm, looks the key up by ``kid``, maps roles and builds the Identity (its
token cache off). A third column is a token validated before (the validator's cache of
validated tokens, what a client reconnecting with the same token costs).
Rounds alternate baseline and ours; the median and spread of the per-round microseconds per
token are reported with the ours/baseline ratio of the medians.

Run:  .venv/bin/python bench/security_tokens.py [--tokens 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from xtremehub.security.oidc import JWKSCache, OIDCConfig, OIDCValidator

ISSUER = "https://idp.example/realms/health"


def _keys(alg: str) -> Any:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def _jwk(alg: str, public: Any) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    return {**json.loads(algorithm.to_jwk(public)), "kid": f"k-{alg}", "alg": alg, "use": "sig"}


def _token(alg: str, private: Any, n: int) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": f"user-{n}",
        "aud": "xtremehub",
        "azp": "xtremehub",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "realm_access": {"roles": ["research", "offline_access"]},
        "groups": ["/lungs"],
    }
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": f"k-{alg}"})


def _per_token_us(fn: Any, tokens: list[str]) -> float:
    start = time.perf_counter()
    for token in tokens:
        fn(token)
    return (time.perf_counter() - start) / len(tokens) * 1e6


def bench(alg: str, count: int, rounds: int) -> dict[str, Any]:
    private = _keys(alg)
    public = private.public_key()
    jwks = {"keys": [_jwk(alg, public)]}
    documents = {f"{ISSUER}/.well-known/openid-configuration": {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}}
    documents[f"{ISSUER}/jwks"] = jwks
    config = OIDCConfig(issuer=ISSUER, audience="xtremehub", algorithms=(alg,), cache_size=0)
    validator = OIDCValidator(config, jwks=JWKSCache(config, fetch=documents.__getitem__))
    tokens = [_token(alg, private, n) for n in range(count)]
    validator.validate(tokens[0])  # fetch the key set once: cached from here on
    cached_config = OIDCConfig(issuer=ISSUER, audience="xtremehub", algorithms=(alg,), cache_size=count)
    cached = OIDCValidator(cached_config, jwks=JWKSCache(cached_config, fetch=documents.__getitem__))
    for token in tokens:
        cached.validate(token)  # every token seen once: the rounds measure hits (a client reconnecting)

    def baseline(token: str) -> object:
        return jwt.decode(token, public, algorithms=[alg], audience="xtremehub", issuer=ISSUER, leeway=30)

    base, ours, hits = [], [], []
    for _ in range(rounds):
        base.append(_per_token_us(baseline, tokens))
        ours.append(_per_token_us(validator.validate, tokens))
        hits.append(_per_token_us(cached.validate, tokens))
    assert validator.jwks.fetches == 1
    return {"alg": alg, "baseline": base, "ours": ours, "hits": hits}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} us  [{min(values):.1f}-{max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--algorithms", default="ES256,RS256,EdDSA")
    args = parser.parse_args()
    print(f"token validation, cached JWKS: {args.tokens} tokens x {args.rounds} rounds (median [min-max] per token)")
    for alg in args.algorithms.split(","):
        result = bench(alg, args.tokens, args.rounds)
        ratio = statistics.median(result["ours"]) / statistics.median(result["baseline"])
        print(
            f"{alg:6s} PyJWT decode {_spread(result['baseline'])}   OIDCValidator {_spread(result['ours'])}"
            f"   ours/PyJWT {ratio:.2f}x   token seen before (cache hit) {_spread(result['hits'])}"
        )


if __name__ == "__main__":
    main()
