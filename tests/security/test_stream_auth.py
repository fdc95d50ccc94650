"""Authentication and authorisation at the stream server: tokens in HELLO, every request authorised.

The authorizer here is the test's :class:`RoleAuthorizer` (standing in for the policy engine of
the secpolicy branch); the tokens come from the embedded issuer and are checked by the real
:class:`OIDCValidator`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from role_authorizer import STREAM_GRANTS, RoleAuthorizer

from xtremehub.errors import AuthenticationFailed, ConfigError, Forbidden, XHubError
from xtremehub.security.authz import Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.issuer import EmbeddedIssuer
from xtremehub.security.oidc import OIDCConfig, OIDCValidator
from xtremehub.streams import StreamManager
from xtremehub.streams.aio import AsyncStreamManager
from xtremehub.streams.client.reader import EventStreamReader
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.remote import ClientConfig
from xtremehub.streams.segmentstore.contract import SegmentStoreContract
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.streams.server.access import ACCESS_TABLE, ConnectionAccess
from xtremehub.streams.server.command import serve
from xtremehub.streams.server.dispatch import remote_methods
from xtremehub.streams.wire import CONTROLLER_TARGET, STORE_TARGET


@pytest.fixture
def authorizer() -> RoleAuthorizer:
    return RoleAuthorizer(STREAM_GRANTS)


@pytest.fixture
def secured(tmp_path: Path, issuer: EmbeddedIssuer, authorizer: RoleAuthorizer) -> Iterator[StreamServer]:
    """A stream server requiring the issuer's tokens, with the lungs/ct stream created by an admin."""
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub", leeway=0))
    config = ServerConfig(shutdown_grace=5.0, validator=validator, authorizer=authorizer)
    try:
        with serve_background(embedded.store, embedded.controller, config) as server:
            with StreamManager(server.url, token=issuer.issue("root", roles=["admin"])) as admin:
                admin.create_scope("lungs")
                admin.create_stream("lungs", "ct")
                admin.create_scope("heart")
                admin.create_stream("heart", "echo")
            yield server
    finally:
        embedded.close()


def _write(manager: StreamManager, stream: str, events: list[bytes], scope: str = "lungs") -> None:
    writer = manager.create_writer(scope, stream)
    try:
        for event in events:
            writer.write_event(event).result(timeout=30)
    finally:
        writer.close()


def _read_all(manager: StreamManager, group: str, count: int, scope: str = "lungs", stream: str = "ct") -> list[bytes]:
    reader = manager.create_reader_group(group, scope, [stream]).create_reader("r")
    got: list[bytes] = []
    try:
        while len(got) < count:
            event = reader.read_next(timeout=5)
            assert event is not None, f"only {len(got)} of {count} events"
            if not event.is_checkpoint:
                got.append(event.data)
    finally:
        reader.close()
    return got


def test_access_table_covers_every_remote_method() -> None:
    for target, contract in ((STORE_TARGET, SegmentStoreContract), (CONTROLLER_TARGET, ControllerContract)):
        missing = {m for m in remote_methods(contract) if (target, m) not in ACCESS_TABLE}
        assert missing == set(), f"{target} methods without an authorisation rule"


def test_valid_tokens_write_and_read(secured: StreamServer, issuer: EmbeddedIssuer, authorizer: RoleAuthorizer) -> None:
    with StreamManager(secured.url, token=issuer.issue("ingest", roles=["writer"])) as writer:
        _write(writer, "ct", [b"slice-1", b"slice-2"])
    with StreamManager(secured.url, token=issuer.issue("alice", roles=["research"]), purpose="research") as reader:
        assert _read_all(reader, "g1", 2) == [b"slice-1", b"slice-2"]
    seen = {(r.identity.subject, r.action.value, r.resource.name) for r in authorizer.requests}
    assert ("ingest", "write", "lungs/ct") in seen
    assert ("alice", "read", "lungs/ct") in seen
    assert {r.purpose for r in authorizer.requests if r.identity.subject == "alice"} == {"research"}


@pytest.mark.parametrize("kind", ["none", "forged", "expired", "wrong-audience"])
def test_bad_tokens_are_refused_at_hello(secured: StreamServer, issuer: EmbeddedIssuer, kind: str) -> None:
    claims = {"iss": issuer.url, "sub": "mallory", "aud": "xtremehub", "iat": int(time.time()), "exp": 2**31}
    tokens = {
        "none": None,
        "forged": jwt.encode(
            claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": issuer.keys.current}
        ),
        "expired": issuer.issue("alice", roles=["research"], lifetime=-5),
        "wrong-audience": issuer.issue("alice", roles=["research"], extra={"aud": "other"}, client="other"),
    }
    token = tokens[kind]
    with pytest.raises(AuthenticationFailed) as info:
        StreamManager(secured.url, token=token)
    assert token is None or token not in str(info.value)


