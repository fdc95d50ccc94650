"""The stream server vs NATS JetStream and Redis Streams on the same machine, in one run.

Measures, through the network on 127.0.0.1 (every server a separate process):
  * durable write throughput, 1 KiB and 100 KiB events, 1 / 4 / 16 writers, each writer
    keeping up to WINDOW events in flight (our writer's ``max_in_flight``, concurrent JetStream
    publishes awaiting their acks, Redis pipelines of WINDOW XADDs);
  * acknowledgement latency p50/p95/p99 at a video-like load: STREAMS streams, each 30 frames/s
    of ~500 KB (15 MB/s per stream), one writer per stream, paced;
  * end-to-end latency writer -> tail reader (ours), 1 KiB events at 200/s;
  * the floor of the video cells: the same paced frames appended by ``write`` + ``fdatasync``
    to one file per stream, and to one shared file a frame at a time; no server (the disk alone,
    in the same run).

Durability as configured (printed with the results):
  * ours: acknowledged after fsync of the write-ahead log (group commit);
  * Redis: AOF with ``appendfsync always`` (fsync before the reply, batched per event-loop turn);
  * NATS: JetStream file storage; ``sync_interval: always`` when the server knows it (2.10+),
    else the server's periodic flush (acknowledged once written to the OS, not fsynced).

NATS (``nats-server``) and Redis (``redis-server``) come from Debian packages, installed here
with ``apt-get install -y`` when missing; a peer that cannot be installed is skipped with the
reason (install them yourself with `apt-get install -y nats-server redis-server`). Usage:
    .venv/bin/python bench/streams_server.py            # ~4 s per cell
    .venv/bin/python bench/streams_server.py --quick    # ~1.5 s per cell
    .venv/bin/python bench/streams_server.py --quick --load        # + video with 2 busy neighbours
    .venv/bin/python bench/streams_server.py --quick --sizes 1024  # only the 1 KiB cells
    .venv/bin/python bench/streams_server.py --quick --video-only --load  # only the video cells

Every throughput cell also prints the CPU time per event of the client process (this one,
all threads) and of the server process: on a shared machine that is steadier than ev/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xtremehub.streams import ScalingPolicy, StreamManager

WINDOW = 32
SIZES = (1024, 100 * 1024)
WRITERS = (1, 4, 16)
STREAMS = 3
FRAME = 500_000
FPS = 30
SEGMENTS = 4


#: Process id of each system's server (for its CPU time), set when it starts.
SERVER_PIDS: dict[str, int] = {}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """CPU seconds of this (client) process and of a server process between start and ``stop``."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.client0, self.server0 = time.process_time(), process_cpu(server_pid)

    def stop(self) -> tuple[float, float]:
        """(client CPU s, server CPU s) since construction."""
        return time.process_time() - self.client0, process_cpu(self.pid) - self.server0


@contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """Run ``processes`` CPU-bound neighbours (busy Python loops, normal priority) meanwhile."""
    code = "import time\nx = 0\nwhile True:\n    x = (x * 31 + 7) % 1000003\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(processes)]
    try:
        time.sleep(0.5)  # let the scheduler see them
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds."""
    if len(values) < 2:
        return (float("nan"),) * 3
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49] * 1e3, q[94] * 1e3, q[98] * 1e3


def ensure_binary(binary: str, package: str) -> tuple[str | None, str]:
    """Path of ``binary``, installing the Debian ``package`` if needed; else (None, why)."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "apt-get is not available on this machine"
    print(f"installing {package} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", package], check=False, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True, env=env)
        result = subprocess.run(
            ["apt-get", "install", "-y", package], check=False, capture_output=True, text=True, env=env
        )
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if found is None:
        return None, f"apt-get install {package} failed: {result.stderr.strip()[-300:]}"
    return found, ""


def run_threads(n: int, body: Callable[[int], int]) -> float:
    """Run ``body(i)`` in ``n`` threads; events per second over all of them."""
    counts = [0] * n

    def run(i: int) -> None:
        counts[i] = body(i)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


