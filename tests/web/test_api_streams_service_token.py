"""The web server at a stream server that requires tokens: its own service credential opens the
connection, each caller's token still decides what the caller sees.

Real parts: the embedded OpenID issuer (client-credentials grant), a stream server with token
validation and Cedar policies on a loopback port, the web app with its own Cedar policies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import Settings
from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security.issuer import ClientEntry, EmbeddedIssuer, IssuerConfig, hash_secret
from xtremehub.security.login import login
from xtremehub.security.oidc import OIDCConfig, OIDCValidator
from xtremehub.security.policy import PolicyConfig, build_authorizer
from xtremehub.security.service_token import ClientCredentialsToken, TokenFile
from xtremehub.streams import StreamManager
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.web import WebConfig, create_app

SECRET = "web-service-secret-0123456789"  # a test secret
LIFETIME = 4  # seconds: short, so that the tests see the service token expire and renewed

#: The stream server's policies: admins do anything, the web service reads everything.
STREAM_POLICIES = """
@id("admins") permit(principal in XHub::Role::"admin", action, resource);
@id("web-service") permit(principal in XHub::Role::"stream-service", action == XHub::Action::"read", resource);
"""
#: The web server's policies: research reads the lungs scope only, curators read everything.
WEB_POLICIES = """
@id("lungs-research") permit(principal in XHub::Role::"research", action == XHub::Action::"read",
                             resource in XHub::Scope::"lungs");
