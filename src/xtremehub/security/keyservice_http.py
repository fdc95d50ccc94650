"""The key service over HTTPS (``xhub keys serve``): stdlib ``http.server`` in a thread, TLS, optional mTLS.

Endpoints (JSON bodies, at most 64 KiB):

- ``POST /v1/job-tokens`` with ``Authorization: Bearer <submitter token>`` and
  ``{"job_id", "datasets", "purpose"}`` -> ``{"job_token"}``.
- ``POST /v1/release`` with a :class:`~.keyservice.ReleaseRequest` -> a :class:`~.keyservice.ReleaseResponse`.
- ``POST /v1/admin/policy`` (bearer of a key administrator) with a key policy document: install
  it (a dataset's first one also creates its KEK) -> ``{"dataset", "policy_version", "kek_version"}``.
- ``POST /v1/admin/rotate`` (bearer of a key administrator) with ``{"dataset"}`` -> ``{"version"}``.
- ``GET /v1/health`` -> ``{"status": "ok"}``.

Refusals are ``{"error": "<XtremeHub error class>", "message": ...}`` with 400 (bad request),
401 (authentication), 403 (denied) or 409 (stale policy); messages never hold a token or key.
The request log names method, path and status only. A server on anything but loopback refuses
to start without TLS unless ``insecure=True``.

Example:
    >>> import tempfile
    >>> from xtremehub.security.keyservice import KeyService
    >>> from xtremehub.security.keyservice_store import MasterKey
    >>> service = KeyService(tempfile.mkdtemp(), MasterKey(b"m" * 32))
    >>> with KeyServer(service) as server:  # loopback, plain HTTP: tests and one machine only
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from xtremehub.errors import (
    AuthenticationFailed,
    ConfigError,
    Forbidden,
    KeyReleaseDenied,
    SecurityError,
    StalePolicy,
    XHubError,
)
from xtremehub.security.keypolicy import KeyPolicy
from xtremehub.security.keyservice import KeyService, ReleaseRequest
from xtremehub.security.pki import server_ssl_context

__all__ = ["KeyServer", "is_loopback"]

log = logging.getLogger(__name__)
_MAX_BODY = 64 * 1024
_IDLE = 60.0
#: How often the server thread checks for :meth:`stop` (socketserver's default, 0.5 s, made every
#: stop wait that long).
_STOP_POLL = 0.05


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _status(exc: Exception) -> int:
    if isinstance(exc, AuthenticationFailed):
        return 401
    if isinstance(exc, KeyReleaseDenied | Forbidden):
        return 403
    if isinstance(exc, StalePolicy):
        return 409
    return 400


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: one TLS handshake per worker connection
    timeout = _IDLE  # an idle kept-alive connection is closed (the client reconnects)

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without NODELAY, Nagle and delayed ACKs add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise KeyReleaseDenied("bad Content-Length") from None
        if length <= 0 or length > _MAX_BODY:
            raise KeyReleaseDenied(f"request body must be 1 byte to {_MAX_BODY} bytes")
        try:
            data = json.loads(self.rfile.read(length))
        except ValueError:
            raise KeyReleaseDenied("request body is not JSON") from None
        if not isinstance(data, dict):
            raise KeyReleaseDenied("request body must be a JSON object")
        return data

    def _bearer(self) -> str:
        scheme, _, bearer = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise AuthenticationFailed("no bearer token in the Authorization header")
        return bearer.strip()

    def do_GET(self) -> None:
        if self.path == "/v1/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": "NotFound", "message": f"no endpoint {self.path}"})

    def do_POST(self) -> None:
        service = self.server.service
        try:
            body = self._body()
            if self.path == "/v1/release":
                answer = service.release(ReleaseRequest.from_dict(body)).to_dict()
            elif self.path == "/v1/job-tokens":
                datasets = body.get("datasets")
                if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
                    raise ConfigError("field 'datasets' must be a list of dataset names")
                purpose = body.get("purpose")
                token = service.issue_job_token(
                    self._bearer(),
                    job_id=str(body.get("job_id", "")),
                    datasets=datasets,
                    purpose=str(purpose) if purpose is not None else None,
                )
                answer = {"job_token": token}
            elif self.path == "/v1/admin/policy":
                by = service.authenticate(self._bearer())
                policy = KeyPolicy.from_dict(body, source="key policy in the request")
                version = service.create_dataset(policy, by=by)
                answer = {"dataset": policy.dataset, "policy_version": policy.version, "kek_version": version}
            elif self.path == "/v1/admin/rotate":
                by = service.authenticate(self._bearer())
                answer = {"version": service.rotate(str(body.get("dataset", "")), by=by)}
            else:
                self._send(404, {"error": "NotFound", "message": f"no endpoint {self.path}"})
                return
        except (SecurityError, ConfigError) as exc:
            self.close_connection = True  # the body may be unread: never parse it as a next request
            self._send(_status(exc), {"error": type(exc).__name__, "message": str(exc)})
            return
        except XHubError as exc:
            self._send(500, {"error": type(exc).__name__, "message": str(exc)})
            return
        except Exception:
            log.exception("key service request %s failed", self.path)
            self._send(500, {"error": "InternalError", "message": "internal error (see the key service log)"})
            return
        self._send(200, answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: KeyService
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake happens here, in the connection's thread, not in the accept loop."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(_IDLE)  # a client that never completes the handshake does not hold a thread
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", client_address[0], type(exc).__name__)
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()


class _Server6(_Server):
    address_family = socket.AF_INET6


class KeyServer:
    """Serves a :class:`~.keyservice.KeyService` on ``host:port`` (0: a free port) in a thread.

    Args:
        service: the key service.
        host, port: where to listen.
        cert_file, key_file: the server certificate and key (TLS on when given).
        client_ca: require client certificates signed by this CA (mutual TLS).
        insecure: allow plain HTTP on a non-loopback address (never do that with real keys).
    """

    def __init__(
        self,
        service: KeyService,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        cert_file: Path | str | None = None,
        key_file: Path | str | None = None,
        client_ca: Path | str | None = None,
        insecure: bool = False,
    ) -> None:
        if cert_file is None and not is_loopback(host) and not insecure:
            raise ConfigError(
                f"refusing to serve keys on {host} without TLS: give --tls-dir (xhub security init), or --insecure"
            )
        if client_ca is not None and cert_file is None:
            raise ConfigError("mutual TLS (client_ca) needs a server certificate too")
        self.service = service
        server_class = _Server6 if ":" in host else _Server
        self._httpd = server_class((host, port), _Handler)
        self._httpd.service = service
        self.tls = cert_file is not None
        if cert_file is not None:
            self._httpd.tls = server_ssl_context(cert_file, key_file or cert_file, client_ca)
        self.host, self.port = host, self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> KeyServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": _STOP_POLL}, name="xhub-keys", daemon=True
        )
        self._thread.start()
        log.info("key service listening on %s (%s)", self.url, "TLS" if self.tls else "plain HTTP, loopback")
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> KeyServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
