"""TLS on the stream server: --tls-cert/--tls-key on the server, tls_ca= on the client.

The certificates are made here with ``cryptography`` (a throw-away CA and a server certificate
for 127.0.0.1); ``xhub security init`` (the seckeys branch) makes real ones.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xtremehub.errors import AuthenticationFailed, ServerUnavailable
from xtremehub.security.issuer import EmbeddedIssuer
from xtremehub.security.oidc import OIDCConfig, OIDCValidator
from xtremehub.streams import StreamManager
from xtremehub.streams.remote import connect_server
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background
from xtremehub.streams.server.command import server_tls


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer_name: str, issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.Certificate:
    """A CA certificate, or a leaf for 127.0.0.1 (usable as server and client certificate)."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ca.pem, server.pem/.key and client.pem/.key of a throw-away CA; other-ca.pem of an unrelated one."""
    root = tmp_path_factory.mktemp("tls")
    ca_key, other_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    files = {
        "ca": (root / "ca.pem", _cert("test CA", ca_key, "test CA", ca_key, ca=True)),
        "other": (root / "other-ca.pem", _cert("other CA", other_key, "other CA", other_key, ca=True)),
        "server": (root / "server.pem", _cert("127.0.0.1", server_key, "test CA", ca_key, ca=False)),
        "client": (root / "client.pem", _cert("worker-1", client_key, "test CA", ca_key, ca=False)),
    }
    for path, cert in files.values():
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keys = {"key": (root / "server.key", server_key), "client-key": (root / "client.key", client_key)}
    for path, key in keys.values():
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return {name: path for name, (path, _) in files.items()} | {name: path for name, (path, _) in keys.items()}


@pytest.fixture
def tls_server(tmp_path: Path, certs: dict[str, Path], issuer: EmbeddedIssuer) -> Iterator[StreamServer]:
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    config = ServerConfig(
        shutdown_grace=5.0,
        ssl=server_tls(str(certs["server"]), str(certs["key"])),
        validator=OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub")),
    )
    try:
        with serve_background(embedded.store, embedded.controller, config) as server:
            yield server
    finally:
        embedded.close()


def test_tls_with_token(tls_server: StreamServer, certs: dict[str, Path], issuer: EmbeddedIssuer) -> None:
    token = issuer.issue("alice", roles=["research"])
    with StreamManager(tls_server.url, token=token, tls_ca=str(certs["ca"])) as manager:
        assert manager.create_scope("lungs")
        assert manager.list_scopes() == ["lungs"]
        manager.create_stream("lungs", "ct")
        writer = manager.create_writer("lungs", "ct")
        writer.write_event(b"over tls").result(timeout=30)
        writer.close()
        segment = manager.get_stream("lungs", "ct").active_segments[0].name
        assert b"over tls" in manager.store.read(segment, 0, 1024).data


def test_tls_token_still_checked(tls_server: StreamServer, certs: dict[str, Path], issuer: EmbeddedIssuer) -> None:
    with pytest.raises(AuthenticationFailed, match="expired"):
        StreamManager(tls_server.url, token=issuer.issue("alice", lifetime=-60), tls_ca=str(certs["ca"]))


def test_tls_refuses_untrusted_server_and_plaintext(
    tls_server: StreamServer, certs: dict[str, Path], issuer: EmbeddedIssuer
) -> None:
    token = issuer.issue("alice")
    with pytest.raises(ServerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        StreamManager(tls_server.url, token=token, tls_ca=str(certs["other"]))
    with pytest.raises(ServerUnavailable):
        StreamManager(tls_server.url, token=token)  # plaintext HELLO to a TLS server


def test_mutual_tls(tmp_path: Path, certs: dict[str, Path], issuer: EmbeddedIssuer) -> None:
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    config = ServerConfig(shutdown_grace=5.0, ssl=server_tls(str(certs["server"]), str(certs["key"]), str(certs["ca"])))
    ca = str(certs["ca"])
    try:
        with serve_background(embedded.store, embedded.controller, config) as server:
            controller, store = connect_server(
                server.url, tls_ca=ca, tls_cert=str(certs["client"]), tls_key=str(certs["client-key"])
            )
            with StreamManager(controller, store, on_close=[store.close]) as manager:
                assert manager.create_scope("mtls")
            with pytest.raises(ServerUnavailable):
                connect_server(server.url, tls_ca=ca)  # no client certificate
    finally:
        embedded.close()
