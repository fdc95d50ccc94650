"""The worker side of key release: an HTTPS client, and KEKs as a :class:`KeyEncryptionKeys`.

:class:`ServiceKeys` wraps and unwraps data keys with KEKs the key service releases *inside the
process that uses them*: pickled, it carries only the service URL, the CA (and client
certificate) paths, the job token and the attester -- never key material. The first
``wrap``/``unwrap`` for a dataset in a worker makes a release request there.

Wrapped data key format: ``b"xkw1" || KEK version (4 bytes, big endian) || AES-256-GCM box``
(12-byte nonce, ciphertext, tag; associated data ``xhub-dk|<dataset>|<version>``), so a blob
names its KEK version and stays readable after a rotation; :func:`rewrap` moves blobs to
the current version without touching the data they protect.

Example:
    >>> client = KeyClient("https://127.0.0.1:8443", ca_file="/etc/xhub/ca.pem")
    >>> client
    KeyClient('https://127.0.0.1:8443')
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from xtremehub.errors import (
    AuthenticationFailed,
    ConfigError,
    Forbidden,
    IntegrityError,
    KeyReleaseDenied,
    StalePolicy,
)
from xtremehub.security.attest import Attester, SoftwareAttester
from xtremehub.security.jobtoken import peek_expiry
from xtremehub.security.keypolicy import KeyPolicy
from xtremehub.security.keys import KeyEncryptionKeys
from xtremehub.security.keyservice import ReleaseRequest, ReleaseResponse, release_context, report_data
from xtremehub.security.pki import client_ssl_context
from xtremehub.security.sealing import EphemeralKeyPair, aead_decrypt, aead_encrypt

__all__ = [
    "JOB_TOKEN_ENV",
    "KEY_SOURCE_SCHEMES",
    "KeyClient",
    "KeyReleaser",
    "ServiceKeys",
    "blob_version",
    "fetch_kek",
    "key_client_from_url",
    "rewrap",
    "service_keys_from_url",
]

#: The environment variable a worker reads its job token from when none was given.
JOB_TOKEN_ENV = "XHUB_JOB_TOKEN"  # noqa: S105 - the name of a variable, not a secret
#: Key-source URL schemes of :func:`service_keys_from_url` (``keyservice+http`` is for loopback only).
KEY_SOURCE_SCHEMES = ("keyservice", "keyservice+http")

_MAGIC = b"xkw1"
_ERRORS: dict[str, type[Exception]] = {
    "AuthenticationFailed": AuthenticationFailed,
    "Forbidden": Forbidden,
    "KeyReleaseDenied": KeyReleaseDenied,
    "StalePolicy": StalePolicy,
    "ConfigError": ConfigError,
}


class KeyReleaser(Protocol):
    """What answers release requests: the embedded :class:`~.keyservice.KeyService` or a :class:`KeyClient`."""

    def release(self, request: ReleaseRequest) -> ReleaseResponse: ...


class KeyClient:
    """HTTPS client of ``xhub keys serve`` (picklable: paths and the URL only).

    Args:
        url: ``https://host:port`` (``http://`` only for a loopback service without TLS).
        ca_file: the CA certificate that signed the server's (``xhub security init``).
        cert_file, key_file: a client certificate and key, for a service requiring mutual TLS.
        timeout: seconds per request.
    """

    def __init__(
        self,
        url: str,
        ca_file: Path | str | None = None,
        cert_file: Path | str | None = None,
        key_file: Path | str | None = None,
        timeout: float = 30.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ConfigError(f"key service URL {url!r} must be https://HOST:PORT")
        self.url, self.timeout = url.rstrip("/"), timeout
        self.ca_file = str(ca_file) if ca_file is not None else None
        self.cert_file = str(cert_file) if cert_file is not None else None
        self.key_file = str(key_file) if key_file is not None else None
        self._local = threading.local()
        self._open: list[http.client.HTTPConnection] = []  # every thread's kept-alive connection
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyClient({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_local", "_open", "_open_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
        self._open = []
        self._open_lock = threading.Lock()

    def __del__(self) -> None:
        if hasattr(self, "_open_lock"):  # not after a refused __init__
            self.close()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme == "https":
            ctx = client_ssl_context(self.ca_file, self.cert_file, self.key_file)
            conn = http.client.HTTPSConnection(parsed.hostname or "", parsed.port, timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=self.timeout)
        self._local.conn = conn
        with self._open_lock:
            self._open.append(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        self._local.conn = None
        conn.close()
        with self._open_lock:
            if conn in self._open:
                self._open.remove(conn)

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        for attempt in (0, 1):  # one retry on a kept-alive connection the server closed
            conn = self._connection()
            try:
                conn.request("POST", path, body=data, headers=hdrs)
                resp = conn.getresponse()
                payload = resp.read()
                if resp.will_close:
                    self._drop(conn)
                break
            except (ssl.SSLError, ssl.CertificateError) as exc:
                self._drop(conn)
                if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError) and not attempt:
                    continue  # the server closed a kept-alive connection: reconnect once
                raise KeyReleaseDenied(
                    f"TLS with the key service {self.url} failed: {exc.__class__.__name__}"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(conn)
                if attempt:
                    raise KeyReleaseDenied(f"key service {self.url} unreachable: {exc.__class__.__name__}") from None
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise KeyReleaseDenied(f"key service {self.url} answered HTTP {resp.status} without a JSON object")
        if resp.status != 200:
            error = _ERRORS.get(str(answer.get("error")), KeyReleaseDenied)
            raise error(str(answer.get("message", f"HTTP {resp.status}")))
        return dict(answer)

    def release(self, request: ReleaseRequest) -> ReleaseResponse:
        return ReleaseResponse.from_dict(self._post("/v1/release", request.to_dict()))

    def issue_job_token(self, bearer: str, job_id: str, datasets: Iterable[str], purpose: str | None) -> str:
        """Exchange the submitter's token ``bearer`` for a job token (``POST /v1/job-tokens``)."""
        answer = self._post(
            "/v1/job-tokens",
            {"job_id": job_id, "datasets": sorted(datasets), "purpose": purpose},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        return str(answer["job_token"])

    def put_policy(self, bearer: str, policy: KeyPolicy) -> int:
        """Install ``policy`` as a key administrator (a first one creates the KEK); the KEK version."""
        answer = self._post("/v1/admin/policy", policy.to_dict(), headers={"Authorization": f"Bearer {bearer}"})
        return int(answer["kek_version"])

    def rotate(self, bearer: str, dataset: str) -> int:
        """Rotate ``dataset``'s KEK as a key administrator; the new version."""
        answer = self._post("/v1/admin/rotate", {"dataset": dataset}, headers={"Authorization": f"Bearer {bearer}"})
        return int(answer["version"])

    def close(self) -> None:
        """Close every thread's connection (also done when the client is garbage collected)."""
        with self._open_lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def fetch_kek(
    source: KeyReleaser, job_token: str, dataset: str, version: int | None, attester: Attester
) -> tuple[int, bytes]:
    """One release request: ``(version, KEK)`` of ``dataset`` (the current version if ``version`` is None)."""
    pair = EphemeralKeyPair.generate()
    nonce = os.urandom(32)
    now = time.time()
    evidence = attester.attest(report_data(job_token, dataset, version, nonce, now, pair.public_bytes))
    request = ReleaseRequest(job_token, dataset, version, nonce, now, pair.public_bytes, evidence)
    response = source.release(request)
    opened = pair.open(response.sealed, release_context(dataset, version, nonce))
    released = int.from_bytes(opened[:4], "big")
    if response.dataset != dataset or released != response.version or (version is not None and released != version):
        raise IntegrityError(f"the key service answered for another key than {dataset!r} version {version}")
    return released, opened[4:]


def _aad(dataset: str, version: int) -> bytes:
    return f"xhub-dk|{dataset}|{version}".encode()


def blob_version(wrapped: bytes) -> int:
    """The KEK version a wrapped data key names; :class:`IntegrityError` if it is no wrapped key."""
    if len(wrapped) < 8 + 12 + 16 or wrapped[:4] != _MAGIC:
        raise IntegrityError(f"not a wrapped data key ({len(wrapped)} bytes, no {_MAGIC!r} header)")
    return int.from_bytes(wrapped[4:8], "big")


class ServiceKeys(KeyEncryptionKeys):
    """:class:`~.keys.KeyEncryptionKeys` with KEKs released by the key service to this process.

    Args:
        source: a :class:`KeyClient` (travels to workers) or the embedded service (in process only).
        job_token: the job token (from ``issue_job_token``); None: read ``XHUB_JOB_TOKEN`` from
            the environment at each release (e.g. ``FunctionExecutor.map(..., extra_env=...)``).
        attester: measures the code (e.g. ``SoftwareAttester(task)``); a callable is measured
            with :class:`~.attest.SoftwareAttester`.

    Example:
        >>> import cloudpickle, pickle
        >>> def task(x):
        ...     return x
        >>> keys = ServiceKeys(KeyClient("https://127.0.0.1:1"), "xjt1.token.mac", task)
        >>> pickle.loads(cloudpickle.dumps(keys)).fetched
        0
    """

    def __init__(self, source: KeyReleaser, job_token: str | None, attester: Attester | Callable[..., Any]) -> None:
        self.source, self.job_token = source, job_token
        self.attester: Attester = attester if hasattr(attester, "attest") else SoftwareAttester(attester)
        # KEKs are cached per job token: a long-lived worker that runs another job asks again.
        self._keks: dict[tuple[str, str, int], bytes] = {}
        self._current: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ServiceKeys({self.source!r}, fetched={self.fetched})"  # never the token or a key

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "job_token": self.job_token, "attester": self.attester}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["source"], state["job_token"], state["attester"])  # type: ignore[misc]

    @property
    def fetched(self) -> int:
        """How many KEK versions this process holds (0 after unpickling: none travel)."""
        return len(self._keks)

    def refresh(self) -> None:
        """Forget which version is current (after a rotation, wrap then asks again)."""
        with self._lock:
            self._current.clear()

    def _token(self) -> str:
        token = self.job_token if self.job_token is not None else os.environ.get(JOB_TOKEN_ENV)
        if not token:
            raise AuthenticationFailed(f"no job token: pass one, or set {JOB_TOKEN_ENV} in the worker's environment")
        return token

    def _kek(self, dataset: str, version: int | None) -> tuple[int, bytes]:
        token = self._token()
        job = hashlib.sha256(token.encode()).hexdigest()
        expiry = peek_expiry(token)
        with self._lock:
            if expiry is not None and time.time() > expiry:  # the job is over: forget its keys, ask again
                for key in [k for k in self._keks if k[0] == job]:
                    del self._keks[key]
            if version is None:
                version = self._current.get((job, dataset))
            if version is not None and (job, dataset, version) in self._keks:
                return version, self._keks[(job, dataset, version)]
            got, kek = fetch_kek(self.source, token, dataset, version, self.attester)
            self._keks[(job, dataset, got)] = kek
            if version is None:
                self._current[(job, dataset)] = got
            return got, kek

    def wrap(self, dataset: str, data_key: bytes) -> bytes:
        version, kek = self._kek(dataset, None)
        return _MAGIC + version.to_bytes(4, "big") + aead_encrypt(kek, data_key, _aad(dataset, version))

    def unwrap(self, dataset: str, wrapped: bytes) -> bytes:
        version = blob_version(wrapped)
        _, kek = self._kek(dataset, version)
        try:
            return aead_decrypt(kek, wrapped[8:], _aad(dataset, version))
        except IntegrityError:
            raise IntegrityError(
                f"wrapped data key of dataset {dataset!r} (KEK version {version}) failed authentication"
            ) from None


