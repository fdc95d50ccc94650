"""The node service's side of storage actions: the registry, the worker pool, the write hook.

:class:`ActionHost` adds the ``action_*`` handlers to the service's RPC server and sees
every commit first (:attr:`~xtremehub.ephemeral.tiers.TieredStore.write_hook`): a write
under a prefix with an ``on_write`` action is transformed before it is stored; a write
under a reducer's prefix is stored *and* merged into the reducer's object before the
writer's commit returns, under the reducer's lock, so the merged object always is the
reduction of the partials acknowledged so far. A partial written again (a retry) or
deleted makes the reducer rebuild its object from the partials that are there, so a
rewrite replaces its contribution instead of adding it twice.

Actions run in :class:`WorkerPool` processes (started when first needed, at most
``action_workers``), each action on at most ``limits.concurrency`` of them at once, with a
time limit (the worker is killed) and a memory limit (``RLIMIT_AS`` in the worker). Writes
and reads of keys without actions never wait for them.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xtremehub.config import Settings
    >>> from xtremehub.ephemeral import NodeService, TierConfig
    >>> svc = NodeService(TierConfig(memory_limit="16MiB"), Settings(home=Path(tempfile.mkdtemp()))).start()
    >>> sorted(op for op in svc.rpc.handlers if op.startswith("action_"))
    ['action_list', 'action_read', 'action_register', 'action_unregister']
    >>> svc.stop()
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack

from xtremehub.ephemeral.rpc import Reply, Request, RpcServer
from xtremehub.ephemeral.tiers import TieredStore, eph_url
from xtremehub.errors import (
    ActionFailed,
    ActionMemoryExceeded,
    ActionTimeout,
    InvalidAction,
    ObjectNotFound,
    StorageError,
)

__all__ = ["ActionHost", "WorkerPool"]

log = logging.getLogger(__name__)

KINDS = ("on_write", "on_read", "reducer")
_RETRIES = 5  # an input file may move between tiers between locate and the worker's open


class _Died(Exception):
    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode
        super().__init__(returncode)

    def describe(self) -> str:
        rc = self.returncode
        if rc is not None and rc < 0:
            try:
                return f"killed by signal {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exited with code {rc}"


class _TimedOut(Exception):
    pass


class _Missing(Exception):
    pass


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    send: Connection
    recv: Connection
    loaded: set[str] = field(default_factory=set)  # functions it has unpickled

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for conn in (self.send, self.recv):
            conn.close()


class WorkerPool:
    """At most ``size`` action worker processes, started when first needed, reused after."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._idle: list[_Worker] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()
        self.started = 0

    def _spawn(self) -> _Worker:
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # what this process imports
        args = [sys.executable, "-m", "xtremehub.ephemeral.action_worker", str(os.getpid())]
        try:
            process = subprocess.Popen(
                [*args, str(to_worker_r), str(from_worker_w)],
                pass_fds=(to_worker_r, from_worker_w),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        self.started += 1
        return _Worker(process, Connection(to_worker_w, readable=False), Connection(from_worker_r, writable=False))

    def _acquire(self, fid: str) -> _Worker:
        """An idle worker that has loaded ``fid``, else a new one (room permitting), else any idle one."""
        with self._cond:
            while True:
                if self._closed:
                    raise StorageError("xhub-eph://", "the node service is stopping: no more actions")
                warm = [w for w in self._idle if fid in w.loaded]
                if warm or (self._idle and self._count >= self.size):
                    worker = (warm or self._idle)[-1]
                    self._idle.remove(worker)
                    return worker
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return self._spawn()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, alive: bool) -> None:
        if not alive:
            worker.kill()
        with self._cond:
            if alive and not self._closed:
                self._idle.append(worker)
            else:
                self._count -= 1
                if alive:
                    worker.kill()
            self._cond.notify()

    def run(self, task: dict[str, Any], timeout: float) -> tuple[Any, ...]:
        """One task on one worker: its answer; :class:`_TimedOut` (worker killed) or :class:`_Died`."""
        worker = self._acquire(task["fid"])
        alive = False
        try:
            worker.loaded.add(task["fid"])
            worker.send.send_bytes(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
            if not worker.recv.poll(timeout):
                raise _TimedOut
            # msgpack, not pickle: the worker runs client code, its answer must not run code here
            try:
                answer: tuple[Any, ...] = tuple(msgpack.unpackb(worker.recv.recv_bytes(), raw=False))
            except (ValueError, TypeError, msgpack.UnpackException):  # the action wrote on the pipe itself
                return ("error", "failed", "the action worker sent a malformed answer (not msgpack)", "")
            alive = not (answer[0] == "error" and answer[1] == "memory")  # that worker exits
            return answer
        except (EOFError, OSError):
            worker.process.wait()
            raise _Died(worker.process.returncode) from None
        finally:
            self._release(worker, alive)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.kill()


@dataclass
class _Action:
    """One registration: a prefix of a bucket and the functions that run on it."""

    bucket: str
    prefix: str
    into: str | None
    blobs: dict[str, tuple[bytes | None, bytes]]
    timeout: float
    memory: int | None
    concurrency: int
    reducer_name: str = ""
    commutative: bool = True
    fids: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))
    contributed: dict[str, str] = field(default_factory=dict)  # partial key -> etag merged
    stale: bool = False
    held: dict[str, str] = field(default_factory=dict)  # merged etag -> the task output it was committed from
    stats: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("runs", "failures", "merges", "rebuilds", "bytes_in", "bytes_out", "merged_bytes"), 0
        )
    )

    def __post_init__(self) -> None:
        self.slots = threading.Semaphore(max(1, self.concurrency))
        self.fids = {kind: hashlib.sha1(blob[1]).hexdigest() for kind, blob in self.blobs.items()}  # noqa: S324

    def info(self) -> dict[str, Any]:
        return {
            "url": eph_url(self.bucket, self.prefix),
            "kinds": sorted(self.blobs),
            "into": eph_url(self.bucket, self.into) if self.into else None,
            "reducer": self.reducer_name or None,
            "timeout": self.timeout,
            "memory": self.memory,
            "concurrency": self.concurrency,
            "partials": len(self.contributed),
            **self.stats,
        }


