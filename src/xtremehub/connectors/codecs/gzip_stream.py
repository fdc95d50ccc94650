"""One pass that both builds a gzip object's checkpoints and scans its records (rapidgzip).

The classic preprocessing inflates a gzip object twice: once for the checkpoints
(indexed_gzip) and once more, span by span, to count the records. Here rapidgzip
inflates the object once (in a child process from the bytes this process fetches
with one streamed GET and pipes to it, the text coming back through buffers shared with
the child; in a thread from ranged GETs fetched ahead by :class:`AheadReader`), and the
decompressed stream goes straight into a format's :class:`StreamScan`, which validates
and counts records as they pass. rapidgzip tells which uncompressed offsets will be
checkpoints (``available_block_offsets``), usually before the text gets there; the
scan notes the first record at or after each.
At the end rapidgzip exports its index (indexed_gzip's ``GZIDX`` format), read
like indexed_gzip's (:func:`~xtremehub.connectors.codecs.gzip_index.parse_gzidx`).

A failure of any kind raises :class:`StreamPassFailed` so that the caller can fall
back to the classic two-pass route, whose errors name the object and offset.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import mmap
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from xtremehub.connectors.codecs import gzip_child
from xtremehub.connectors.codecs.gzip_child import thin_gzidx
from xtremehub.connectors.codecs.source import AheadReader
from xtremehub.errors import TruncatedData, XHubError

if TYPE_CHECKING:  # not imported at run time: the child process needs neither them nor NumPy
    from xtremehub.config import Settings
    from xtremehub.connectors.codecs.gzip_index import CheckpointScan
    from xtremehub.connectors.codecs.spans import RecordKey, SpanResult

__all__ = ["StreamPassFailed", "StreamScan", "available", "checkpoints_and_records", "thin_gzidx"]

S = TypeVar("S")
log = logging.getLogger(__name__)
_AHEAD = 2  # pieces of text inflated ahead of the record scan
_PART = 4 * 1024 * 1024  # compressed bytes per message to the child
_BEHIND = 2  # parts the child keeps behind the one it reads
_SLOTS = _AHEAD + 2  # text buffers shared with the child: the one it fills, the one scanned, _AHEAD between
_PIPE_SIZE = 1024 * 1024  # the child's pipe (default 64 KiB: 64 wake-ups of both processes per 4 MiB piece)
_IDLE = 120.0  # seconds without a message from the child after which the pass gives up (it sends one per piece)


class StreamPassFailed(Exception):
    """The one-pass route could not finish; :func:`~xtremehub.connectors.codecs.record_index.index_records`
    catches it and falls back to the two-pass route (so it is not part of :mod:`xtremehub.errors`)."""


class StreamScan(Protocol[S]):
    """A format's sequential record scanner, fed the whole text from offset 0."""

    def announce(self, offsets: Sequence[int]) -> None:
        """Uncompressed offsets (increasing) where checkpoints may be; raise
        :class:`StreamPassFailed` for one the scan has gone too far past to place."""

    def feed(self, chunk: bytes | memoryview) -> None:
        """The next piece of the text: a buffer reused once this returns, so keep no view of it
        (copy what must outlive the call). In a child pass a kept view stops the pass, which
        then falls back to two passes; in a thread pass each piece is a new buffer."""

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
    can open (not ``mem://``) is therefore inflated by a child process (the script
    :mod:`~xtremehub.connectors.codecs.gzip_child`, no re-import of the caller's
    ``__main__``) to which this process pipes the object and which hands the text back in
    buffers shared with this process; smaller ones, or where no child (or no shared memory)
    can start, in a thread.
    """
    from xtremehub.connectors.codecs.gzip_index import parse_gzidx

    job = _Job(url, size, settings, _chunk_size(spacing), int(os.environ.get("XHUB_GZIP_THREADS", "1")), spacing)
    try:
        blob = _in_child(job, scan) if _child_fits(url, size) and not _is_bgzf(url, settings) else None
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


def _chunk_size(spacing: int) -> int:
    """rapidgzip's chunk size for checkpoints ``spacing`` apart.

    rapidgzip offers a checkpoint at the end of each piece of about ``chunk_size``
    decompressed bytes (smaller at the end of its compressed chunks; for BGZF about
    ``chunk_size`` compressed). From spacings of :data:`_BIG_SPACING` up, pieces of 4/3
    of the spacing (at most 4 MiB) keep nearly every point, and big pieces are cheap: on
    1 GiB of FASTQ one thread decodes in 2.3-2.5 CPU s with 4 MiB pieces, 3.1 s with
    1 MiB (each piece costs rapidgzip a block search and a decode without its window).
    Below, pieces of an eighth of the spacing keep points about ``spacing`` apart, as zran does.

    Example:
        >>> _chunk_size(3 * 1024 * 1024) == 4 * 1024 * 1024, _chunk_size(256 * 1024)
        (True, 32768)
    """
    if spacing >= _BIG_SPACING:
        return min(4 * 1024 * 1024, spacing * 4 // 3)
    return max(16 * 1024, spacing // 8)


#: spacings from which rapidgzip's pieces are as big as the spacing allows
_BIG_SPACING = 1024 * 1024


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
        size >= PROCESS_MIN
        and os.environ.get("XHUB_GZIP_CHILD", "1") != "0"
        and split_url(url)[0] in _SHARED_SCHEMES
        and os.path.isfile(gzip_child.__file__)  # a zipped install has no script to run: a thread
    )


def _is_bgzf(url: str, settings: Settings | None) -> bool:
    """Whether the object is BGZF (:func:`~xtremehub.connectors.codecs.gzip_index.is_bgzf` of its head).

    rapidgzip indexes a BGZF object from its block headers, reading ahead through the whole
    object and back again, which a child fed the object once, in order, cannot serve (it
    failed on every BGZF object of more than three parts): such objects are inflated in a
    thread, which reads by ranged GETs where it needs to.
    """
    from xtremehub import storage
    from xtremehub.connectors.codecs.gzip_index import is_bgzf

    return is_bgzf(storage.get_range(url, 0, 18, settings=settings))


def _in_thread(job: _Job, scan: StreamScan[Any]) -> bytes:
    """The pass with rapidgzip in a thread of this process; at most :data:`_AHEAD` pieces wait."""
    pieces: queue.Queue[tuple[list[int], memoryview] | BaseException | bytes] = queue.Queue(_AHEAD)
    stop = threading.Event()

    def inflate() -> None:
        try:
            with AheadReader(job.url, job.size, settings=job.settings) as raw:
                blob = gzip_child.inflate(
                    raw,
                    chunk_size=job.chunk_size,
                    parallel=job.parallel,
                    spacing=job.spacing,
                    buffer=lambda: memoryview(bytearray(gzip_child.READ)),  # a new one each: the scan may lag
                    put=lambda offsets, chunk: pieces.put((offsets, chunk)),
                    stop=stop.is_set,
                )
                pieces.put(blob)
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


def _take(scan: StreamScan[Any], offsets: list[int], chunk: bytes | memoryview) -> None:
    if offsets:
        scan.announce(offsets)
    if chunk:
        scan.feed(chunk)


def _in_child(job: _Job, scan: StreamScan[Any]) -> bytes | None:
    """The pass with rapidgzip in a child process: this process fetches the object (one
    streamed request where the store streams ranges) and pipes it to the child's stdin
    (the pickled job, then the object's bytes, raw); the child inflates
    into a ring of :data:`_SLOTS` text buffers in memory shared with this process and pipes
    back pickled ``("text", offsets, slot, length)``, ..., ``("index", blob)`` or
    ``("error", why)``; this process returns each slot once scanned (one byte on a pipe),
    so the child runs up to :data:`_SLOTS` - 1 pieces ahead. ``None`` when no child could start.

    The fetching happens here, in a thread, because this process mostly waits for text
    while the child, which decodes, is the one that sets the pace: the child needs
    neither an S3 client (nor its start-up) nor the storage settings. The text is not
    piped: 1.4 GB of pipe writes per GiB of FASTQ cost the child 0.2-0.3 CPU s, and this
    process as much to read them.
    """
    try:
        ring_fd = _shared_fd(_SLOTS * gzip_child.READ)
    except OSError as exc:
        log.info("no shared memory for the one pass (%s); inflating in a thread", exc)
        return None
    credits_read, credits = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", gzip_child.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            pass_fds=(ring_fd, credits_read),
        )
    except BaseException as exc:
        os.close(credits)
        os.close(ring_fd)
        if not isinstance(exc, OSError):
            raise
        log.info("no child process for the one pass (%s); inflating in a thread", exc)
        return None
    finally:
        os.close(credits_read)
    sender: threading.Thread | None = None
    out: io.FileIO | None = None
    conn: Connection | None = None
    done = False
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(AttributeError, OSError):  # Linux: fewer wake-ups per piece
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        conn = Connection(os.dup(proc.stdout.fileno()), writable=False)
        proc.stdout.close()
        out = io.FileIO(os.dup(proc.stdin.fileno()), "wb")  # the pickled job, then the object's bytes, raw
        proc.stdin.close()
        failed: list[BaseException] = []
        sender = threading.Thread(target=_send_object, args=(job, out, failed), name="xhub-gzip-send", daemon=True)
        ring_job = (ring_fd, _SLOTS, credits_read)
        with Connection(os.dup(out.fileno()), readable=False) as jobs:
            jobs.send((job.size, job.chunk_size, job.parallel, job.spacing, _PART, _behind(job), *ring_job))
        sender.start()
        while True:
            message = _receive(conn, proc)
            if message[0] == "text":
                _, offsets, slot, n = message
                _scan_slot(job.url, scan, offsets, ring_fd, slot, n)
                with contextlib.suppress(BrokenPipeError):  # a child that ended: its last message says why
                    os.write(credits, b"s")  # never blocks: at most _SLOTS bytes are ever unread
                continue
            if message[0] == "index":
                done = True
                return bytes(message[1])
            sender.join(timeout=10)
            if failed:  # the fetch failed (a storage error): say that, not what it did to the child
                raise StreamPassFailed(f"{job.url}: {failed[0]}") from failed[0]
            raise StreamPassFailed(f"{job.url}: rapidgzip could not read the object ({message[1]})")
    finally:
        os.close(credits)
        os.close(ring_fd)
        if not done:  # a child still working is not needed any more (its pipes break, it ends)
            with contextlib.suppress(OSError):
                proc.kill()
        if conn is not None:
            conn.close()
        if out is not None and (sender is None or sender.ident is None):
            out.close()  # the sender never started: nobody else closes it
        if done:  # its work is done: let it exit (interpreter shutdown) while the index is finished here
            threading.Thread(target=_reap, args=(proc, sender), name="xhub-gzip-reap", daemon=True).start()
        else:
            _reap(proc, sender)


def _scan_slot(url: str, scan: StreamScan[Any], offsets: list[int], fd: int, slot: int, n: int) -> None:
    """Feed ``scan`` the ``n`` bytes of text in shared buffer ``slot``, mapped read-only for this piece only.

    The child writes the slot again once it is handed back, so nothing may still see it then:
    the mapping is closed before, and a scan that kept a view of the text (a slice, a NumPy
    array over it) makes that fail. The pass then stops (the caller falls back to two passes)
    rather than let the text change under what the scan kept.
    """
    if not n:
        _take(scan, offsets, b"")
        return
    text = mmap.mmap(fd, n, offset=slot * gzip_child.READ, access=mmap.ACCESS_READ)
    view = memoryview(text)
    try:
        _take(scan, offsets, view)
    except BaseException:
        with contextlib.suppress(BufferError):  # a view still held: the mapping goes with it
            view.release()
            text.close()
        raise
    try:
        view.release()
        text.close()
    except BufferError as exc:
        raise StreamPassFailed(f"{url}: the record scan kept a view of a text buffer the child is to reuse") from exc


def _shared_fd(size: int) -> int:
    """A file descriptor of ``size`` bytes of memory to share with a child (Linux: ``memfd``;
    elsewhere an unlinked temporary file), inheritable by ``pass_fds``."""
    try:
        fd = os.memfd_create("xhub-gzip-text")
    except (AttributeError, OSError):  # not Linux, or refused (a seccomp profile): a file nobody else sees
        fd, path = tempfile.mkstemp(prefix="xhub-gzip-text-")
        os.unlink(path)
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        raise
    return fd


def _receive(conn: Connection, proc: subprocess.Popen[bytes]) -> tuple[Any, ...]:
    """The child's next message; its end, silence for :data:`_IDLE` seconds (a stopped or stuck
    child) or an unreadable message as an ``("error", why)`` one."""
    try:
        if not conn.poll(_IDLE):
            return ("error", f"no word from the inflating process in {_IDLE:.0f} s")
        message = conn.recv()
    except (EOFError, OSError):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
        status = "" if proc.returncode is None else f", exit status {proc.returncode}"
        return ("error", f"the inflating process ended early{status}")
    except Exception as exc:  # e.g. a message that does not unpickle: the scan must not wait for ever
        return ("error", f"unreadable message from the inflating process ({type(exc).__name__}: {exc})")
    if not isinstance(message, tuple) or not message:
        return ("error", f"unexpected message from the inflating process ({message!r:.80})")
    return message


def _send_object(job: _Job, out: io.RawIOBase, failed: list[BaseException]) -> None:
    """Sender thread: the object's ``size`` bytes to the child, raw (fetched :data:`_PART` bytes at a time)."""
    from xtremehub.storage import open_store

    sent = 0
    try:
        store, key = open_store(job.url, job.settings)
        with contextlib.closing(store.iter_range(key, 0, job.size, piece=_PART)) as pieces:
            for piece in pieces:
                view = memoryview(piece)[: job.size - sent]
                while view:
                    view = view[out.write(view) or 0 :]
                sent += len(piece)
        if sent != job.size:  # changed or cut since its size was read: the child finds the stream short and fails
            raise TruncatedData(job.url, sent, f"object ends early (expected {job.size} bytes)", "object")
    except XHubError as exc:
        failed.append(exc)
    except OSError:
        pass  # the child stopped reading (it failed or was stopped)
    except Exception as exc:  # a bug or an unwrapped vendor error: reported with its cause, not as the child's EOF
        failed.append(exc)
    finally:
        out.close()


def _reap(proc: subprocess.Popen[bytes], sender: threading.Thread | None) -> None:
    """Wait for the child to exit (killed after 10 s), then for the sender thread (which ends at
    its next write to the dead child's pipe; a stalled storage read ends with its timeout)."""
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if sender is not None and sender.ident is not None:
        sender.join(timeout=30)


def _behind(job: _Job) -> int:
    """Parts the child keeps behind: :data:`_BEHIND`, or more where rapidgzip decodes in parallel
    (its prefetch runs up to ``parallel`` chunks ahead of the part it hands out, then reads back)."""
    return max(_BEHIND, -(-2 * job.parallel * job.chunk_size // _PART) + 1)


def _trailer(url: str, size: int, settings: Settings | None) -> bytes:
    """The last 4 bytes (a gzip member's uncompressed size modulo 2**32)."""
    from xtremehub import storage

    return storage.get_range(url, max(0, size - 4), size, settings=settings)
