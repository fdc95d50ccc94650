"""The inflating half of the one pass (:mod:`~xtremehub.connectors.codecs.gzip_stream`), free of XtremeHub imports.

rapidgzip inflates the object, offering checkpoints as it goes, and exports its index
thinned to the checkpoints kept. :mod:`~xtremehub.connectors.codecs.gzip_stream` runs
:func:`inflate` in a thread, or this file as a script in a child process (by its path,
``python -S``: the child imports only the standard library and rapidgzip, not the
``xtremehub`` package, which takes 0.1 s of CPU to import). The child reads the job
(``(size, chunk_size, parallel, spacing, part, behind, ring_fd, slots, credits_fd)``) and the
object's ``size`` bytes from stdin (raw, after the pickled job). The text goes into a ring of
``slots`` buffers in memory shared with the parent (:class:`TextRing`, the file descriptor
``ring_fd``), not through a pipe (1.4 GB of pipe writes cost the child 0.2-0.3 s per GiB of
FASTQ); it writes to (a copy of) stdout pickled ``("text", offsets, slot, length)`` per piece,
then ``("index", blob)`` or ``("error", why)``, and the parent returns each slot it is done
with as one byte on the pipe ``credits_fd``.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["READ", "PipeReader", "TextRing", "inflate", "thin_gzidx"]

READ = 4 * 1024 * 1024  # decompressed bytes per piece


def inflate(
    raw: io.RawIOBase,
    *,
    chunk_size: int,
    parallel: int,
    spacing: int,
    buffer: Callable[[], memoryview],
    put: Callable[[list[int], memoryview], None],
    stop: Callable[[], bool],
) -> bytes:
    """rapidgzip over the object read from ``raw``: ``put(new checkpoint offsets, text)`` per
    piece, an empty piece last; returns the exported index (thinned for ``spacing``).

    Each piece is read into ``buffer()`` (:data:`READ` bytes; ``put`` gets the part filled):
    reading into buffers that are reused, instead of a new ``bytes`` per piece, saves a fifth
    of the pass's CPU (1 GiB of FASTQ, one thread: 1.7-1.8 CPU s against 2.2-2.3; the fresh
    4 MiB allocations fault their pages in every time).
    """
    import rapidgzip

    blob = io.BytesIO()
    announced = 0
    gz = rapidgzip.RapidgzipFile(raw, parallelization=parallel, chunk_size=chunk_size)
    try:
        while not stop():
            view = buffer()
            n = gz.readinto(view)
            offsets = sorted(gz.available_block_offsets().values())
            put(offsets[announced:], view[:n])
            announced = len(offsets)
            if not n:
                gz.export_index(blob)
                break
    finally:
        gz.close()
    return thin_gzidx(blob.getvalue(), spacing)


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


class PipeReader(io.RawIOBase):
    """The object as the parent pipes it (its ``size`` bytes, raw), a read-only file seekable
    back over the last ``behind`` parts of ``part`` bytes (rapidgzip seeks back up to about
    a chunk, 1.2 MiB measured, and to the end only to learn the size).

    Each part is read straight into a buffer reused from a part dropped: no framing, no
    intermediate copies (receiving framed messages cost the child three copies of the object).
    """

    def __init__(self, pipe: io.RawIOBase, size: int, *, part: int, behind: int) -> None:
        super().__init__()
        self._pipe = pipe
        self._size, self._pos = size, 0
        self._end: int | None = None  # where the stream ended, if before ``size``
        self._part, self._behind = part, behind
        self._parts: dict[int, memoryview] = {}
        self._free: list[bytearray] = []  # buffers of parts dropped, received into again
        self._received = 0  # parts received so far

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        k, at = divmod(self._pos, self._part)
        while self._received <= k and self._end is None and self._pos < self._size:
            self._receive()
        if self._end is not None and self._pos >= self._end:
            raise OSError(f"the object ends at byte {self._end} of {self._size}")
        if self._pos >= self._size or not len(view):
            return 0
        if (piece := self._parts.get(k)) is None:
            raise OSError(f"cannot read back at byte {self._pos}: more than {self._behind} parts behind")
        n = min(len(view), len(piece) - at)
        view[:n] = piece[at : at + n]
        self._pos += n
        return n

    def _receive(self) -> None:
        """The next part, into the buffer of the one dropped (new pages fault in, reused ones do not)."""
        buf = self._free.pop() if self._free else bytearray(self._part)
        start = self._received * self._part
        want, n = min(self._part, self._size - start), 0
        view = memoryview(buf)
        while n < want and (got := self._pipe.readinto(view[n:want])):
            n += got
        view.release()
        if n < want:  # the stream ended early: what came can be read, then an error at its end
            self._end = start + n
        self._parts[self._received] = memoryview(buf)[:n]
        if (dropped := self._parts.pop(self._received - self._behind - 1, None)) is not None:
            self._free.append(dropped.obj)  # type: ignore[arg-type]  # the bytearray under the view
            dropped.release()
        self._received += 1


class TextRing:
    """The child's text buffers: ``slots`` pieces of :data:`READ` bytes in memory shared
    with the parent (a file descriptor it passed), handed out in turn. A slot is reused
    only after the parent has returned it, one byte on the ``credits`` pipe per piece it
    has scanned; the messages only say which slot holds how many bytes."""

    def __init__(self, fd: int, slots: int, credits: int) -> None:
        self._map = mmap.mmap(fd, slots * READ)
        self._view = memoryview(self._map)
        self._slots, self._credits = slots, credits
        self._next = 0  # pieces handed out so far
        self._free = slots  # slots free without waiting for the parent

    def slot(self) -> int:
        """The slot of the piece last handed out."""
        return (self._next - 1) % self._slots

    def buffer(self) -> memoryview:
        """The next slot, once the parent has returned it."""
        while not self._free:
            got = os.read(self._credits, self._slots)
            if not got:
                raise BrokenPipeError("the parent stopped returning text buffers")
            self._free += len(got)
        self._free -= 1
        at = self._next % self._slots * READ
        self._next += 1
        return self._view[at : at + READ]


def main() -> None:
    """Entry of the child process: the job from stdin, messages to (a copy of) stdout."""
    conn = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stray prints must not mix into the messages
    with Connection(os.dup(0), writable=False) as jobs:
        size, chunk_size, parallel, spacing, part, behind, ring_fd, slots, credits = jobs.recv()
    pipe = io.FileIO(0, "rb", closefd=False)  # the object's bytes follow the job (read exactly: nothing buffered)

    def put(offsets: list[int], text: memoryview) -> None:
        conn.send(("text", offsets, ring.slot(), len(text)))

    try:
        ring = TextRing(ring_fd, slots, credits)
        raw = PipeReader(pipe, size, part=part, behind=behind)
        blob = inflate(
            raw,
            chunk_size=chunk_size,
            parallel=parallel,
            spacing=spacing,
            buffer=ring.buffer,
            put=put,
            stop=lambda: False,
        )
    except BrokenPipeError:
        return  # the parent stopped reading
    except BaseException as exc:  # reported to the parent, which falls back to two passes
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("index", blob))
    conn.close()


if __name__ == "__main__":
    main()