def rewrap(keys: KeyEncryptionKeys, dataset: str, blobs: Iterable[bytes]) -> list[bytes]:
    """Re-wrap data keys under the current KEK (after a rotation) without touching the data.

    ``keys`` must wrap under the new version: a fresh :class:`ServiceKeys`, or call its
    :meth:`ServiceKeys.refresh` first. Returns the new blobs in order.
    """
    if isinstance(keys, ServiceKeys):
        keys.refresh()
    return [keys.wrap(dataset, keys.unwrap(dataset, blob)) for blob in blobs]


def _platform_code(*args: Any) -> None:
    """Stands for "the XtremeHub installation": measured when a key source names no code."""


def _client_and_query(source: str) -> tuple[KeyClient, dict[str, str]]:
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme not in KEY_SOURCE_SCHEMES or not parsed.hostname or parsed.port is None:
        raise ConfigError(f"key source {source!r}: expected keyservice://HOST:PORT?ca=... or keyservice+http://")
    query = dict(urllib.parse.parse_qsl(parsed.query))
    unknown = set(query) - {"ca", "cert", "key", "code"}
    if unknown:
        raise ConfigError(f"key source {source!r}: unknown parameter(s) {sorted(unknown)}")
    scheme = "http" if parsed.scheme == "keyservice+http" else "https"
    return KeyClient(f"{scheme}://{parsed.netloc}", query.get("ca"), query.get("cert"), query.get("key")), query


