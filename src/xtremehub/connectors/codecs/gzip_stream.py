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
import io
import os
import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from xtremehub.connectors.codecs.gzip_index import CheckpointScan, parse_gzidx
from xtremehub.connectors.codecs.source import AheadReader
from xtremehub.connectors.codecs.spans import RecordKey, SpanResult
from xtremehub.errors import XHubError

if TYPE_CHECKING:
    from xtremehub.config import Settings

__all__ = ["StreamPassFailed", "StreamScan", "available", "checkpoints_and_records"]

S = TypeVar("S")
_READ = 4 * 1024 * 1024  # decompressed bytes per read
_AHEAD = 2  # pieces of text inflated ahead of the record scan


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

    rapidgzip inflates in a thread of its own (it lets go of the GIL while it works), so the
    record scan in this thread overlaps with it; at most :data:`_AHEAD` pieces of text wait.
    """
    import rapidgzip

    parallel = int(os.environ.get("XHUB_GZIP_THREADS", "1"))
    # rapidgzip offers a checkpoint about every chunk of compressed data; chunks of an
    # eighth of the spacing let us keep points about ``spacing`` apart, as zran does.
    chunk_size = max(16 * 1024, min(4 * 1024 * 1024, spacing // 8))
    pieces: queue.Queue[tuple[list[int], bytes] | BaseException | None] = queue.Queue(_AHEAD)
    stop = threading.Event()
    blob = io.BytesIO()

    def inflate() -> None:
        announced = 0
        try:
            with AheadReader(url, size, settings=settings) as raw:
                gz = rapidgzip.RapidgzipFile(raw, parallelization=parallel, chunk_size=chunk_size)
                try:
                    while not stop.is_set():
                        chunk = gz.read(_READ)
                        offsets = sorted(gz.available_block_offsets().values())
                        pieces.put((offsets[announced:], chunk))
                        announced = len(offsets)
                        if not chunk:
                            gz.export_index(blob)
                            break
                finally:
                    gz.close()
            pieces.put(None)
        except BaseException as exc:  # handed to the scanning thread
            pieces.put(exc)

    worker = threading.Thread(target=inflate, name="xhub-gzip-one-pass", daemon=True)
    worker.start()
    try:
        while (item := pieces.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            offsets, chunk = item
            if offsets:
                scan.announce(offsets)
            if chunk:
                scan.feed(chunk)
    except StreamPassFailed:
        raise
    except XHubError as exc:
        raise StreamPassFailed(f"{url}: {exc}") from exc
    except Exception as exc:  # rapidgzip raises plain RuntimeError/ValueError on bad data
        raise StreamPassFailed(f"{url}: rapidgzip could not read the object ({exc})") from exc
    finally:
        stop.set()
        while worker.is_alive():  # let it finish its put and close the file
            with contextlib.suppress(queue.Empty):
                pieces.get(timeout=0.1)
        worker.join()
    return parse_gzidx(blob.getvalue(), url, spacing, trailer=_trailer(url, size, settings))


def _trailer(url: str, size: int, settings: Settings | None) -> bytes:
    """The last 4 bytes (a gzip member's uncompressed size modulo 2**32)."""
    from xtremehub import storage

    return storage.get_range(url, max(0, size - 4), size, settings=settings)
