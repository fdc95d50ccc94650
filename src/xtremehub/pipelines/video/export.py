"""A training set from surgery video: the decoded key frames of a time window, written to storage.

:func:`export_key_frames` reads, for each camera, the key frames of ``[start_ns, end_ns]``
through the key-frame index (:meth:`~.reader.VideoHistory.key_frames`: the index records and
those frames' bytes, nothing else), and writes ``<out_url>/<camera>.npz`` (``pictures``, uint8
N x H x W x 3, and ``timestamps_ns``) and ``<out_url>/manifest.json`` (the window, the frames,
the bytes read and the stream cuts read at).

With a ``catalog`` the export is recorded as one job (like ``call_variants(catalog=)``, through
:func:`xtremehub.catalog.lineage.record_run`): its inputs are each camera's frames stream and
key-frame index stream, as ``stream`` datasets whose version is the cut the export read at; its
outputs, the ``.npz`` files and the manifest, become ``derived`` datasets linked to them.

Example:
    >>> import tempfile
    >>> from xtremehub.streams import StreamManager
    >>> from xtremehub.pipelines.video import TestPattern, VideoWriter
    >>> pattern, out = TestPattern(64, 48, gop=4), tempfile.mkdtemp()
    >>> with StreamManager.embedded(tempfile.mkdtemp()) as manager:
    ...     with VideoWriter(manager, "or1", "cam0") as camera:
    ...         for i in range(10):
    ...             unit, key = pattern.encode_next()
    ...             _ = camera.write_frame(unit, timestamp_ns=i * 1000, key_frame=key)
    ...     export = export_key_frames(manager, "or1", ["cam0"], 3000, 9000, out)
    >>> export.key_frames, [u.rsplit("/", 1)[1] for u in export.outputs]
    ({'cam0': 3}, ['cam0.npz', 'manifest.json'])
"""

from __future__ import annotations

import getpass
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from xtremehub import storage
from xtremehub.config import Settings, default_settings
from xtremehub.errors import InvalidStreamArgument
from xtremehub.pipelines.video.reader import VideoHistory
from xtremehub.pipelines.video.writer import index_stream_name
from xtremehub.streams import StreamManager

__all__ = ["KeyFrameExport", "export_key_frames"]

FUNCTION = "xtremehub.pipelines.video:export_key_frames"


@dataclass
class KeyFrameExport:
    """What :func:`export_key_frames` wrote and read.

    Attributes:
        outputs: URLs written (one ``.npz`` per camera, then the manifest).
        key_frames: decoded key frames per camera.
        bytes_read: index and frame bytes fetched from the store.
        cuts: the tail cut (JSON) of each stream read, taken after reading.
        job: the catalog's record of the run (None without a catalog).
    """

    outputs: list[str] = field(default_factory=list)
    key_frames: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    cuts: dict[str, str] = field(default_factory=dict)
    job: Any = None


def _npz(pictures: list[np.ndarray[Any, Any]], timestamps: list[int]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, pictures=np.stack(pictures), timestamps_ns=np.asarray(timestamps, dtype=np.int64))
    return buf.getvalue()


def export_key_frames(
    manager: StreamManager,
    scope: str,
    cameras: Sequence[str],
    start_ns: int,
    end_ns: int,
    out_url: str,
    *,
    catalog: Any = None,
    owner: str | None = None,
    settings: Settings | None = None,
) -> KeyFrameExport:
    """Write the decoded key frames of ``[start_ns, end_ns]`` of each camera (see the module docstring).

    Args:
        manager: the stream manager (embedded or ``tcp://`` server) holding the cameras.
        scope, cameras: where the frames are (each camera's frames stream and its index).
        start_ns, end_ns: the window; it starts at the key frame at or before ``start_ns``.
        out_url: the directory (any storage URL) the ``.npz`` files and ``manifest.json`` go to.
        catalog: a :class:`~xtremehub.catalog.api.CatalogAPI`: record the run as a job reading the
            streams (at the cuts read) and writing the outputs; ``owner`` is who ran it (default:
            the login name).

    Raises:
        InvalidStreamArgument: no camera, an end before the start, or a camera with no key frame
            at or before ``start_ns`` (naming it).
    """
    if not cameras:
        raise InvalidStreamArgument(f"{scope}: export_key_frames needs at least one camera")
    if end_ns < start_ns:
        raise InvalidStreamArgument(f"{scope}: window end {end_ns} ns is before its start {start_ns} ns")
    started = datetime.now(tz=UTC)
    settings = settings or default_settings()
    base = out_url.rstrip("/")
    export = KeyFrameExport()
    frames: dict[str, list[int]] = {}
    for camera in cameras:
        history = VideoHistory(manager, scope, camera)
        pictures: list[np.ndarray[Any, Any]] = []
        timestamps: list[int] = []
        for batch in history.key_frames(start_ns, end_ns):
            pictures += [d.picture for d in batch]
            timestamps += [d.timestamp_ns for d in batch]
        url = f"{base}/{camera}.npz"
        storage.put(url, _npz(pictures, timestamps), settings=settings)
        export.outputs.append(url)
        export.key_frames[camera] = len(timestamps)
        export.bytes_read += history.bytes_read
        frames[camera] = timestamps
        for stream in (camera, index_stream_name(camera)):  # the versions read: cuts after reading
            export.cuts[f"{scope}/{stream}"] = manager.get_tail_cut(scope, stream).to_json()
    manifest = {
        "scope": scope,
        "window_ns": [start_ns, end_ns],
        "cameras": {c: {"key_frames": len(t), "timestamps_ns": t, "file": f"{c}.npz"} for c, t in frames.items()},
        "bytes_read": export.bytes_read,
        "stream_cuts": {name: json.loads(cut) for name, cut in export.cuts.items()},
    }
    export.outputs.append(f"{base}/manifest.json")
    storage.put(export.outputs[-1], json.dumps(manifest, indent=1).encode(), settings=settings)
    if catalog is not None:
        export.job = _record(catalog, export, scope, frames, (start_ns, end_ns), started, owner, settings)
    return export


def _record(
    catalog: Any,
    export: KeyFrameExport,
    scope: str,
    frames: dict[str, list[int]],
    window: tuple[int, int],
    started: datetime,
    owner: str | None,
    settings: Settings,
) -> Any:
    """The run as one catalog job: the streams (at their cuts) -> the outputs."""
    from xtremehub.catalog.extract import stream_url
    from xtremehub.catalog.lineage import record_run
    from xtremehub.compute.lineage import ReadRef

    inputs = []
    for camera, timestamps in frames.items():
        span = f"key frames {timestamps[0]}-{timestamps[-1]} ns ({len(timestamps)})" if timestamps else "no key frame"
        for stream, desc in ((camera, span), (index_stream_name(camera), f"index of {span}")):
            inputs.append(ReadRef(stream_url(scope, stream), (desc,), version=export.cuts[f"{scope}/{stream}"]))
    return record_run(
        catalog, FUNCTION, inputs=inputs, outputs=export.outputs, owner=owner or getpass.getuser(),
        started=started, parameters={"scope": scope, "cameras": list(frames), "start_ns": window[0],
                                     "end_ns": window[1]},
        telemetry={"key_frames": sum(export.key_frames.values()), "bytes_read": export.bytes_read},
        settings=settings,
    )  # fmt: skip