def key_client_from_url(source: str) -> KeyClient:
    """The HTTPS client of the key service a ``keyservice://`` key-source URL names.

    Example:
        >>> key_client_from_url("keyservice://keys.lab:8443?ca=/etc/xhub/tls/ca.pem").url
        'https://keys.lab:8443'
    """
    return _client_and_query(source)[0]


def service_keys_from_url(source: str) -> ServiceKeys:
    """:class:`ServiceKeys` from a key-source URL, opened in the worker itself.

    ``keyservice://HOST:PORT?ca=CA.pem[&cert=CLIENT.pem&key=CLIENT-KEY.pem][&code=MODULE:NAME]``
    (HTTPS), or ``keyservice+http://127.0.0.1:PORT?...`` (loopback without TLS). The job token is
    read from ``XHUB_JOB_TOKEN`` at each release; the URL holds no secret. ``code`` names the
    function to measure (importable in the worker); without it the measurement is that of
    this module (the XtremeHub installation, package versions and interpreter): a platform
    gate rather than a per-task one.

    Example:
        >>> keys = service_keys_from_url("keyservice://keys.lab:8443?ca=/etc/xhub/tls/ca.pem")
        >>> keys.source.url, keys.source.ca_file, keys.job_token
        ('https://keys.lab:8443', '/etc/xhub/tls/ca.pem', None)
    """
    client, query = _client_and_query(source)
    code: Callable[..., Any] = _platform_code
    if "code" in query:
        module, _, name = query["code"].partition(":")
        try:
            target: Any = importlib.import_module(module)
            for part in name.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"key source {source!r}: cannot load code {query['code']!r}: {exc}") from None
        code = target
    return ServiceKeys(client, None, SoftwareAttester(code))