def test_missing_role_is_forbidden(secured: StreamServer, issuer: EmbeddedIssuer) -> None:
    with StreamManager(secured.url, token=issuer.issue("alice", roles=["research"])) as reader:
        with pytest.raises(Forbidden, match="alice may not write stream lungs/ct"):
            _write(reader, "ct", [b"not allowed"])
        with pytest.raises(Forbidden, match="alice may not admin scope lungs"):
            reader.delete_scope("lungs")
        with pytest.raises(Forbidden, match="heart"):
            _read_all(reader, "g-heart", 1, scope="heart", stream="echo")
    with StreamManager(secured.url, token=issuer.issue("bob")) as nobody:
        with pytest.raises(Forbidden):
            nobody.get_stream("lungs", "ct")
        # The connection stays usable after a refusal: still refused, never served.
        with pytest.raises(Forbidden):
            nobody.store.read("lungs/ct/0.#epoch.0", 0, 1024)


def test_token_expiring_during_a_read_ends_access(secured: StreamServer, issuer: EmbeddedIssuer) -> None:
    with StreamManager(secured.url, token=issuer.issue("ingest", roles=["writer"])) as writer:
        _write(writer, "ct", [b"before"])
    short = issuer.issue("alice", roles=["research"], lifetime=3)
    expires = jwt.decode(short, options={"verify_signature": False})["exp"]
    with StreamManager(secured.url, token=short) as reader_manager:
        group = reader_manager.create_reader_group("g-exp", "lungs", ["ct"])
        reader = group.create_reader("r")
        first = reader.read_next(timeout=5)
        assert first is not None
        assert first.data == b"before"
        # A long poll started before expiry: it must not return data arriving after exp.
        with StreamManager(secured.url, token=issuer.issue("ingest", roles=["writer"])) as writer:
            time.sleep(max(0.0, expires - time.time()) + 0.2)
            _write(writer, "ct", [b"after expiry"])
        with pytest.raises(AuthenticationFailed, match="expired"):
            _read_until_refused(reader)
        assert time.time() >= expires


def _read_until_refused(reader: EventStreamReader) -> None:
    """Read until an error; the event written after expiry must never arrive."""
    for _ in range(20):
        event = reader.read_next(timeout=3)
        assert event is None or event.data != b"after expiry"


def test_long_poll_is_cut_at_expiry(secured: StreamServer, issuer: EmbeddedIssuer) -> None:
    short = issuer.issue("alice", roles=["research"], lifetime=2)
    expires = jwt.decode(short, options={"verify_signature": False})["exp"]
    with StreamManager(secured.url, token=short) as manager:
        segment = manager.get_stream("lungs", "ct").active_segments[0].name
        started = time.time()
        with pytest.raises(AuthenticationFailed, match="expired"):
            manager.store.read(segment, 0, 1024, wait=30)
        assert expires <= time.time() < expires + 2.0
        assert time.time() - started < 10


