"""One pass that both builds a gzip object's checkpoints and scans its records (rapidgzip).

The classic preprocessing inflates a gzip object twice: once for the checkpoints
(indexed_gzip) and once more, span by span, to count the records. Here rapidgzip
inflates the object once (in a child process from the bytes this process fetches
with one streamed GET and pipes to it; in a thread from ranged GETs fetched ahead by
:class:`AheadReader`), and the decompressed stream goes straight into a format's :class:`StreamScan`,
which validates and counts records as they pass. rapidgzip tells which
uncompressed offsets will be checkpoints (``available_block_offsets``), usually
before the text gets there; the scan notes the first record at or after each.
At the end rapidgzip exports its index (indexed_gzip's ``GZIDX`` format), read
like indexed_gzip's (:func:`~xtremehub.connectors.codecs.gzip_index.parse_gzidx`).

A failure of any kind raises :class:`StreamPassFailed` so that the caller can fall
back to the classic two-pass route, whose errors name the object and offset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from xtremehub.connectors.codecs.source import AheadReader, SeekableReader
from xtremehub.errors import TruncatedData, XHubError

if TYPE_CHECKING:  # not imported at run time: the child process needs neither them nor NumPy
    from xtremehub.config import Settings
    from xtremehub.connectors.codecs.gzip_index import CheckpointScan
    from xtremehub.connectors.codecs.spans import RecordKey, SpanResult

__all__ = ["StreamPassFailed", "StreamScan", "available", "checkpoints_and_records", "thin_gzidx"]

S = TypeVar("S")
log = logging.getLogger(__name__)
_READ = 4 * 1024 * 1024  # decompressed bytes per read
_AHEAD = 2  # pieces of text inflated ahead of the record scan (in a thread; a pipe's own buffer with a child)
_PART = 4 * 1024 * 1024  # compressed bytes per message to the child
_BEHIND = 2  # parts the child keeps behind the one it reads
_PIPE_SIZE = 1024 * 1024  # the child's pipe (default 64 KiB: 64 wake-ups of both processes per 4 MiB piece)


class StreamPassFailed(Exception):
    """The one-pass route could not finish; :func:`~xtremehub.connectors.codecs.record_index.index_records`
    catches it and falls back to the two-pass route (so it is not part of :mod:`xtremehub.errors`)."""


class StreamScan(Protocol[S]):
    """A format's sequential record scanner, fed the whole text from offset 0."""

    def announce(self, offsets: Sequence[int]) -> None:
        """Uncompressed offsets (increasing) where checkpoints may be; raise
        :class:`StreamPassFailed` for one the scan has gone too far past to place."""

    def feed(self, chunk: bytes) -> None:
        """The next piece of the text."""

    def finish(self) -> SpanResult[S]:
        """End of the text: the totals (count and the format's statistics) as one result."""

    def first_record(self, offset: int) -> tuple[int, int | None, RecordKey | None]:
        """Number, start and key of the first record at or after an announced ``offset``
        (start ``None``: no record starts there or later; the number is then the count)."""


def available() -> bool:
    """Whether the one-pass route can run here (rapidgzip installed, not disabled by
    ``XHUB_GZIP_ONE_PASS=0``)."""
    if os.environ.get("XHUB_GZIP_ONE_PASS", "1") == "0":
        return False
    try:
        import rapidgzip  # noqa: F401
    except ImportError:
        return False
    return True


