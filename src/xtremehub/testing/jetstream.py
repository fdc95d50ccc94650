"""A real NATS JetStream cluster on loopback ports, for tests and benchmarks.

Runs Debian's ``nats-server`` (``apt-get install -y nats-server``) as ``nodes`` processes with
JetStream on, clustered by routes, each with its own store directory under ``base``. Nodes can
be killed (``SIGKILL``) and started again to inject faults::

    with JetStreamCluster(tmp_path, nodes=3) as cluster:
        manager = StreamManager(cluster.url)   # nats://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3
        cluster.kill(cluster.leader("XH_SEGMENTS"))
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from xtremehub.errors import MissingDependency, ServerUnavailable

__all__ = ["JetStreamCluster", "free_port", "nats_server_binary"]

log = logging.getLogger(__name__)

#: The largest message the test servers accept: a full 8 MiB event plus headers.
MAX_PAYLOAD = 16 * 1024 * 1024


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str:
    """Path of ``nats-server``; ``MissingDependency`` with the install command when absent."""
    found = shutil.which("nats-server")
    if found is None:
        raise MissingDependency("nats-server is not installed: apt-get install -y nats-server")
    return found


class JetStreamCluster:
    """``nodes`` JetStream servers (one is a plain single server) in ``base``; ``url`` lists them all."""

    def __init__(self, base: str | Path, nodes: int = 3, *, name: str = "xh") -> None:
        self.binary = nats_server_binary()
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.names = [f"n{i + 1}" for i in range(nodes)]
        self.ports = {n: free_port() for n in self.names}
        self.routes = {n: free_port() for n in self.names}
        self.monitor = {n: free_port() for n in self.names}
        self.cluster_name = name
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for node in self.names:
                self.start(node, wait=False)
            self.wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """``nats://`` URL naming every node."""
        return "nats://" + ",".join(f"127.0.0.1:{self.ports[n]}" for n in self.names)

    def node_url(self, node: str) -> str:
        """``nats://`` URL of one node."""
        return f"nats://127.0.0.1:{self.ports[node]}"

    def _config(self, node: str) -> Path:
        store = self.base / node
        store.mkdir(parents=True, exist_ok=True)
        lines = [
            f"server_name: {node}",
            f"listen: 127.0.0.1:{self.ports[node]}",
            f"http: 127.0.0.1:{self.monitor[node]}",
            f"max_payload: {MAX_PAYLOAD}",
            f'jetstream {{ store_dir: "{store}", max_memory_store: 268435456, max_file_store: 8589934592 }}',
        ]
        if len(self.names) > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{self.routes[n]}" for n in self.names if n != node)
            lines.append(
                f"cluster {{ name: {self.cluster_name}, listen: 127.0.0.1:{self.routes[node]}, routes: [{routes}] }}"
            )
        path = self.base / f"{node}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, node: str, *, wait: bool = True) -> None:
        """Start (or restart after :meth:`kill`) one node on its ports and store directory."""
        log_file = (self.base / f"{node}.log").open("ab")
        self._procs[node] = subprocess.Popen(
            [self.binary, "-c", str(self._config(node))], stdout=log_file, stderr=subprocess.STDOUT
        )
        log_file.close()
        if wait:
            self.wait_ready([node])

    def kill(self, node: str) -> None:
        """``SIGKILL`` one node (no clean shutdown, as a crash)."""
        proc = self._procs.pop(node)
        proc.kill()
        proc.wait(10)

    def alive(self) -> list[str]:
        """The nodes running now."""
        return [n for n, p in self._procs.items() if p.poll() is None]

    def wait_ready(self, nodes: list[str] | None = None, timeout: float = 30.0) -> None:
        """Wait until every node answers its JetStream health check."""
        deadline = time.monotonic() + timeout
        for node in nodes or self.names:
            while True:
                proc = self._procs.get(node)
                if proc is not None and proc.poll() is not None:
                    text = (self.base / f"{node}.log").read_text(errors="replace")[-2000:]
                    raise ServerUnavailable(f"nats-server {node} exited with {proc.returncode}: {text}")
                try:
                    url = f"http://127.0.0.1:{self.monitor[node]}/healthz"
                    with urllib.request.urlopen(url, timeout=1.0) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"nats-server {node} not ready after {timeout:.0f}s")
                time.sleep(0.05)

    def leader(self, stream: str) -> str:
        """The node leading ``stream``'s Raft group, from the monitoring endpoint of a live node."""
        import json

        for node in self.alive():
            url = f"http://127.0.0.1:{self.monitor[node]}/jsz?streams=true"
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    info = json.load(response)
            except OSError:
                continue
            for account in info.get("account_details", []):
                for detail in account.get("stream_detail", []):
                    if detail["name"] == stream and detail.get("cluster", {}).get("leader"):
                        return str(detail["cluster"]["leader"])
        raise ServerUnavailable(f"no leader known for stream {stream}")

    def close(self) -> None:
        """Stop every node."""
        for node in list(self._procs):
            proc = self._procs.pop(node)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> JetStreamCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
