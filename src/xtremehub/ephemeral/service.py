"""The node service: one per node, shared by every process there (``xhub eph serve``).

It owns a :class:`~xtremehub.ephemeral.tiers.TieredStore` and answers the storage
handlers of :mod:`xtremehub.ephemeral.rpc` over TCP. Processes on the same node
write into its memory tier directly and read its files by mapping them; others
send the bytes over the connection. It announces itself in a *service file*
(``<home>/eph/service.json``: address, process id, node token and the service's
random *authkey*, mode 0600 in a 0700 directory) that clients find through their
:class:`~xtremehub.config.Settings`' ``home``, which workers on every backend
receive from their executor. Every connection authenticates with that key
(:mod:`xtremehub.ephemeral.rpc`): the service runs code its clients send (shared
state methods, storage actions), so only its own user may talk to it. A client on
another node names the service with ``XHUB_EPH_ADDRESS`` and its key with
``XHUB_EPH_AUTHKEY`` (hex).

Further node features register more handlers on :attr:`NodeService.rpc`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub.config import Settings
    >>> home = Path(tempfile.mkdtemp())
    >>> svc = NodeService(TierConfig(memory_limit="16MiB"), Settings(home=home)).start()
    >>> read_service_file(Settings(home=home))["address"] == svc.address
    True
    >>> svc.stop()
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from xtremehub.config import Settings, default_settings
from xtremehub.ephemeral.action_host import ActionHost
from xtremehub.ephemeral.config import TierConfig
from xtremehub.ephemeral.rpc import FileRegion, Reply, Request, RpcServer, remember_authkey
from xtremehub.ephemeral.tiers import TieredStore, eph_url
from xtremehub.errors import InvalidRange, ObjectNotFound, StorageError, StorageUnavailable

__all__ = ["NodeService", "ServiceProcess", "read_service_file", "service_file"]

log = logging.getLogger(__name__)

_SMALL = 1 << 20  # reads below this are sent from a buffer, larger ones with sendfile


def service_file(settings: Settings) -> Path:
    """Where the node service of ``settings.home`` announces itself."""
    return settings.home / "eph" / "service.json"


def read_service_file(settings: Settings) -> dict[str, Any]:
    """The announcement of the running node service, or :class:`StorageUnavailable`
    (this process's clients of its address then authenticate with its authkey)."""
    path = service_file(settings)
    try:
        info = dict(json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        raise StorageUnavailable(
            "xhub-eph://", f"no ephemeral node service announced at {path}: start one with `xhub eph serve`"
        ) from None
    if isinstance(info.get("authkey"), str) and "address" in info:
        remember_authkey(str(info["address"]), bytes.fromhex(info["authkey"]))
    return info


class NodeService:
    """The tiers of this node behind an RPC server."""

    def __init__(
        self, config: TierConfig, settings: Settings | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.settings = settings or default_settings()
        self.tiers = TieredStore(config, self.settings)
        self.rpc = RpcServer(host, port)
        from xtremehub.state.server import register as register_state  # shared objects (xtremehub.state)

        self.state = register_state(self.rpc)
        self._register()
        self.actions = ActionHost(self.tiers, self.rpc, workers=config.action_workers)  # storage actions

    @property
    def address(self) -> str:
        return self.rpc.address

    def start(self, *, announce: bool = True) -> NodeService:
        """Serve in background threads and (by default) write the service file."""
        self.rpc.start()
        if announce:
            self._announce()
        log.info("ephemeral node service at %s (memory %s)", self.address, self.tiers.memory_dir)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until SIGTERM/SIGINT, then stop cleanly."""
        self._announce()

        def on_signal(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_signal)
        try:
            self.rpc.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _announce(self) -> None:
        path = service_file(self.settings)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)  # the service file holds the authkey: this user's only
        info = {
            "address": self.address,
            "pid": os.getpid(),
            "node_token": self.tiers.node_id,
            "authkey": self.rpc.authkey.hex(),
        }
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(json.dumps(info))
        os.replace(tmp, path)

    def stop(self) -> None:
        """Stop serving (relocating first if configured) and withdraw the service file."""
        path = service_file(self.settings)
        try:
            if json.loads(path.read_text()).get("node_token") == self.tiers.node_id:
                path.unlink()
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        from xtremehub.ephemeral.client import reset_clients

        reset_clients(self.address)  # this process's own clients of this service
        from xtremehub.state.client import reset_clients as reset_state_clients

        reset_state_clients(self.address)
        try:
            self.rpc.stop()
        finally:
            self.actions.close()
            self.tiers.close()

    def __enter__(self) -> NodeService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers -------------------------------------------------------------------------------
    def _register(self) -> None:
        t = self.tiers
        h = self.rpc.handler

        @h("hello")
        def hello(req: Request) -> Reply:
            return Reply(
                {
                    "node_token": t.node_id,
                    "memory_dir": str(t.memory_dir),
                    "tmp_dir": str(t.tmp_dir),
                    "pid": os.getpid(),
                }
            )

        @h("commit")
        def commit(req: Request) -> Reply:
            q = req.header
            return Reply(t.commit(q["bucket"], q["key"], Path(q["tmp"]), ttl=q.get("ttl"), pin=q.get("pin", False)))

        @h("put")
        def put(req: Request) -> Reply:
            q = req.header
            tmp = t.new_tmp()
            try:
                with open(tmp, "wb") as fh:
                    fh.write(req.payload)
                    while q.get("stream"):
                        frame, data = req.conn.recv()  # a lost connection leaves no object
                        if frame.get("end"):
                            break
                        fh.write(data)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return Reply(t.commit(q["bucket"], q["key"], tmp, ttl=q.get("ttl"), pin=q.get("pin", False)))

        @h("locate")
        def locate(req: Request) -> Reply:
            return Reply(t.locate(req.header["bucket"], req.header["key"]))

        @h("read")
        def read(req: Request) -> Reply:
            q = req.header
            bucket, key, start, end = q["bucket"], q["key"], int(q["start"]), int(q["end"])
            for _ in range(5):  # the file may move between locate and open (demotion)
                path = t.locate(bucket, key)["path"]
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                size = os.fstat(fd).st_size
                if start > size:
                    os.close(fd)
                    raise InvalidRange(eph_url(bucket, key), f"bytes [{start}, {end}) start past the end (size {size})")
                count = max(0, min(end, size) - start)
                if count < _SMALL:
                    try:
                        return Reply({"size": size}, os.pread(fd, count, start))
                    finally:
                        os.close(fd)
                return Reply({"size": size}, FileRegion(fd, start, count))
            raise StorageError(eph_url(bucket, key), "object kept moving between tiers; retry")

        @h("head")
        def head(req: Request) -> Reply:
            return Reply(t.head(req.header["bucket"], req.header["key"]))

        @h("list")
        def list_(req: Request) -> Reply:
            return Reply({"objects": t.list(req.header["bucket"], req.header["prefix"])})

        @h("delete")
        def delete(req: Request) -> Reply:
            t.delete(req.header["bucket"], req.header["key"])
            return Reply()

        @h("copy")
        def copy(req: Request) -> Reply:
            q = req.header
            src = t.locate(q["bucket"], q["src"])["path"]
            tmp = t.new_tmp()
            try:
                os.link(src, tmp)  # versions are immutable: a hard link is a copy
            except FileNotFoundError:
                raise ObjectNotFound(eph_url(q["bucket"], q["src"]), "moved while copying; retry") from None
            except OSError:
                shutil.copyfile(src, tmp)
            return Reply(t.commit(q["bucket"], q["dst"], tmp))

        @h("pin")
        def pin(req: Request) -> Reply:
            t.pin(req.header["bucket"], req.header["key"], req.header.get("pinned", True))
            return Reply()

        @h("relocate")
        def relocate(req: Request) -> Reply:
            q = req.header
            return Reply({"urls": t.relocate(q["bucket"], q["prefix"], to=q.get("to"), wait=q.get("wait", True))})

        @h("stats")
        def stats(req: Request) -> Reply:
            return Reply({"stats": t.stats()})


class ServiceProcess:
    """``xhub eph serve`` in a child process, announced under ``settings.home`` (tests, executors).

    Example (starts a process; the tests in ``tests/ephemeral`` run it)::

        with ServiceProcess.start(TierConfig(), settings) as proc:
            print(proc.address)  # tcp://127.0.0.1:PORT, also in <home>/eph/service.json
    """

    def __init__(self, process: subprocess.Popen[bytes], address: str, settings: Settings) -> None:
        self.process = process
        self.address = address
        self.settings = settings

    @classmethod
    def start(
        cls, config: TierConfig, settings: Settings, *, timeout: float = 30.0, env: dict[str, str] | None = None
    ) -> ServiceProcess:
        args = [sys.executable, "-c", "from xtremehub.cli import main; main()", "--home", str(settings.home)]
        args += ["eph", "serve", *config_args(config)]
        path = service_file(settings)
        path.unlink(missing_ok=True)
        process = subprocess.Popen(args, env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StorageUnavailable("xhub-eph://", f"xhub eph serve exited with code {process.returncode}")
            try:
                info = json.loads(path.read_text())
                if info.get("pid") == process.pid:
                    remember_authkey(str(info["address"]), bytes.fromhex(info["authkey"]))
                    return cls(process, str(info["address"]), settings)
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.05)
        process.kill()
        process.wait()
        raise StorageUnavailable("xhub-eph://", f"xhub eph serve did not announce itself within {timeout:.0f}s")

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (clean: relocate on close) or SIGKILL, and wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def config_args(config: TierConfig) -> list[str]:
    """``xhub eph serve`` options that rebuild ``config``."""
    args = ["--memory", str(config.memory_limit), "--disk", str(config.disk_limit)]
    if config.memory_dir is not None:
        args += ["--memory-dir", str(config.memory_dir)]
    if config.disk_dir is not None:
        args += ["--disk-dir", str(config.disk_dir)]
    if config.persist_url is not None:
        args += ["--persist", config.persist_url]
    if config.write_back:
        args.append("--write-back")
    if config.relocate_on_close:
        args.append("--relocate-on-close")
    if config.default_ttl is not None:
        args += ["--ttl", str(config.default_ttl)]
    args += ["--admit-timeout", str(config.admit_timeout), "--action-workers", str(config.action_workers)]
    return args
