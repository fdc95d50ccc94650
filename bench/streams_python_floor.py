"""The ceiling of a minimal Python asyncio server doing the small-event work of the stream server.

Issue 18 target 6 compares our stream server with Redis Streams (``appendfsync always``) on
1 KiB events, 1 / 4 / 16 writers, each keeping WINDOW events in flight. This measures what a
bare Python server costs for the same durable work, with nothing of ours in it: no writer
API, no segments, no event numbers, no futures, no wire codec. Each writer thread sends
pipelines of WINDOW events in one write (as the Redis bench's ``pipeline.execute()``); the
server (a separate process, one asyncio event loop, ``asyncio.Protocol``) cuts the events out of
the bytes, appends every event received in one loop turn to one file with ``os.writev`` and
``os.fdatasync`` (one fsync per turn, before any reply: Redis's ``appendfsync always``), then
answers every event with its offset (8 bytes). ``--commit thread`` does the write and fsync on
one commit thread instead (the loop keeps reading meanwhile, a group per fsync, answers handed
back with ``call_soon_threadsafe``), as our server does.

Prints events per second and CPU per event (client process, server process) per cell, like
``bench/streams_server.py``. Usage::

    .venv/bin/python bench/streams_python_floor.py --quick [--commit loop|thread]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WINDOW = 32
WRITERS = (1, 4, 16)
SIZE = 1024
_LEN = struct.Struct(">I")
_ACK = struct.Struct(">Q")


# -- server (run as a subprocess: ``streams_python_floor.py --serve FILE PORT MODE``) -------------
class _Conn(asyncio.Protocol):
    def __init__(self, log: _Log) -> None:
        self.log = log
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, events = 0, []
        while len(buf) - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < size:
                break
            events.append(buf[pos + 4 : pos + 4 + size])
            pos += 4 + size
        self.buf = buf[pos:]
        if events:
            self.log.add(self, events)


class _Log:
    """Events received in one loop turn: written and fsynced together, then answered."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, threaded: bool) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.loop, self.threaded = loop, threaded
        self.offset = 0
        self.queued: list[tuple[_Conn, list[bytes]]] = []
        self.scheduled = False
        self.cond = threading.Condition()
        self.pending: list[tuple[_Conn, list[bytes]]] = []
        if threaded:
            threading.Thread(target=self._commit_loop, daemon=True).start()

    def add(self, conn: _Conn, events: list[bytes]) -> None:
        if self.threaded:
            with self.cond:
                self.pending.append((conn, events))
                self.cond.notify()
            return
        self.queued.append((conn, events))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._commit_on_loop)

    def _write(self, group: list[tuple[_Conn, list[bytes]]]) -> list[tuple[_Conn, bytes]]:
        pieces = [e for _, events in group for e in events]
        os.writev(self.fd, pieces)
        os.fdatasync(self.fd)
        answers = []
        for conn, events in group:
            acks = []
            for e in events:
                acks.append(_ACK.pack(self.offset))
                self.offset += len(e)
            answers.append((conn, b"".join(acks)))
        return answers

    def _commit_on_loop(self) -> None:
        self.scheduled = False
        group, self.queued = self.queued, []
        self._answer(self._write(group))

    def _commit_loop(self) -> None:
        while True:
            with self.cond:
                while not self.pending:
                    self.cond.wait()
                group, self.pending = self.pending, []
            self.loop.call_soon_threadsafe(self._answer, self._write(group))

    @staticmethod
    def _answer(answers: list[tuple[_Conn, bytes]]) -> None:
        for conn, data in answers:
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.write(data)


def serve(path: Path, port: int, mode: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        log = _Log(path, loop, mode == "thread")
        server = await loop.create_server(lambda: _Conn(log), "127.0.0.1", port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- client ---------------------------------------------------------------------------------------
def _process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writer(port: int, seconds: float, counts: list[int], i: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = b"x" * SIZE
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        frame = b"".join([_LEN.pack(len(payload)) + payload for _ in range(WINDOW)])  # one "pipeline"
        sock.sendall(frame)
        want, got = WINDOW * _ACK.size, b""
        while len(got) < want:
            chunk = sock.recv(want - len(got))
            if not chunk:
                raise ConnectionError("server closed")
            got += chunk
        offsets = [_ACK.unpack_from(got, k * _ACK.size)[0] for k in range(WINDOW)]
        assert len(offsets) == WINDOW
        count += WINDOW
    sock.close()
    counts[i] = count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1.5 s cells (else 4 s)")
    parser.add_argument("--commit", choices=("loop", "thread"), default="loop", help="where the write+fsync runs")
    parser.add_argument("--serve", nargs=3, metavar=("FILE", "PORT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.serve[2])
        return
    cell = 1.5 if args.quick else 4.0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    tmp = Path(tempfile.mkdtemp(prefix="python-floor-", dir="/tmp"))
    cmd = [sys.executable, __file__, "--serve", str(tmp / "log"), str(port), args.commit]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        print(f"minimal Python asyncio server, commit on the {args.commit}, load {os.getloadavg()[0]:.1f}")
        for writers in WRITERS:
            counts = [0] * writers
            client0, server0 = time.process_time(), _process_cpu(proc.pid)
            threads = [threading.Thread(target=_writer, args=(port, cell, counts, i)) for i in range(writers)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            client, server = time.process_time() - client0, _process_cpu(proc.pid) - server0
            events = max(sum(counts), 1)
            print(
                f"   1 KiB x {writers:>2} writers: {events / elapsed:>9.0f} ev/s"
                f"   CPU per event: client {client / events * 1e6:6.1f} us, server {server / events * 1e6:6.1f} us",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(30)
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
