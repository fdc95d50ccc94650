"""A real PostgreSQL server for tests and benchmarks, in a temporary directory on a free loopback port.

The server binaries come from Debian's ``postgresql`` package (``make test`` installs it:
``SYSTEM_DEPS`` in the Makefile), found under ``/usr/lib/postgresql/<version>/bin`` or on
``PATH`` (``$XHUB_PG_BINDIR`` overrides). PostgreSQL refuses to run as root: as root, the
cluster is owned by and runs as the ``postgres`` user (or ``nobody``). Authentication is
``trust`` on 127.0.0.1 only, durability is off (``fsync=off``): a test server, never a real one.

The server can be stopped and started again on the same port and data (:meth:`stop`,
:meth:`start_again`) to test what clients do while the database is gone.

Use (it starts a server, so a literal block rather than a doctest)::

    with PostgresServer.start() as pg:
        url = pg.create_database()        # postgresql://xhub@127.0.0.1:<port>/<db>
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from xtremehub.errors import MissingDependency
from xtremehub.testing.seaweedfs import free_port

__all__ = ["HOW_TO_INSTALL", "PostgresServer", "postgres_bindir"]

log = logging.getLogger(__name__)

HOW_TO_INSTALL = (
    "PostgreSQL server binaries (initdb, postgres) are missing: install Debian's package with "
    "`sudo apt-get install -y postgresql` (make test does it when run as root), or set XHUB_PG_BINDIR "
    "to the directory holding initdb and postgres"
)
USER = "xhub"


def postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres`` (newest version first), or MissingDependency."""
    candidates: list[Path] = []
    if os.environ.get("XHUB_PG_BINDIR"):
        candidates.append(Path(os.environ["XHUB_PG_BINDIR"]))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions), key=lambda p: int(p.parent.name or 0), reverse=True)
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory
    raise MissingDependency(HOW_TO_INSTALL)


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise MissingDependency("running as root, PostgreSQL needs an unprivileged user ('postgres' or 'nobody')")


@dataclass
class PostgresServer:
    """One ``postgres`` process we started, with its data in ``root`` (removed by :meth:`close`)."""

    root: Path
    port: int
    bindir: Path
    user: str | None
    proc: subprocess.Popen[bytes] | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """The ``postgresql://`` URL of ``database`` on this server."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, *, timeout: float = 60.0) -> PostgresServer:
        """``initdb`` a new cluster in a temporary directory and start it on a free port."""
        bindir = postgres_bindir()
        user = _run_as()
        root = Path(tempfile.mkdtemp(prefix="xhub-pg-"))
        server = cls(root=root, port=free_port(), bindir=bindir, user=user)
        try:
            (root / "sock").mkdir()
            if user is not None:
                entry = pwd.getpwnam(user)
                for path in (root, root / "sock"):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            initdb = [str(bindir / "initdb"), "-D", str(server.data), "-U", USER, "-A", "trust", "-E", "UTF8"]
            result = subprocess.run(
                [*initdb, "--locale=C", "--no-sync"], user=user, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")
            server.start_again(timeout=timeout)
        except BaseException:
            server.close()
            raise
        return server

    def start_again(self, *, timeout: float = 60.0) -> None:
        """Start the server (again) on the same port and data directory and wait until it accepts."""
        if self.proc is not None and self.proc.poll() is None:
            return
        args = [
            str(self.bindir / "postgres"),
            "-D", str(self.data),
            "-p", str(self.port),
            "-h", "127.0.0.1",
            "-k", str(self.root / "sock"),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip
        log_fh = open(self.log_file, "ab")  # noqa: SIM115 - the server process owns it
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        self.proc = subprocess.Popen(args, user=self.user, stdout=log_fh, stderr=subprocess.STDOUT)
        log_fh.close()
        self._wait_ready(timeout)
        log.info("PostgreSQL %s on 127.0.0.1:%d (pid %d)", self.bindir.parent.name, self.port, self.proc.pid)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{tail}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the server (fast shutdown: open connections are cut), keeping its data."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A new database (empty, or a copy of the database ``template``); its URL."""
        import psycopg

        name = name or f"xhub_{secrets.token_hex(6)}"
        for ident in (name, *([template] if template else [])):
            if not ident.replace("_", "").isalnum():
                raise ValueError(f"database name {ident!r}: letters, digits and _ only")
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}'.encode())
        self.databases.append(name)
        return self.url(name)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __reduce__(self) -> Any:  # pragma: no cover - a server does not travel
        raise TypeError("a PostgresServer cannot be pickled")
