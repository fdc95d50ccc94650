"""Long-term storage (LTS) of segment chunks: one object per chunk, one metadata object per segment.

Layout under the LTS URL prefix::

    segments/<quoted segment name>/<creation id>/<start offset, 20 digits>.chunk
    segments/<quoted segment name>/<creation id>/metadata.json

The metadata object lists the segment's chunks (offset, length, key, and the chunk's
per-block CRC32C checksums, see :mod:`.chunksum`); it is written after each chunk, so it
never names a chunk that is not there. The store's own record of tiered
chunks is the WAL (``TIERED`` records and checkpoints); the LTS metadata lets an operator or
a disaster-recovery tool find a segment's bytes from LTS alone.

Example:
    >>> lts = ChunkStore("mem://xhub-doc-lts/prefix/")
    >>> key = lts.chunk_key("scope/stream/0.#epoch.0", "c1", 0)
    >>> key
    'prefix/segments/scope%2Fstream%2F0.%23epoch.0/c1/00000000000000000000.chunk'
    >>> sums = lts.put_chunk(key, [b"01234", b"56789"])
    >>> lts.read([(key, 2, 5, sums), (key, 7, 9, sums)])
    b'23478'
    >>> lts.close()
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from xtremehub.config import Settings
from xtremehub.errors import ObjectNotFound, TruncatedData
from xtremehub.storage import open_store
from xtremehub.storage._local import LocalStore
from xtremehub.streams.segmentstore.chunksum import ChunkSums, block_size, read_verified

__all__ = ["ChunkStore"]

log = logging.getLogger(__name__)


class ChunkStore:
    """Chunk objects of segments in one LTS store (thread-safe)."""

    def __init__(self, url: str, settings: Settings | None = None, *, part_size: int = 8 * 1024 * 1024) -> None:
        if not url.endswith("/"):
            url += "/"
        self.url = url
        self.store, self.prefix = open_store(url, settings)
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self.part_size = part_size
        #: Checksum block of the chunks written here (see :mod:`.chunksum`).
        self.block = block_size(part_size)
        self._pool = ThreadPoolExecutor(min(self.store.max_concurrency, 16), thread_name_prefix="xhub-lts-read")

    @property
    def upload_concurrency(self) -> int:
        """Chunks to write at once: one into a local directory, whose fsyncs share the disk with
        the write-ahead log (several at once make one burst that stalls the log's fsyncs), else 4."""
        base = getattr(self.store, "inner", self.store)  # an encrypted store writes through its inner one
        return 1 if isinstance(base, LocalStore) else 4

    def _segment_dir(self, name: str, cid: str) -> str:
        return f"{self.prefix}segments/{quote(name, safe='')}/{cid}/"

    def chunk_key(self, name: str, cid: str, offset: int) -> str:
        return f"{self._segment_dir(name, cid)}{offset:020d}.chunk"

    def metadata_key(self, name: str, cid: str) -> str:
        return f"{self._segment_dir(name, cid)}metadata.json"

    def put_chunk(self, key: str, pieces: Sequence[bytes]) -> ChunkSums:
        """Write one chunk object from its pieces (the store writes them without joining when it
        can); returns its checksums, which readers verify it with."""
        sums = ChunkSums.of(pieces, self.block)
        self.store.put(key, pieces)
        return sums

    def put_metadata(self, name: str, cid: str, chunks: list[list[Any]]) -> None:
        """Write the segment's metadata object: ``chunks`` are ``[offset, length, key, sums or None]``."""
        listed = []
        for offset, length, key, sums in chunks:
            item: dict[str, Any] = {"offset": offset, "length": length, "key": key}
            if sums is not None:
                item["sums"] = sums.to_json()
            listed.append(item)
        body = {"name": name, "cid": cid, "chunks": listed}
        self.store.put(self.metadata_key(name, cid), json.dumps(body).encode())

    def read(self, pieces: Sequence[tuple[str, int, int, ChunkSums | None]]) -> bytes:
        """The bytes of ``(key, start, end, sums)`` pieces, concatenated; fetched concurrently in
        parts aligned to the part size (so that only a piece's ends fetch extra checksum blocks).

        A part that fails (damaged, missing, LTS unreachable) ends the read short: the verified
        parts before it are returned, and a read from there on gets the error; it is raised
        when it is the first part.
        """
        step = self.part_size
        parts = []
        for key, start, end, sums in pieces:
            bounds = [start, *range(start - start % step + step, end, step), end]
            parts += [(key, a, b, sums) for a, b in itertools.pairwise(bounds)]
        if len(parts) == 1:
            return self.get_part(*parts[0])
        fetches = [self._pool.submit(self.get_part, *p) for p in parts]
        done: list[bytes] = []
        try:
            for fetch in fetches:
                done.append(fetch.result())
        except Exception:
            if not done:
                raise
        finally:
            for fetch in fetches:
                fetch.cancel()
        return b"".join(done)

    def get_part(self, key: str, start: int, end: int, sums: ChunkSums | None = None) -> bytes:
        """Bytes ``[start, end)`` of one chunk object (one ranged GET), verified with ``sums``.

        Raises :class:`~xtremehub.errors.ChecksumMismatch` naming the object and offset when
        the bytes differ from ``sums`` (see :func:`.chunksum.read_verified`). A chunk without
        checksums (written by an older version) is read unverified; it raises
        :class:`~xtremehub.errors.TruncatedData` naming the object and the offset where its
        bytes stop when it holds fewer (a chunk object cut short or replaced).
        """
        if sums is not None:
            return read_verified(self.store, key, start, end, sums)
        data = self.store.get_range(key, start, end)
        if len(data) != end - start:
            raise TruncatedData(
                self.store.url(key),
                start + len(data),
                f"LTS chunk holds {len(data)} of bytes {start}-{end} (truncated or replaced)",
                "object",
            )
        return data

    def delete(self, key: str) -> None:
        """Delete an object; a missing one is fine (deletes are retried)."""
        with contextlib.suppress(ObjectNotFound):
            self.store.delete(key)

    def delete_segment(self, name: str, cid: str) -> int:
        """Delete every object of one segment creation (its chunks, also unrecorded ones, and metadata)."""
        keys = [info.key for info in self.store.list(self._segment_dir(name, cid))]
        for key in keys:
            self.delete(key)
        return len(keys)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