def checkpoints_and_records(
    url: str, size: int, scan: StreamScan[Any], *, spacing: int, settings: Settings | None = None
) -> CheckpointScan:
    """Inflate the object once: feed ``scan`` the text, return the checkpoints about every ``spacing`` bytes.

    rapidgzip holds the GIL while it decodes, so in a thread of this process it would take
    turns with the record scan instead of overlapping it (measured: a busy Python thread
    slows it 2-10x). An object of at least :data:`PROCESS_MIN` bytes that another process
    can open (not ``mem://``) is therefore inflated by a child process (``python -m`` this
    module, no re-import of the caller's ``__main__``) to which this process pipes the
    object and which pipes the text back; smaller ones, or where no child can start, in a
    thread.
    """
    from xtremehub.connectors.codecs.gzip_index import parse_gzidx

    # rapidgzip offers a checkpoint about every chunk of compressed data; chunks of an
    # eighth of the spacing let us keep points about ``spacing`` apart, as zran does.
    chunk_size = max(16 * 1024, min(4 * 1024 * 1024, spacing // 8))
    job = _Job(url, size, settings, chunk_size, int(os.environ.get("XHUB_GZIP_THREADS", "1")), spacing)
    try:
        blob = _in_child(job, scan) if _child_fits(url, size) else None
        if blob is None:
            blob = _in_thread(job, scan)
        trailer = _trailer(url, size, settings)
    except StreamPassFailed:
        raise
    except XHubError as exc:
        raise StreamPassFailed(f"{url}: {exc}") from exc
    except Exception as exc:  # rapidgzip raises plain RuntimeError/ValueError on bad data
        raise StreamPassFailed(f"{url}: rapidgzip could not read the object ({exc})") from exc
    return parse_gzidx(blob, url, spacing, trailer=trailer)


#: compressed bytes from which the one pass inflates in a child process (below: a thread;
#: starting the child costs about 0.3 s of CPU)
PROCESS_MIN = 64 * 1024 * 1024
_SHARED_SCHEMES = ("s3", "file", "http", "https")


@dataclass(frozen=True)
class _Job:
    url: str
    size: int
    settings: Settings | None
    chunk_size: int
    parallel: int
    spacing: int


def _child_fits(url: str, size: int) -> bool:
    from xtremehub.storage.registry import split_url

    return (
        size >= PROCESS_MIN and os.environ.get("XHUB_GZIP_CHILD", "1") != "0" and split_url(url)[0] in _SHARED_SCHEMES
    )


def _inflate(job: _Job, raw: io.RawIOBase, put: Callable[[list[int], bytes], None], stop: Callable[[], bool]) -> bytes:
    """rapidgzip over the object read from ``raw``: ``put(new checkpoint offsets, text)`` per
    piece, an empty piece last; returns the exported index (thinned for ``job.spacing``)."""
    import rapidgzip

    blob = io.BytesIO()
    announced = 0
    gz = rapidgzip.RapidgzipFile(raw, parallelization=job.parallel, chunk_size=job.chunk_size)
    try:
        while not stop():
            chunk = gz.read(_READ)
            offsets = sorted(gz.available_block_offsets().values())
            put(offsets[announced:], chunk)
            announced = len(offsets)
            if not chunk:
                gz.export_index(blob)
                break
    finally:
        gz.close()
    return thin_gzidx(blob.getvalue(), job.spacing)


def thin_gzidx(blob: bytes, spacing: int) -> bytes:
    """A ``GZIDX`` index without the points :func:`~xtremehub.connectors.codecs.gzip_index.parse_gzidx`
    would drop for ``spacing``: the same checkpoints and member count parsed from it, a fraction of
    the bytes to pipe (rapidgzip exports a point with its 32 KiB window per chunk, 34 MiB for 1 GiB
    of FASTQ). Kept: the points ``parse_gzidx`` keeps, and every window-less point at a byte
    boundary before the end (the member starts it counts). Anything unexpected is returned as is.

    Example:
        >>> import struct
        >>> head = b"GZIDX" + bytes([1, 0]) + struct.pack("<QQIII", 50, 300, 0, 2, 3)
        >>> points = [struct.pack("<QQBB", c, u, 0, w) for c, u, w in ((10, 0, 0), (20, 100, 1), (30, 250, 1))]
        >>> thin = thin_gzidx(head + b"".join(points) + b"abcd", 200)
        >>> struct.unpack_from("<I", thin, 31)[0], thin[-2:]
        (2, b'cd')
    """
    if blob[:5] != b"GZIDX" or len(blob) < 35 or blob[5] != 1:
        return blob
    csize, usize, zspacing, wsize, npoints = struct.unpack_from("<QQIII", blob, 7)
    view = memoryview(blob)
    points: list[bytes | memoryview] = []
    windows: list[bytes | memoryview] = []
    window_at, last = 35 + 18 * npoints, -1
    for k in range(npoints):
        at = 35 + 18 * k
        _, uncmp, bits, has_window = struct.unpack_from("<QQBB", blob, at)
        window = view[window_at : window_at + wsize] if has_window else b""
        window_at += len(window)
        kept = last < 0 or not (uncmp >= usize or uncmp - last < spacing)
        if kept:
            last = uncmp
        if kept or (not has_window and bits == 0 and uncmp < usize):
            points.append(view[at : at + 18])
            windows.append(window)
    head = struct.pack("<QQIII", csize, usize, zspacing, wsize, len(points))
    return b"".join([view[:7], head, *points, *windows])


def _in_thread(job: _Job, scan: StreamScan[Any]) -> bytes:
    """The pass with rapidgzip in a thread of this process; at most :data:`_AHEAD` pieces wait."""
    pieces: queue.Queue[tuple[list[int], bytes] | BaseException | bytes] = queue.Queue(_AHEAD)
    stop = threading.Event()

    def inflate() -> None:
        try:
            with AheadReader(job.url, job.size, settings=job.settings) as raw:
                pieces.put(_inflate(job, raw, lambda offsets, chunk: pieces.put((offsets, chunk)), stop.is_set))
        except BaseException as exc:  # handed to the scanning thread
            pieces.put(exc)

    worker = threading.Thread(target=inflate, name="xhub-gzip-one-pass", daemon=True)
    worker.start()
    try:
        while isinstance(item := pieces.get(), tuple):
            _take(scan, *item)
        if isinstance(item, BaseException):
            raise item
        return item
    finally:
        stop.set()
        while worker.is_alive():  # let it finish its put and close the file
            with contextlib.suppress(queue.Empty):
                pieces.get(timeout=0.1)
        worker.join()


def _take(scan: StreamScan[Any], offsets: list[int], chunk: bytes) -> None:
    if offsets:
        scan.announce(offsets)
    if chunk:
        scan.feed(chunk)


def _in_child(job: _Job, scan: StreamScan[Any]) -> bytes | None:
    """The pass with rapidgzip in a child process: this process fetches the object (one
    streamed request where the store streams ranges) and pipes it to the child's stdin
    (the job, then pieces of :data:`_PART` bytes, then an empty one); the child pipes back
    pickled ``("text", offsets)`` then the raw text, ..., ``("index", blob)`` or
    ``("error", why)``. ``None`` when no child could start.

    The fetching happens here, in a thread, because this process mostly waits for text
    while the child, which decodes, is the one that sets the pace: the child needs
    neither an S3 client (nor its start-up) nor the storage settings.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
    except OSError as exc:
        log.info("no child process for the one pass (%s); inflating in a thread", exc)
        return None
    assert proc.stdin is not None
    assert proc.stdout is not None
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(AttributeError, OSError):  # Linux: fewer wake-ups per piece
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    conn = Connection(os.dup(proc.stdout.fileno()), writable=False)
    proc.stdout.close()
    out = Connection(os.dup(proc.stdin.fileno()), readable=False)
    proc.stdin.close()
    failed: list[BaseException] = []
    sender = threading.Thread(target=_send_object, args=(job, out, failed), name="xhub-gzip-send", daemon=True)
    done = False
    try:
        out.send(dataclasses.replace(job, settings=None))
        sender.start()
        while True:
            try:
                kind, payload = conn.recv()
                if kind == "text":
                    _take(scan, payload, conn.recv_bytes())
                    continue
            except EOFError:
                kind, payload = "error", "the inflating process ended early"
            if kind == "index":
                done = True
                return bytes(payload)
            sender.join(timeout=10)
            if failed:  # the fetch failed (a storage error): say that, not what it did to the child
                raise StreamPassFailed(f"{job.url}: {failed[0]}") from failed[0]
            raise StreamPassFailed(f"{job.url}: rapidgzip could not read the object ({payload})")
    finally:
        conn.close()  # a child still writing gets a broken pipe and ends
        if done:  # its work is done: let it exit (interpreter shutdown) while the index is finished here
            threading.Thread(target=_reap, args=(proc, sender), name="xhub-gzip-reap", daemon=True).start()
        else:
            _reap(proc, sender)


def _send_object(job: _Job, out: Connection, failed: list[BaseException]) -> None:
    """Sender thread: the object's bytes to the child, :data:`_PART` bytes per message, then ``b""``."""
    from xtremehub.storage import open_store

    sent = 0
    try:
        store, key = open_store(job.url, job.settings)
        with contextlib.closing(store.iter_range(key, 0, job.size, piece=_PART)) as pieces:
            for piece in pieces:
                out.send_bytes(piece)
                sent += len(piece)
        if sent != job.size:  # changed or cut since its size was read: no end marker, the child fails
            raise TruncatedData(job.url, sent, f"object ends early (expected {job.size} bytes)", "object")
        out.send_bytes(b"")
    except XHubError as exc:
        failed.append(exc)
    except OSError:
        pass  # the child stopped reading (it failed or was stopped)
    except Exception as exc:  # a bug or an unwrapped vendor error: reported with its cause, not as the child's EOF
        failed.append(exc)
    finally:
        out.close()


def _reap(proc: subprocess.Popen[bytes], sender: threading.Thread) -> None:
    """Wait for the child to exit (killed after 10 s), then for the sender thread."""
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if sender.ident is not None:
        sender.join()


def _behind(job: _Job) -> int:
    """Parts the child keeps behind: :data:`_BEHIND`, or more where rapidgzip decodes in parallel
    (its prefetch runs up to ``parallel`` chunks ahead of the part it hands out, then reads back)."""
    return max(_BEHIND, -(-2 * job.parallel * job.chunk_size // _PART) + 1)


class _PipeReader(SeekableReader):
    """Child side: the object as the parent pipes it, seekable back over the last
    :data:`_BEHIND` parts (rapidgzip seeks back up to about a chunk, 1.2 MiB measured,
    and to the end only to learn the size)."""

    def __init__(self, conn: Connection, size: int, behind: int = _BEHIND) -> None:
        super().__init__(size)
        self._conn = conn
        self._behind = behind
        self._parts: dict[int, bytes] = {}
        self._received = 0  # parts received so far

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        k, at = divmod(self._pos, _PART)
        while self._received <= k:
            data = self._conn.recv_bytes()
            if not data:
                raise OSError(f"the object ends at byte {self._received * _PART} of {self._size}")
            self._parts[self._received] = data
            self._parts.pop(self._received - self._behind - 1, None)
            self._received += 1
        if (part := self._parts.get(k)) is None:
            raise OSError(f"cannot read back at byte {self._pos}: more than {self._behind} parts behind")
        n = max(0, min(len(view), len(part) - at))
        if n == 0:  # a short part before the size: the object ended early
            raise OSError(f"the object ends at byte {k * _PART + len(part)} of {self._size}")
        view[:n] = memoryview(part)[at : at + n]
        self._pos += n
        return n


def _child_main() -> None:
    """Entry of the child process: the job from stdin, messages to (a copy of) stdout."""
    conn = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stray prints must not mix into the messages
    source = Connection(os.dup(0), writable=False)
    job: _Job = source.recv()

    def put(offsets: list[int], chunk: bytes) -> None:
        conn.send(("text", offsets))
        conn.send_bytes(chunk)

    try:
        blob = _inflate(job, _PipeReader(source, job.size, _behind(job)), put, lambda: False)
    except BrokenPipeError:
        return  # the parent stopped reading
    except BaseException as exc:  # reported to the parent, which falls back to two passes
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("index", blob))
    conn.close()


def _trailer(url: str, size: int, settings: Settings | None) -> bytes:
    """The last 4 bytes (a gzip member's uncompressed size modulo 2**32)."""
    from xtremehub import storage

    return storage.get_range(url, max(0, size - 4), size, settings=settings)


if __name__ == "__main__":
    _child_main()