class Paced:
    """Calls ``send(i)`` at ``FPS`` per stream in one thread per stream; collects latencies."""

    @staticmethod
    def run(streams: int, seconds: float, send: Callable[[int, int], Callable[[], None]]) -> list[float]:
        """``send(stream, frame)`` starts a write and returns a function waiting for its ack."""
        latencies: list[float] = []
        lock = threading.Lock()

        def body(s: int) -> None:
            mine: list[float] = []
            start = time.perf_counter()
            n = int(seconds * FPS)
            for i in range(n):
                due = start + i / FPS
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                send(s, i)()
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=body, args=(s,)) for s in range(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return latencies


# -- ours -----------------------------------------------------------------------------------
@contextmanager
def ours_server(tmp: Path) -> Iterator[str]:
    cmd = [sys.executable, "-m", "xtremehub.streams.server", "--data", str(tmp / "data")]
    cmd += ["--lts", str(tmp / "lts"), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        SERVER_PIDS["ours"] = proc.pid
        yield "tcp://" + line.rsplit("tcp://", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(60)


class Ours:
    name = "xtremehub"
    durability = "fsync of the WAL before the ack (group commit)"

    def __init__(self, url: str) -> None:
        self.url = url
        self.n = 0
        with StreamManager(url) as m:
            m.create_scope("bench")

    def _stream(self, segments: int) -> str:
        self.n += 1
        with StreamManager(self.url) as m:
            m.create_stream("bench", f"s{self.n}", scaling_policy=ScalingPolicy.fixed(segments))
        return f"s{self.n}"

    def throughput(self, size: int, writers: int, seconds: float) -> float:
        stream = self._stream(SEGMENTS)
        payload = b"x" * size

        def body(i: int) -> int:
            with StreamManager(self.url) as m, m.create_writer("bench", stream, max_in_flight=WINDOW) as w:
                count, stop = 0, time.perf_counter() + seconds
                while time.perf_counter() < stop:
                    w.write_event(payload)
                    count += 1
                w.flush()
                return count

        return run_threads(writers, body)

    def video(self, seconds: float) -> list[float]:
        streams = [self._stream(1) for _ in range(STREAMS)]
        managers = [StreamManager(self.url) for _ in streams]
        writers = [m.create_writer("bench", s) for m, s in zip(managers, streams, strict=True)]
        frame = os.urandom(FRAME)
        try:
            return Paced.run(STREAMS, seconds, lambda s, i: writers[s].write_event(frame).result)
        finally:
            for w, m in zip(writers, managers, strict=True):
                w.close()
                m.close()

    def end_to_end(self, seconds: float, rate: int = 200) -> list[float]:
        stream = self._stream(1)
        latencies: list[float] = []
        with StreamManager(self.url) as m:
            group = m.create_reader_group(f"e2e{self.n}", "bench", [stream], start="tail")
            reader = group.create_reader("r", sync_interval=1.0)
            done = threading.Event()

            def read() -> None:
                while not done.is_set():
                    event = reader.read_next(timeout=0.2)
                    if event is not None:
                        latencies.append(time.perf_counter() - struct.unpack_from(">d", event.data)[0])

            thread = threading.Thread(target=read)
            thread.start()
            time.sleep(0.5)
            with m.create_writer("bench", stream) as w:
                start = time.perf_counter()
                for i in range(int(seconds * rate)):
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    w.write_event(struct.pack(">d", time.perf_counter()) + b"x" * 1016)
            time.sleep(1.0)
            done.set()
            thread.join()
            reader.reader_offline()
        return latencies


# -- Redis Streams ----------------------------------------------------------------------------
@contextmanager
def redis_server(tmp: Path) -> Iterator[tuple[Any, str] | str]:
    binary, why = ensure_binary("redis-server", "redis-server")
    if binary is None:
        yield why
        return
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", ""]
    cmd += ["--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--protected-mode", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port, proc):
            yield "redis-server did not start"
            return
        SERVER_PIDS["redis"] = proc.pid
        yield Redis(port), ""
    finally:
        proc.terminate()
        proc.wait(30)


class Redis:
    name = "Redis Streams"
    durability = "AOF, appendfsync always"

    def __init__(self, port: int) -> None:
        import redis

        self.client = lambda: redis.Redis(host="127.0.0.1", port=port)
        self.n = 0

    def throughput(self, size: int, writers: int, seconds: float) -> float:
        self.n += 1
        key, payload = f"t{self.n}", b"x" * size

        def body(i: int) -> int:
            r = self.client()
            count, stop = 0, time.perf_counter() + seconds
            while time.perf_counter() < stop:
                pipe = r.pipeline(transaction=False)
                for _ in range(WINDOW):
                    pipe.xadd(key, {"d": payload})
                pipe.execute()
                count += WINDOW
            r.close()
            return count

        result = run_threads(writers, body)
        self.client().delete(key)
        return result

    def video(self, seconds: float) -> list[float]:
        clients = [self.client() for _ in range(STREAMS)]
        frame = os.urandom(FRAME)

        def send(s: int, i: int) -> Callable[[], None]:
            clients[s].xadd(f"video{s}", {"d": frame}, maxlen=300, approximate=True)
            return lambda: None

        return Paced.run(STREAMS, seconds, send)


# -- NATS JetStream ---------------------------------------------------------------------------
@contextmanager
def nats_server(tmp: Path) -> Iterator[tuple[Any, str] | str]:
    binary, why = ensure_binary("nats-server", "nats-server")
    if binary is None:
        yield why
        return
    port = free_port()
    durability = "JetStream file storage, sync_interval always"
    proc: subprocess.Popen[bytes] | None = None
    for sync in ("sync_interval: always", ""):
        conf = tmp / "nats.conf"
        store = tmp / "js"
        conf.write_text(
            f'listen: "127.0.0.1:{port}"\nmax_payload: 8MB\n'
            f'jetstream {{\n  store_dir: "{store}"\n  max_file_store: 20GB\n  {sync}\n}}\n'
        )
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_port(port, proc):
            break
        proc.wait(10)
        proc = None
        durability = "JetStream file storage, acked once written to the OS, fsync periodic (nats-server < 2.10)"
    try:
        if proc is None:
            yield "nats-server did not start"
            return
        SERVER_PIDS["nats"] = proc.pid
        yield Nats(port, durability), ""
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)


class Nats:
    name = "NATS JetStream"

    def __init__(self, port: int, durability: str) -> None:
        self.url = f"nats://127.0.0.1:{port}"
        self.durability = durability
        self.n = 0

    async def _connect(self) -> Any:
        import nats

        return await nats.connect(self.url, max_reconnect_attempts=0)

    async def _make_stream(self, name: str) -> None:
        nc = await self._connect()
        await nc.jetstream().add_stream(name=name, subjects=[f"{name}.>"], storage="file")
        await nc.close()

    def throughput(self, size: int, writers: int, seconds: float) -> float:
        self.n += 1
        name, payload = f"T{self.n}", b"x" * size

        async def writer() -> int:
            nc = await self._connect()
            js = nc.jetstream()
            count, stop = 0, time.perf_counter() + seconds
            while time.perf_counter() < stop:
                await asyncio.gather(*(js.publish(f"{name}.x", payload) for _ in range(WINDOW)))
                count += WINDOW
            await nc.close()
            return count

        async def main() -> float:
            await self._make_stream(name)
            start = time.perf_counter()
            counts = await asyncio.gather(*(writer() for _ in range(writers)))
            rate = sum(counts) / (time.perf_counter() - start)
            nc = await self._connect()
            await nc.jetstream().delete_stream(name)
            await nc.close()
            return rate

        return asyncio.run(main())

    def video(self, seconds: float) -> list[float]:
        frame = os.urandom(FRAME)

        async def stream(s: int) -> list[float]:
            nc = await self._connect()
            js = nc.jetstream()
            out, start = [], time.perf_counter()
            for i in range(int(seconds * FPS)):
                delay = start + i / FPS - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = time.perf_counter()
                await js.publish(f"VIDEO.{s}", frame)
                out.append(time.perf_counter() - t0)
            await nc.close()
            return out

        async def main() -> list[float]:
            await self._make_stream("VIDEO")
            parts = await asyncio.gather(*(stream(s) for s in range(STREAMS)))
            return [x for p in parts for x in p]

        return asyncio.run(main())


# -- the disk alone ---------------------------------------------------------------------------
@contextmanager
def disk_floor(tmp: Path) -> Iterator[tuple[Any, str]]:
    yield DiskFloor(tmp, shared=False), ""


@contextmanager
def log_floor(tmp: Path) -> Iterator[tuple[Any, str]]:
    yield DiskFloor(tmp, shared=True), ""


class DiskFloor:
    """The video cells without a server: frames appended with ``write`` + ``fdatasync``, to one
    file per stream (fsyncs in parallel), or to one shared file, one frame at a time (a log
    without group commit, as ours and Redis's AOF keep one): the floor of any store
    acknowledging after fsync on this disk."""

    def __init__(self, tmp: Path, *, shared: bool) -> None:
        self.tmp, self.shared = tmp, shared
        where = "one shared file, a lock around each" if shared else "one file per stream"
        self.name = f"disk alone, {'one log' if shared else 'file per stream'}"
        self.durability = f"write + fdatasync of every frame, {where}; no server, no network"
        self.n = 0

    def video(self, seconds: float) -> list[float]:
        self.n += 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        fds = [os.open(self.tmp / f"v{self.n}-{0 if self.shared else s}", flags, 0o600) for s in range(STREAMS)]
        frame = os.urandom(FRAME)
        lock = threading.Lock()

        def send(s: int, i: int) -> Callable[[], None]:
            if self.shared:
                with lock:
                    os.write(fds[s], frame)
                    os.fdatasync(fds[s])
            else:
                os.write(fds[s], frame)
                os.fdatasync(fds[s])
            return lambda: None

        try:
            return Paced.run(STREAMS, seconds, send)
        finally:
            for fd in fds:
                os.close(fd)


# -- the run ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter cells (noisier)")
    parser.add_argument("--no-peers", action="store_true", help="only our server")
    parser.add_argument(
        "--load",
        type=int,
        nargs="?",
        const=os.cpu_count() or 2,
        default=0,
        metavar="N",
        help="also measure the video latency with N CPU-bound neighbour processes running "
        "(default N: one per core), the same load for every system",
    )
    parser.add_argument(
        "--sizes", default=",".join(str(s) for s in SIZES), help="event sizes in bytes, comma-separated"
    )
    parser.add_argument("--video-only", action="store_true", help="only the video cells (no throughput cells)")
    args = parser.parse_args()
    cell = 1.5 if args.quick else 4.0
    video_seconds = 4.0 if args.quick else 10.0
    sizes = () if args.video_only else tuple(int(x) for x in args.sizes.split(","))
    base = Path(tempfile.mkdtemp(prefix="server-bench-", dir="/tmp"))
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start; cells of {cell:.1f} s, window {WINDOW}")
    results: dict[str, dict[str, Any]] = {}
    peers: list[tuple[str, Callable[[Path], Any]]] = [("ours", lambda p: None)]
    if not args.no_peers:
        peers += [("nats", nats_server), ("redis", redis_server)]
    peers += [("disk", disk_floor), ("log", log_floor)]
    try:
        for key, opener in peers:
            tmp = base / key
            tmp.mkdir()
            ctx = ours_server(tmp) if key == "ours" else opener(tmp)
            with ctx as handle:
                if key == "ours":
                    system: Any = Ours(handle)
                elif isinstance(handle, str):
                    print(f"{key}: skipped: {handle}")
                    continue
                else:
                    system = handle[0]
                print(f"-- {system.name} ({system.durability})", flush=True)
                row = measure(key, system, () if key in ("disk", "log") else sizes, cell, video_seconds, args.load)
                results[key] = row
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(results, sizes)
    print(f"load average at end: {os.getloadavg()[0]:.1f} (2 cores shared with other jobs: figures are noisy)")


def measure(
    key: str, system: Any, sizes: tuple[int, ...], cell: float, video_seconds: float, load: int
) -> dict[Any, Any]:
    """One system's cells: throughput (with CPU per event), video ack latency (idle, and under load)."""
    row: dict[Any, Any] = {"name": system.name, "durability": system.durability}
    for size in sizes:
        for writers in WRITERS:
            cpu = Cpu(SERVER_PIDS[key])
            rate = system.throughput(size, writers, cell)
            client, server = cpu.stop()
            events = max(rate * cell, 1.0)
            row[(size, writers)] = rate
            row[("cpu", size, writers)] = (client / events * 1e6, server / events * 1e6)
            print(
                f"   {size // 1024:>3} KiB x {writers:>2} writers: {rate:>9.0f} ev/s {rate * size / 2**20:7.1f} MiB/s"
                f"   CPU per event: client {client / events * 1e6:6.1f} us, server {server / events * 1e6:6.1f} us",
                flush=True,
            )
    row["video"] = percentiles(system.video(video_seconds))
    print(
        "   video {} x {} fps x {} KB: ack p50/p95/p99 = {:.2f} / {:.2f} / {:.2f} ms".format(
            STREAMS, FPS, FRAME // 1000, *row["video"]
        ),
        flush=True,
    )
    if load:
        with cpu_load(load):
            row["video_load"] = percentiles(system.video(video_seconds))
            now = os.getloadavg()[0]
        print(
            "   video, {} CPU-bound neighbours (load {:.1f}): p50/p95/p99 = {:.2f} / {:.2f} / {:.2f} ms".format(
                load, now, *row["video_load"]
            ),
            flush=True,
        )
    if key == "ours":
        row["e2e"] = percentiles(system.end_to_end(video_seconds / 2))
        print(
            "   end-to-end writer -> tail reader p50/p95/p99 = {:.2f} / {:.2f} / {:.2f} ms".format(*row["e2e"]),
            flush=True,
        )
    return row


def report(results: dict[str, dict[str, Any]], sizes: tuple[int, ...]) -> None:
    ours = results["ours"]
    others = [k for k in ("nats", "redis") if k in results]
    head = (
        "| events | writers | ours ev/s | " + " | ".join(f"{results[k]['name']} ev/s | ours/{k}" for k in others) + " |"
    )
    print("\n" + head)
    print("|" + "---|" * (3 + 2 * len(others)))
    for size in sizes:
        for writers in WRITERS:
            cells = [f"{size // 1024} KiB", str(writers), f"{ours[(size, writers)]:.0f}"]
            for k in others:
                theirs = results[k][(size, writers)]
                cells += [f"{theirs:.0f}", f"{ours[(size, writers)] / theirs:.2f}x"]
            print("| " + " | ".join(cells) + " |")
    print("\nCPU per event (us), client process + server process:")
    print(
        "| events | writers | " + " | ".join(f"{results[k]['name']} client + server" for k in ["ours", *others]) + " |"
    )
    print("|" + "---|" * (2 + 1 + len(others)))
    for size in sizes:
        for writers in WRITERS:
            cells = [f"{size // 1024} KiB", str(writers)]
            for k in ["ours", *others]:
                client, server = results[k][("cpu", size, writers)]
                cells.append(f"{client:.1f} + {server:.1f} = {client + server:.1f}")
            print("| " + " | ".join(cells) + " |")
    for label, field in (("video ack latency (ms)", "video"), ("video ack latency under load (ms)", "video_load")):
        if field not in ours:
            continue
        print(f"\n| {label} | p50 | p95 | p99 | our p95 / theirs | our p99 / theirs |")
        print("|---|---:|---:|---:|---:|---:|")
        for k in ["ours", *others, *(k for k in ("disk", "log") if k in results)]:
            p50, p95, p99 = results[k][field]
            ratio = "| |" if k == "ours" else f"| {ours[field][1] / p95:.2f}x | {ours[field][2] / p99:.2f}x |"
            print(f"| {results[k]['name']} | {p50:.2f} | {p95:.2f} | {p99:.2f} {ratio}")
    print("\nend-to-end writer -> tail reader (ours) p50/p95/p99 ms: {:.2f} / {:.2f} / {:.2f}".format(*ours["e2e"]))
    print(f"target: video ack p99 <= 15 ms through the server: {'met' if ours['video'][2] <= 15 else 'NOT met'}")
    if "video_load" in ours and "redis" in results:
        ratio = ours["video_load"][1] / results["redis"]["video_load"][1]
        print(
            f"target: under load, our video p95 <= 1.5x Redis's: {ratio:.2f}x, {'met' if ratio <= 1.5 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