def test_many_concurrent_clients(secured: StreamServer, issuer: EmbeddedIssuer) -> None:
    per_writer, writers = 40, 6
    errors: list[BaseException] = []
    leaked: list[bytes] = []
    refused: list[str] = []

    def valid_writer(n: int) -> None:
        try:
            with StreamManager(secured.url, token=issuer.issue(f"w{n}", roles=["writer"])) as manager:
                _write(manager, "ct", [f"w{n}-{i}".encode() for i in range(per_writer)])
        except BaseException as exc:
            errors.append(exc)

    def invalid_client(n: int) -> None:
        forged = jwt.encode(
            {"iss": issuer.url, "sub": f"m{n}", "aud": "xtremehub", "iat": int(time.time()), "exp": 2**31},
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": issuer.keys.current},
        )
        tokens = [forged, issuer.issue(f"m{n}", lifetime=-5), issuer.issue(f"m{n}", roles=["nothing"])]
        for token in tokens:
            for _ in range(5):
                try:
                    with StreamManager(secured.url, token=token) as manager:
                        leaked.append(manager.store.read("lungs/ct/0.#epoch.0", 0, 1 << 16).data)
                except (AuthenticationFailed, Forbidden) as exc:
                    refused.append(type(exc).__name__)
                except BaseException as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=valid_writer, args=(n,)) for n in range(writers)]
    threads += [threading.Thread(target=invalid_client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert leaked == []
    assert len(refused) == 6 * 3 * 5
    assert set(refused) == {"AuthenticationFailed", "Forbidden"}
    with StreamManager(secured.url, token=issuer.issue("alice", roles=["research"])) as reader:
        got = _read_all(reader, "g-all", per_writer * writers)
    assert sorted(got) == sorted(f"w{n}-{i}".encode() for n in range(writers) for i in range(per_writer))


def test_no_token_in_logs_or_errors(
    secured: StreamServer, issuer: EmbeddedIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [issuer.issue("alice", roles=["research"]), issuer.issue("bob", lifetime=-5), issuer.issue("carol")]
    messages: list[str] = []
    for token in tokens:
        try:
            with StreamManager(secured.url, token=token) as manager:
                manager.get_stream("lungs", "ct")
                _write(manager, "ct", [b"x"])
        except XHubError as exc:
            messages.append(repr(exc))
    assert len(messages) == 3
    for token in tokens:
        signature = token.split(".")[2]
        assert signature not in caplog.text
        assert all(signature not in m for m in messages)


def test_security_off_by_default(tmp_path: Path) -> None:
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    try:
        with serve_background(embedded.store, embedded.controller) as server, StreamManager(server.url) as manager:
            assert manager.create_scope("open")
    finally:
        embedded.close()


def test_non_loopback_refuses_without_security(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"refusing to serve streams on 0\.0\.0\.0 without security"):
        ServerConfig(host="0.0.0.0").check_security()
    ServerConfig(host="0.0.0.0", insecure=True).check_security()
    ServerConfig(host="127.0.0.1").check_security()
    result = CliRunner().invoke(serve, ["--data", str(tmp_path / "d"), "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "--insecure" in lines[0]
    assert not (tmp_path / "d").exists()  # refused before touching the data directory


def test_token_provider_renews_at_expiry(secured: StreamServer, issuer: EmbeddedIssuer) -> None:
    issued: list[str] = []

    def provider() -> str:  # a fresh 2-second token at each connection, as StoredToken refreshes
        issued.append(issuer.issue("ingest", roles=["writer"], lifetime=2))
        return issued[-1]

    with StreamManager(secured.url, token=provider) as manager:
        writer = manager.create_writer("lungs", "ct")
        deadline = time.time() + 5
        written = 0
        while time.time() < deadline:  # across at least two expiries: nothing fails, nothing is lost
            writer.write_event(f"e{written}".encode()).result(timeout=30)
            written += 1
            time.sleep(0.05)
        writer.close()
    assert len(issued) >= 3
    with StreamManager(secured.url, token=issuer.issue("alice", roles=["research"])) as reader:
        assert _read_all(reader, "g-renew", written) == [f"e{i}".encode() for i in range(written)]


def test_allowed_decisions_remembered_briefly_refusals_never(authorizer: RoleAuthorizer) -> None:
    now = [1000.0]
    writer = Identity("ingest", roles=frozenset({"writer"}), expires_at=2000.0)
    access = ConnectionAccess(writer, authorizer, cache_ttl=1.0, clock=lambda: now[0])
    ct = Resource("stream", "lungs/ct")
    for _ in range(100):
        access.authorize(Action.WRITE, ct)
    assert len(authorizer.requests) == 1  # 100 appends, one policy decision
    now[0] += 1.5
    access.authorize(Action.WRITE, ct)
    assert len(authorizer.requests) == 2  # asked again after cache_ttl
    for _ in range(3):
        with pytest.raises(Forbidden):
            access.authorize(Action.ADMIN, ct)
    assert len(authorizer.requests) == 5  # every refusal asked again
    now[0] = 2000.0
    with pytest.raises(AuthenticationFailed, match="expired"):
        access.authorize(Action.WRITE, ct)  # the cache never outlives the token


def test_serve_command_with_oidc_issuer(tmp_path: Path, issuer: EmbeddedIssuer) -> None:
    command = [sys.executable, "-m", "xtremehub.streams.server", "--data", str(tmp_path / "d"), "--port", "0"]
    process = subprocess.Popen(
        [*command, "--oidc-issuer", issuer.url, "--maintenance-interval", "3600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert process.stdout is not None
        assert select.select([process.stdout], [], [], 60)[0], "the server printed nothing"
        url = process.stdout.readline().split()[-1]
        assert url.startswith("tcp://127.0.0.1:")
        with pytest.raises(AuthenticationFailed, match="bearer token"):
            StreamManager(url)
        with StreamManager(url, token=issuer.issue("alice")) as manager:
            assert manager.create_scope("served")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def test_client_config_repr_hides_the_token() -> None:
    config = ClientConfig(token="secret-token-value-123", auth_token="other-secret-456")
    assert "secret-token-value-123" not in repr(config)
    assert "other-secret-456" not in repr(config)


def test_async_manager_sends_the_token(secured: StreamServer, issuer: EmbeddedIssuer) -> None:
    async def main() -> list[str]:
        token = issuer.issue("alice", roles=["research"])
        async with await AsyncStreamManager.connect(secured.url, token=token) as manager:
            return await manager.list_streams("lungs")

    assert asyncio.run(main()) == ["ct"]
    with pytest.raises(AuthenticationFailed):
        asyncio.run(AsyncStreamManager.connect(secured.url))


def test_serve_command_with_cedar_policies_and_an_audit_log(tmp_path: Path, issuer: EmbeddedIssuer) -> None:
    """The real entry point: ``--policy`` decides every request with Cedar, ``--audit-log`` records it."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "lungs.cedar").write_text(
        '@id("research-uses-lungs")\n'
        'permit(principal in XHub::Role::"research", action, resource in XHub::Scope::"lungs");\n'
        '@id("research-lists")\n'
        'permit(principal in XHub::Role::"research", action, resource == XHub::Scope::"*");\n'
    )
    log, key = tmp_path / "audit.jsonl", tmp_path / "audit.key"
    command = [sys.executable, "-m", "xtremehub.streams.server", "--data", str(tmp_path / "d"), "--port", "0"]
    command += [
        "--oidc-issuer",
        issuer.url,
        "--policy",
        str(policies),
        "--audit-log",
        str(log),
        "--audit-key",
        str(key),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert select.select([process.stdout], [], [], 60)[0], "the server printed nothing"
        url = process.stdout.readline().split()[-1]
        with StreamManager(url, token=issuer.issue("alice", roles=["research"])) as alice:
            assert alice.create_scope("lungs")
            alice.create_stream("lungs", "ct")
            _write(alice, "ct", [b"slice-1", b"slice-2"])
            assert _read_all(alice, "g", 2) == [b"slice-1", b"slice-2"]
        with StreamManager(url, token=issuer.issue("bob")) as bob:
            with pytest.raises(Forbidden):
                bob.create_reader_group("g-bob", "lungs", ["ct"])
            with pytest.raises(Forbidden):
                bob.create_scope("other")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    from xtremehub.cli import cli

    verified = CliRunner().invoke(cli, ["audit", "verify", str(log), "--public-key", f"{key}.pub"])
    assert verified.exit_code == 0, verified.output
    records = [json.loads(line) for line in log.read_text().splitlines()]
    decisions = {(r["subject"], r["decision"], r["policy"]) for r in records if r.get("kind") == "decision"}
    assert ("alice", "allow", "research-uses-lungs") in decisions
    assert {d for s, d, _ in decisions if s == "bob"} == {"deny"}  # every request of bob's was refused


def test_a_segment_listing_prefix_cannot_reach_other_scopes_or_streams() -> None:
    from xtremehub.streams.server.access import request_access

    def needs(prefix: str) -> list[tuple[str, str]]:
        return [(r.kind, r.name) for _, r in request_access("store", "list_segments", {"prefix": prefix})]

    assert needs("lungs/") == [("scope", "lungs")]
    assert needs("lungs/ct/") == [("stream", "lungs/ct")]
    for escaping in ("lungs", "lungs/ct", "lungs/c", ""):  # would also list lungs-private/..., lungs/ct2/...
        assert needs(escaping) == [("scope", "*")]


def test_group_changes_need_write_not_read() -> None:
    from xtremehub.streams.server.access import request_access

    for method in ("delete_reader_group", "reset_reader_group", "delete_checkpoint", "cancel_checkpoint"):
        args = {"scope": "lab", "group": "g", "name": "cp", "config": None}
        assert {a for a, _ in request_access("controller", method, args)} == {Action.WRITE}


def test_policies_without_token_validation_are_refused(tmp_path: Path) -> None:
    config = ServerConfig(host="127.0.0.1", authorizer=RoleAuthorizer(STREAM_GRANTS))
    with pytest.raises(ConfigError, match="needs token validation"):
        config.check_security()
