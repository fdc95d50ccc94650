"""The local CA of ``xhub security init``: file modes, names, chains, a real TLS handshake."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from xtremehub.cli import cli
from xtremehub.errors import ConfigError
from xtremehub.security.pki import client_ssl_context, init_pki, issue_certificate, server_ssl_context


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_writes_private_keys_0600_in_a_0700_directory(tmp_path: Path) -> None:
    files = init_pki(tmp_path / "pki", hosts=["keys.lab", "10.0.0.5"])
    assert oct(files.directory.stat().st_mode & 0o777) == "0o700"
    for key in (files.ca_key, files.server_key, files.client_key):
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        assert b"PRIVATE KEY" in key.read_bytes()
    san = _cert(files.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["keys.lab"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    ca = _cert(files.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf, usage in (
        (files.server_cert, ExtendedKeyUsageOID.SERVER_AUTH),
        (files.client_cert, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        cert = _cert(leaf)
        cert.verify_directly_issued_by(ca)
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]


def test_init_again_keeps_the_ca_and_force_reissues(tmp_path: Path) -> None:
    first = init_pki(tmp_path, hosts=["localhost"])
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = init_pki(tmp_path, hosts=["other"])
    assert again.ca_cert.read_bytes() == ca
    assert again.server_cert.read_bytes() == server
    forced = init_pki(tmp_path, hosts=["other"], force=True)
    assert forced.ca_cert.read_bytes() == ca
    assert forced.server_cert.read_bytes() != server
    cert, key = issue_certificate(tmp_path, "worker-7", client=True)
    assert _cert(cert).subject.rfc4514_string() == "CN=worker-7,O=XtremeHub"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_bad_hosts_and_missing_ca_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'bad host' is neither an IP address nor a DNS name"):
        init_pki(tmp_path / "a", hosts=["bad host"])
    with pytest.raises(ConfigError, match="cannot load the CA"):
        issue_certificate(tmp_path / "empty", "x", ["localhost"])
    with pytest.raises(ConfigError, match="cannot load TLS certificate"):
        server_ssl_context(tmp_path / "none.pem", tmp_path / "none-key.pem")


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> str:
    """One TLS handshake over a loopback socket; the peer's common name seen by the server, or the error."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                seen.append(str(dict(x[0] for x in peer["subject"])["commonName"]) if peer else "anonymous")
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            seen.append(type(exc).__name__)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            tls.sendall(b"x")
            tls.recv(1)
    except (ssl.SSLError, OSError) as exc:
        seen.append("client:" + type(exc).__name__)
    finally:
        thread.join(timeout=10)
        listener.close()
    return " ".join(seen)


def test_the_certificates_make_a_mutual_tls_handshake(tmp_path: Path) -> None:
    files = init_pki(tmp_path, hosts=["localhost", "127.0.0.1"])
    mtls = server_ssl_context(files.server_cert, files.server_key, client_ca=files.ca_cert)
    with_cert = client_ssl_context(files.ca_cert, files.client_cert, files.client_key)
    assert _handshake(mtls, with_cert, "localhost") == "client"
    # no client cert: the server refuses (which side notices first depends on timing under TLS 1.3)
    assert "SSLError" in _handshake(mtls, client_ssl_context(files.ca_cert), "localhost").split()
    plain = server_ssl_context(files.server_cert, files.server_key)
    assert _handshake(plain, client_ssl_context(files.ca_cert), "127.0.0.1") == "anonymous"
    assert "SSLCertVerificationError" in _handshake(plain, client_ssl_context(files.ca_cert), "elsewhere.example")
    assert "SSLCertVerificationError" in _handshake(plain, client_ssl_context(None), "localhost")  # unknown CA


def test_xhub_security_init(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["security", "init", str(tmp_path / "tls"), "--host", "keys.lab,10.1.2.3", "--host", "localhost"]
    )
    assert result.exit_code == 0, result.output
    assert "for keys.lab, 10.1.2.3, localhost" in result.output
    san = _cert(tmp_path / "tls" / "server.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["keys.lab", "localhost"]
    assert oct((tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o777) == "0o600"