class ActionHost:
    """Storage actions of one node service (see the module docstring)."""

    def __init__(self, tiers: TieredStore, rpc: RpcServer, *, workers: int = 4) -> None:
        self.tiers = tiers
        self.pool = WorkerPool(workers)
        self._actions: dict[tuple[str, str], _Action] = {}
        self._lock = threading.Lock()
        tiers.write_hook = self._on_commit
        self._register(rpc)

    def close(self) -> None:
        self.tiers.write_hook = None
        self.pool.close()

    # -- matching ---------------------------------------------------------------------------
    def _match(self, bucket: str, key: str, kind: str) -> _Action | None:
        with self._lock:
            found = [a for (b, p), a in self._actions.items() if b == bucket and key.startswith(p) and kind in a.blobs]
        return max(found, key=lambda a: len(a.prefix), default=None)

    # -- running ------------------------------------------------------------------------------
    def _run(self, action: _Action, kind: str, task: dict[str, Any], url: str) -> Any:
        """Run ``task`` with ``action``'s ``kind`` function; its value, or the typed error."""
        task = {**task, "fid": action.fids[kind], "blobs": action.blobs[kind], "memory": action.memory}
        what = f"{kind} action of {eph_url(action.bucket, action.prefix)}"
        with action.slots:
            action.stats["runs"] += 1
            try:
                answer = self.pool.run(task, action.timeout)
            except _TimedOut:
                action.stats["failures"] += 1
                raise ActionTimeout(url, f"{what} ran past its time limit of {action.timeout:g}s") from None
            except _Died as died:
                action.stats["failures"] += 1
                raise ActionFailed(url, f"{what}: its worker process {died.describe()}") from None
        if answer[0] == "ok":
            return answer[1]
        _, error, message, tb = answer
        if error == "missing":
            raise _Missing(message)
        action.stats["failures"] += 1
        if error == "memory":
            limit = f"{action.memory} bytes" if action.memory is not None else "the worker's"
            raise ActionMemoryExceeded(url, f"{what} went over its memory limit ({limit}): {message}", tb)
        raise ActionFailed(url, f"{what} failed: {message}", tb)

    def _path(self, bucket: str, key: str) -> str | None:
        try:
            return str(self.tiers.locate(bucket, key)["path"])
        except ObjectNotFound:
            return None

    # -- the write hook -------------------------------------------------------------------------
    def _on_commit(self, bucket: str, key: str, tmp: Path, ttl: float | None, pin: bool) -> dict[str, Any] | None:
        transform = self._match(bucket, key, "on_write")
        reducer = self._match(bucket, key, "reducer")
        if transform is None and reducer is None:
            return None
        url = eph_url(bucket, key)
        if transform is not None:
            out = self.tiers.new_tmp()
            try:
                size = self._run(transform, "on_write", {"op": "write", "inputs": [str(tmp)], "out": str(out)}, url)
            except _Missing:
                out.unlink(missing_ok=True)
                raise StorageError(url, "the written temporary file vanished before commit") from None
            except BaseException:
                out.unlink(missing_ok=True)
                tmp.unlink(missing_ok=True)
                raise
            transform.stats["bytes_in"] += tmp.stat().st_size
            transform.stats["bytes_out"] += size
            tmp.unlink(missing_ok=True)
            tmp = out
        if reducer is None:
            return self.tiers.commit_version(bucket, key, tmp, ttl=ttl, pin=pin)
        return self._reduce(reducer, key, tmp, ttl, pin)

    def _reduce(self, action: _Action, key: str, tmp: Path, ttl: float | None, pin: bool) -> dict[str, Any]:
        """Store partial ``key`` and merge it into the reducer's object, both before returning."""
        bucket, into = action.bucket, action.into
        assert into is not None
        url = eph_url(bucket, key)
        with action.lock:
            out = self.tiers.new_tmp()
            rebuild = (
                action.stale
                or key in action.contributed
                or (not action.commutative and any(k > key for k in action.contributed))
            )
            try:
                if rebuild:
                    size = self._rebuild(action, out, url, extra=(key, str(tmp)))
                else:
                    size = self._merge(action, out, url, str(tmp))
                info = self.tiers.commit_version(bucket, key, tmp, ttl=ttl, pin=pin)
            except BaseException:
                out.unlink(missing_ok=True)
                tmp.unlink(missing_ok=True)
                raise
            action.stats["bytes_in"] += int(info["size"])
            self._commit_merged(action, out, size)
            action.contributed[key] = str(info["etag"])
            return info

    def _merge(self, action: _Action, out: Path, url: str, partial: str) -> int:
        assert action.into is not None
        for _ in range(_RETRIES):
            try:
                located = self.tiers.locate(action.bucket, action.into)
                merged, held = str(located["path"]), action.held.get(str(located["etag"]))
            except ObjectNotFound:
                merged, held = None, None
            task = {"op": "reduce", "inputs": [merged, partial], "out": str(out), "held": held}
            try:
                size = int(self._run(action, "reducer", task, url))
            except _Missing:
                continue
            action.stats["merges"] += 1
            return size
        raise StorageError(url, "the reducer's object kept moving between tiers; retry")

    def _rebuild(self, action: _Action, out: Path, url: str, extra: tuple[str, str] | None = None) -> int:
        """Merge every partial under the prefix (and ``extra``: a key and its new file) in key order."""
        for _ in range(_RETRIES):
            keys = [o["key"] for o in self.tiers.list(action.bucket, action.prefix)]
            paths = {k: self._path(action.bucket, k) for k in keys if extra is None or k != extra[0]}
            if extra is not None:
                paths[extra[0]] = extra[1]
            inputs = [paths[k] for k in sorted(paths) if paths[k] is not None]
            try:
                size = int(self._run(action, "reducer", {"op": "rebuild", "inputs": inputs, "out": str(out)}, url))
            except _Missing:
                continue
            action.stats["rebuilds"] += 1
            action.contributed = {k: "" for k in paths if paths[k] is not None}
            return size
        raise StorageError(url, "partials kept moving between tiers while rebuilding; retry")

    def _commit_merged(self, action: _Action, out: Path, size: int) -> None:
        assert action.into is not None
        try:
            if size < 0:  # no partials and no identity: no merged object
                out.unlink(missing_ok=True)
                with contextlib.suppress(ObjectNotFound):
                    self.tiers.delete(action.bucket, action.into)
            else:
                info = self.tiers.commit_version(action.bucket, action.into, out, pin=True)
                action.held = {str(info["etag"]): str(out)}  # a worker may still hold this value decoded
                action.stats["merged_bytes"] = size
            action.stale = False
        except BaseException:
            action.stale = True  # the next write rebuilds from the partials
            out.unlink(missing_ok=True)
            raise

    # -- handlers ---------------------------------------------------------------------------------
    def _register(self, rpc: RpcServer) -> None:
        h = rpc.handler

        @h("action_register")
        def register(req: Request) -> Reply:
            return Reply({"action": self.register(req.header, req.payload)})

        @h("action_unregister")
        def unregister(req: Request) -> Reply:
            q = req.header
            with self._lock:
                action = self._actions.pop((q["bucket"], q["prefix"]), None)
            if action is None:
                raise ObjectNotFound(eph_url(q["bucket"], q["prefix"]), "no storage action registered on this prefix")
            return Reply({"action": action.info()})

        @h("action_list")
        def list_(req: Request) -> Reply:
            bucket = req.header.get("bucket")
            with self._lock:
                actions = sorted(self._actions.values(), key=lambda a: (a.bucket, a.prefix))
            return Reply({"actions": [a.info() for a in actions if bucket in (None, a.bucket)]})

        @h("action_read")
        def read(req: Request) -> Reply:
            q = req.header
            bucket, key = q["bucket"], q["key"]
            url = eph_url(bucket, key)
            action = self._match(bucket, key, "on_read")
            if action is None:
                raise InvalidAction(url, "no on_read action is registered on a prefix of this key")
            for _ in range(_RETRIES):
                path = self.tiers.locate(bucket, key)["path"]  # ObjectNotFound passes
                try:
                    data = self._run(action, "on_read", {"op": "read", "inputs": [path], "params": q["params"]}, url)
                except _Missing:
                    continue
                action.stats["bytes_out"] += len(data)
                return Reply({"size": len(data)}, data)
            raise StorageError(url, "object kept moving between tiers; retry")

        delete = rpc.handlers["delete"]

        def delete_partial(req: Request) -> Reply:
            """A deleted partial leaves its reducer's object: rebuilt from the partials left."""
            bucket, key = req.header["bucket"], req.header["key"]
            action = self._match(bucket, key, "reducer")
            if action is None:
                return delete(req)
            with action.lock:
                reply = delete(req)
                if key in action.contributed:
                    out = self.tiers.new_tmp()
                    try:
                        size = self._rebuild(action, out, eph_url(bucket, key))
                    except BaseException:
                        out.unlink(missing_ok=True)
                        action.stale = True
                        raise
                    self._commit_merged(action, out, size)
            return reply

        rpc.handlers["delete"] = delete_partial

    def register(self, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        """Register (or replace) the action on ``header['bucket']``/``header['prefix']``."""
        bucket, prefix, into = str(header["bucket"]), str(header["prefix"]), header.get("into")
        url = eph_url(bucket, prefix)
        blobs = {k: (v[0], v[1]) for k, v in msgpack.unpackb(payload, raw=False).items() if k in KINDS}
        if not blobs:
            raise InvalidAction(url, "give at least one of on_write, on_read, reducer")
        if "reducer" in blobs:
            if not into or str(into).endswith("/"):
                raise InvalidAction(url, "a reducer needs an object key to merge into")
            if str(into).startswith(prefix):
                raise InvalidAction(url, f"the reducer's object {into!r} must not be under its own prefix")
        action = _Action(
            bucket,
            prefix,
            str(into) if into else None,
            blobs,
            timeout=float(header["timeout"]),
            memory=None if header.get("memory") is None else int(header["memory"]),
            concurrency=int(header["concurrency"]),
            reducer_name=str(header.get("reducer_name") or ""),
            commutative=bool(header.get("commutative", True)),
        )
        for kind, blob in blobs.items():  # every function must load where it will run
            task = {"op": "load", "fid": action.fids[kind], "blobs": blob, "memory": None}
            try:
                answer = self.pool.run(task, 60.0)
            except (_TimedOut, _Died) as exc:
                raise InvalidAction(url, f"loading the {kind} function in an action worker failed: {exc!r}") from None
            if answer[0] != "ok":
                raise InvalidAction(
                    url, f"the {kind} function does not load in an action worker: {answer[2]}", answer[3]
                )
        with self._lock:
            self._actions[(bucket, prefix)] = action
        if action.into is not None:  # merge the partials already there (after a restart: from the persistency tier)
            with action.lock:
                out = self.tiers.new_tmp()
                try:
                    size = self._rebuild(action, out, url)
                except BaseException:
                    out.unlink(missing_ok=True)
                    with self._lock:
                        self._actions.pop((bucket, prefix), None)
                    raise
                self._commit_merged(action, out, size)
        log.info("storage action on %s: %s", url, ", ".join(sorted(blobs)))
        return action.info()
