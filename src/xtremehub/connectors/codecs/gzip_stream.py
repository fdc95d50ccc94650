"""One pass that both builds a gzip object's checkpoints and scans its records (rapidgzip).

The classic preprocessing inflates a gzip object twice: once for the checkpoints
(indexed_gzip) and once more, span by span, to count the records. Here rapidgzip
inflates the object once, from ranged GETs fetched ahead (:class:`AheadReader`),
and the decompressed stream goes straight into a format's :class:`StreamScan`,
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
import io
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from xtremehub.connectors.codecs.gzip_index import CheckpointScan, parse_gzidx
from xtremehub.connectors.codecs.source import AheadReader
from xtremehub.connectors.codecs.spans import RecordKey, SpanResult
from xtremehub.errors import XHubError

if TYPE_CHECKING:
    from xtremehub.config import Settings

__all__ = ["StreamPassFailed", "StreamScan", "available", "checkpoints_and_records"]

S = TypeVar("S")
log = logging.getLogger(__name__)
_READ = 4 * 1024 * 1024  # decompressed bytes per read
_AHEAD = 2  # pieces of text inflated ahead of the record scan (in a thread; a pipe's own buffer with a child)


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
    module, no re-import of the caller's ``__main__``) that fetches it and pipes the text
    here; smaller ones, or where no child can start, in a thread.
    """
    # rapidgzip offers a checkpoint about every chunk of compressed data; chunks of an
    # eighth of the spacing let us keep points about ``spacing`` apart, as zran does.
    chunk_size = max(16 * 1024, min(4 * 1024 * 1024, spacing // 8))
    job = _Job(url, size, settings, chunk_size, int(os.environ.get("XHUB_GZIP_THREADS", "1")))
    try:
        blob = _in_child(job, scan) if _child_fits(url, size) else None
        if blob is None:
            blob = _in_thread(job, scan)
    except StreamPassFailed:
        raise
    except XHubError as exc:
        raise StreamPassFailed(f"{url}: {exc}") from exc
    except Exception as exc:  # rapidgzip raises plain RuntimeError/ValueError on bad data
        raise StreamPassFailed(f"{url}: rapidgzip could not read the object ({exc})") from exc
    return parse_gzidx(blob, url, spacing, trailer=_trailer(url, size, settings))


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


def _child_fits(url: str, size: int) -> bool:
    from xtremehub.storage.registry import split_url

    return (
        size >= PROCESS_MIN and os.environ.get("XHUB_GZIP_CHILD", "1") != "0" and split_url(url)[0] in _SHARED_SCHEMES
    )


def _inflate(job: _Job, put: Callable[[list[int], bytes], None], stop: Callable[[], bool]) -> bytes:
    """rapidgzip over the object: ``put(new checkpoint offsets, text)`` per piece, an empty
    piece last; returns the exported index."""
    import rapidgzip

    blob = io.BytesIO()
    announced = 0
    with AheadReader(job.url, job.size, settings=job.settings) as raw:
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
    return blob.getvalue()


def _in_thread(job: _Job, scan: StreamScan[Any]) -> bytes:
    """The pass with rapidgzip in a thread of this process; at most :data:`_AHEAD` pieces wait."""
    pieces: queue.Queue[tuple[list[int], bytes] | BaseException | bytes] = queue.Queue(_AHEAD)
    stop = threading.Event()

    def inflate() -> None:
        try:
            pieces.put(_inflate(job, lambda offsets, chunk: pieces.put((offsets, chunk)), stop.is_set))
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
    """The pass with rapidgzip in a child process writing to a pipe (pickled ``("text",
    offsets)`` then the raw text, ..., ``("index", blob)`` or ``("error", why)``); ``None``
    when no child could start."""
    from xtremehub.config import default_settings

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
    conn = Connection(os.dup(proc.stdout.fileno()), writable=False)
    proc.stdout.close()
    try:
        proc.stdin.write(pickle.dumps(dataclasses.replace(job, settings=job.settings or default_settings())))
        proc.stdin.close()
        while True:
            try:
                kind, payload = conn.recv()
                if kind == "text":
                    _take(scan, payload, conn.recv_bytes())
                    continue
            except EOFError:
                raise StreamPassFailed(f"{job.url}: the inflating process ended early") from None
            if kind == "index":
                return bytes(payload)
            raise StreamPassFailed(f"{job.url}: rapidgzip could not read the object ({payload})")
    finally:
        conn.close()  # a child still writing gets a broken pipe and ends
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _child_main() -> None:
    """Entry of the child process: the job from stdin, messages to (a copy of) stdout."""
    conn = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stray prints must not mix into the messages
    job: _Job = pickle.loads(sys.stdin.buffer.read())

    def put(offsets: list[int], chunk: bytes) -> None:
        conn.send(("text", offsets))
        conn.send_bytes(chunk)

    try:
        blob = _inflate(job, put, lambda: False)
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