@id("curators") permit(principal in XHub::Role::"curator", action, resource);
"""


@pytest.fixture(scope="module")
def issuer() -> Iterator[EmbeddedIssuer]:
    clients = {"xhub-web": ClientEntry("xhub-web", hash_secret(SECRET, rounds=4), ("stream-service",))}
    with EmbeddedIssuer(IssuerConfig(audience="xtremehub", token_lifetime=LIFETIME, clients=clients)) as running:
        yield running


@dataclass
class Secured:
    server: StreamServer
    issuer: EmbeddedIssuer
    secret_file: Path
    web_policies: Path


@pytest.fixture
def secured(tmp_path: Path, issuer: EmbeddedIssuer) -> Iterator[Secured]:
    """A stream server requiring the issuer's tokens (Cedar policies), holding lungs/{ct,xr} and heart/echo."""
    for name, text in (("stream-policies", STREAM_POLICIES), ("web-policies", WEB_POLICIES)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.cedar").write_text(text)
    secret = tmp_path / "web-client-secret"
    secret.write_text(SECRET + "\n")
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", leeway=0))
    authorizer = build_authorizer(PolicyConfig(sources=(str(tmp_path / "stream-policies"),)))
    config = ServerConfig(shutdown_grace=5.0, validator=validator, authorizer=authorizer)
    try:
        with serve_background(embedded.store, embedded.controller, config) as server:
            with StreamManager(server.url, token=issuer.issue("root", roles=["admin"], lifetime=600)) as admin:
                for scope, stream in (("lungs", "ct"), ("lungs", "xr"), ("heart", "echo")):
                    admin.create_scope(scope)
                    admin.create_stream(scope, stream)
                writer = admin.create_writer("lungs", "ct")
                for i in range(5):
                    writer.write_event(b"slice %d" % i).result(timeout=30)
                writer.close()
            yield Secured(server, issuer, secret, tmp_path / "web-policies")
    finally:
        embedded.close()


def app_client(s: Secured, settings: Settings, catalog: SqlCatalog, **streams: str) -> TestClient:
    config = WebConfig(
        security=True, oidc_issuer=s.issuer.url, policy=(str(s.web_policies),), streams=s.server.url, **streams
    )
    validator = OIDCValidator(OIDCConfig(issuer=s.issuer.url, audience="xtremehub"))
    authorizer = build_authorizer(PolicyConfig(sources=config.policy))
    app = create_app(config, catalog=catalog, settings=settings, validator=validator, authorizer=authorizer)
    return TestClient(app, base_url="http://127.0.0.1")


def as_user(issuer: EmbeddedIssuer, subject: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.issue(subject, roles=list(roles), lifetime=600)}"}


def test_without_a_service_credential_the_secured_server_is_unavailable(
    secured: Secured, settings: Settings, catalog: SqlCatalog
) -> None:
    with app_client(secured, settings, catalog) as client:
        r = client.get("/api/v1/streams/scopes/lungs", headers=as_user(secured.issuer, "alice", "research"))
    assert r.status_code == 503  # the caller's token was fine: not a 401
    assert "streams_client_id" in r.json()["detail"]


def test_the_service_credential_opens_the_connection_and_each_caller_sees_only_their_part(
    secured: Secured, settings: Settings, catalog: SqlCatalog
) -> None:
    creds = {"streams_client_id": "xhub-web", "streams_client_secret_file": str(secured.secret_file)}
    alice = as_user(secured.issuer, "alice", "research")
    carol = as_user(secured.issuer, "carol", "curator")
    with app_client(secured, settings, catalog, **creds) as client:
        assert client.get("/api/v1/streams/scopes/lungs", headers=alice).json() == ["ct", "xr"]
        ct = client.get("/api/v1/streams/scopes/lungs/streams/ct", headers=alice)
        assert ct.status_code == 200
        assert sum(s["length"] for s in ct.json()["segments"]) > 0
        # the service may read heart/ and every scope; alice's token may not, and that decides
        assert client.get("/api/v1/streams/scopes/heart", headers=alice).status_code == 403
        assert client.get("/api/v1/streams/scopes/heart/streams/echo", headers=alice).status_code == 403
        assert client.get("/api/v1/streams/scopes", headers=alice).status_code == 403
        assert client.get("/api/v1/streams/scopes/lungs").status_code == 401  # no caller token: nothing
        # a curator's token allows more: the same connection shows it
        assert client.get("/api/v1/streams/scopes", headers=carol).json() == ["heart", "lungs"]
        assert client.get("/api/v1/streams/scopes/heart/streams/echo", headers=carol).status_code == 200
        token = client.app.state.xhub.streams().token  # type: ignore[attr-defined]
    assert isinstance(token, ClientCredentialsToken)
    assert token.requests == 1  # one service token, shared by every caller's requests


def test_the_service_token_is_renewed_when_it_expires(
    secured: Secured, settings: Settings, catalog: SqlCatalog
) -> None:
    creds = {"streams_client_id": "xhub-web", "streams_client_secret_file": str(secured.secret_file)}
    alice = as_user(secured.issuer, "alice", "research")
    with app_client(secured, settings, catalog, **creds) as client:
        assert client.get("/api/v1/streams/scopes/lungs", headers=alice).status_code == 200
        token = client.app.state.xhub.streams().token  # type: ignore[attr-defined]
        first = token.expires_at
        time.sleep(max(0.0, first - time.time()) + 1.0)  # the connection's token has expired
        again = client.get("/api/v1/streams/scopes/lungs/streams/ct", headers=alice)
        assert again.status_code == 200, again.text
    assert token.requests >= 2
    assert token.expires_at > first


def test_client_credentials_are_asked_again_before_expiry(secured: Secured) -> None:
    now = [time.time()]
    token = ClientCredentialsToken(secured.issuer.url, "xhub-web", secured.secret_file, clock=lambda: now[0])
    first = token.token()
    assert token.requests == 1
    now[0] = token.expires_at - LIFETIME / 4 - 0.1  # just outside the margin (a quarter of the lifetime)
    assert token.token() == first
    now[0] += 0.2  # inside it: renewed before the token expires
    second = token.token()
    assert token.requests == 2
    assert second != first
    secured.secret_file.write_text("rotated-but-wrong")  # the secret is read at each request
    now[0] = token.expires_at
    with pytest.raises(AuthenticationFailed, match="invalid_client"):
        token.token()


def test_a_token_file_plain_or_from_xhub_login(
    secured: Secured, settings: Settings, catalog: SqlCatalog, tmp_path: Path
) -> None:
    alice = as_user(secured.issuer, "alice", "research")
    plain = tmp_path / "token"
    plain.write_text(secured.issuer.issue("xhub-web", roles=["stream-service"], lifetime=600) + "\n")
    record = tmp_path / "login" / "token.json"
    login(secured.issuer.url, client_id="xhub-web", client_secret_file=secured.secret_file, path=record)
    for path in (plain, record):
        with app_client(secured, settings, catalog, streams_token_file=str(path)) as client:
            assert client.get("/api/v1/streams/scopes/lungs", headers=alice).json() == ["ct", "xr"]
            assert client.get("/api/v1/streams/scopes/heart", headers=alice).status_code == 403
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(AuthenticationFailed, match="not one token"):
        TokenFile(tmp_path / "empty").token()
    with pytest.raises(AuthenticationFailed, match="does not exist"):
        TokenFile(tmp_path / "missing").token()


def test_settings_precedence_and_bad_combinations(tmp_path: Path, settings: Settings, catalog: SqlCatalog) -> None:
    file = tmp_path / "config.toml"
    file.write_text('[web]\nstreams = "tcp://127.0.0.1:9"\nstreams_token_file = "/from/file"\n')
    env = {"XHUB_WEB_STREAMS_TOKEN_FILE": "/from/env"}
    assert WebConfig.load(config_file=file, env={}).streams_token_file == "/from/file"
    assert WebConfig.load(config_file=file, env=env).streams_token_file == "/from/env"
    assert WebConfig.load(config_file=file, env=env, streams_token_file="/arg").streams_token_file == "/arg"
    assert WebConfig.load(config_file=file, env=env).stream_credential().path == Path("/from/env")
    server = "tcp://127.0.0.1:9"
    with pytest.raises(ConfigError, match="secret file"):
        WebConfig(streams=server, oidc_issuer="https://idp.example", streams_client_id="xhub-web")
    with pytest.raises(ConfigError, match="OpenID issuer"):
        WebConfig(streams=server, streams_client_id="xhub-web", streams_client_secret_file="/s")
    with pytest.raises(ConfigError, match="not both"):
        WebConfig(streams=server, streams_token_file="/t", streams_client_id="c", streams_client_secret_file="/s")
    with pytest.raises(ConfigError, match="is for a stream server"):
        WebConfig(streams=str(tmp_path / "data"), streams_token_file="/t")
    # security on without web policies: every valid token would see what the service sees
    config = WebConfig(security=True, oidc_issuer="https://idp.example", streams=server, streams_token_file="/t")
    validator = OIDCValidator(OIDCConfig(issuer="https://idp.example", audience="xtremehub"))
    with pytest.raises(ConfigError, match="needs web policies"):
        create_app(config, catalog=catalog, settings=settings, validator=validator)


def test_xhub_serve_with_a_service_credential(secured: Secured, tmp_path: Path) -> None:
    from test_api_serve import served

    args = ("--streams", secured.server.url, "--oidc-issuer", secured.issuer.url, "--policy", str(secured.web_policies))
    env = {"XHUB_WEB_STREAMS_CLIENT_ID": "xhub-web", "XHUB_WEB_STREAMS_CLIENT_SECRET_FILE": str(secured.secret_file)}
    alice = as_user(secured.issuer, "alice", "research")
    with served(tmp_path, *args, env=env) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/api/v1/streams/scopes/lungs", headers=alice).json() == ["ct", "xr"]
        assert http.get("/api/v1/streams/scopes/heart", headers=alice).status_code == 403
