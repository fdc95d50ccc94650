"""The surgery-video export records its lineage: streams (at the cuts read) -> job -> outputs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from xtremehub import storage
from xtremehub.catalog import open_catalog
from xtremehub.catalog.store.catalog import SqlCatalog
from xtremehub.errors import InvalidStreamArgument
from xtremehub.pipelines.video import TestPattern, VideoWriter, export_key_frames
from xtremehub.streams import StreamManager

GOP = 5
T0 = 1_000_000_000
STEP = 40_000_000  # 25 fps


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[SqlCatalog]:
    with open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        yield catalog


def record(manager: StreamManager, camera: str, patterns: dict[str, TestPattern], first: int, count: int) -> None:
    pattern = patterns.setdefault(camera, TestPattern(64, 48, gop=GOP))
    with VideoWriter(manager, "or1", camera) as writer:
        for i in range(first, first + count):
            unit, key = pattern.encode_next()
            writer.write_frame(unit, timestamp_ns=T0 + i * STEP, key_frame=key)


def test_the_export_links_its_outputs_to_the_streams_at_their_cuts(
    manager: StreamManager, cat: SqlCatalog, tmp_path: Path
) -> None:
    patterns: dict[str, TestPattern] = {}
    for camera in ("cam0", "cam1"):
        record(manager, camera, patterns, 0, 20)  # key frames at 0, 5, 10, 15
    out = f"file://{tmp_path / 'set1'}"
    export = export_key_frames(manager, "or1", ["cam0", "cam1"], T0 + 6 * STEP, T0 + 16 * STEP, out,
                               catalog=cat, owner="surgeon")  # fmt: skip
    # the outputs: the decoded key frames 5, 10, 15 of each camera, bit for bit their frame numbers
    assert export.key_frames == {"cam0": 3, "cam1": 3}
    with np.load(io.BytesIO(storage.get(f"{out}/cam0.npz"))) as npz:
        assert npz["pictures"].shape == (3, 48, 64, 3)
        assert list(npz["timestamps_ns"]) == [T0 + k * STEP for k in (5, 10, 15)]
        assert [TestPattern.read_number(p) for p in npz["pictures"]] == [5, 10, 15]
    manifest = json.loads(storage.get(f"{out}/manifest.json"))
    assert manifest["cameras"]["cam1"]["key_frames"] == 3
    assert set(manifest["stream_cuts"]) == {"or1/cam0", "or1/cam0.index", "or1/cam1", "or1/cam1.index"}

    # the job: the four streams in, at the cuts read (version 1), the outputs derived from them
    job = cat.get_job(export.job.job_id)
    assert job.function == "xtremehub.pipelines.video:export_key_frames"
    assert (job.owner, job.status, job.parameters["cameras"]) == ("surgeon", "succeeded", ["cam0", "cam1"])
    assert job.telemetry["key_frames"] == 6
    streams = {cat.get(r.dataset_id).url: r for r in job.inputs}
    assert set(streams) == {f"xhub-stream://or1/{s}" for s in ("cam0", "cam0.index", "cam1", "cam1.index")}
    cam0 = cat.get(streams["xhub-stream://or1/cam0"].dataset_id)
    assert cam0.kind == "stream"
    (v1,) = cat.versions(cam0.id)
    assert json.loads(v1.source_version) == manifest["stream_cuts"]["or1/cam0"]
    assert v1.facts["bytes"] == sum(manifest["stream_cuts"]["or1/cam0"]["positions"].values()) > 0
    assert streams["xhub-stream://or1/cam0"].version == 1
    assert streams["xhub-stream://or1/cam0"].slices == (f"key frames {T0 + 5 * STEP}-{T0 + 15 * STEP} ns (3)",)
    outputs = {cat.get(d).url: cat.get(d) for d in job.outputs}
    assert set(outputs) == {f"{out}/cam0.npz", f"{out}/cam1.npz", f"{out}/manifest.json"}
    assert {d.kind for d in outputs.values()} == {"derived"}
    up = cat.lineage(outputs[f"{out}/cam1.npz"].id, direction="up")
    assert {d.url for d in up.datasets} >= {"xhub-stream://or1/cam1", "xhub-stream://or1/cam1.index"}
    assert [j.job_id for j in up.jobs] == [job.job_id]

    # more video, a second export: a new cut is a new version of the stream; the first job keeps v1
    record(manager, "cam0", patterns, 20, 10)
    again = export_key_frames(manager, "or1", ["cam0"], T0 + 20 * STEP, T0 + 29 * STEP, f"file://{tmp_path / 'set2'}",
                              catalog=cat, owner="surgeon")  # fmt: skip
    assert again.key_frames == {"cam0": 2}
    second = cat.get_job(again.job.job_id)
    versions = {cat.get(r.dataset_id).url: r.version for r in second.inputs}
    assert versions == {"xhub-stream://or1/cam0": 2, "xhub-stream://or1/cam0.index": 2}
    assert [v.number for v in cat.versions(cam0.id)] == [1, 2]
    assert cat.get_job(job.job_id).inputs == job.inputs
    down = cat.lineage(cam0.id, direction="down")
    assert {j.job_id for j in down.jobs} == {job.job_id, second.job_id}


def test_someone_elses_stream_keeps_the_cut_with_the_input(tmp_path: Path, cat: SqlCatalog) -> None:
    with StreamManager.embedded(tmp_path / "streams") as manager:
        record(manager, "cam0", {}, 0, 10)
        cat.register("xhub-stream://or1/cam0", actor="or-admin", kind="stream", facts={}, source_version="v0")
        export = export_key_frames(manager, "or1", ["cam0"], T0, T0 + 9 * STEP, str(tmp_path / "out"),
                                   catalog=cat, owner="student")  # fmt: skip
    ref = next(r for r in cat.get_job(export.job.job_id).inputs if cat.get(r.dataset_id).url.endswith("/cam0"))
    assert ref.version == 1  # no new version of the admin's dataset by the student
    assert ref.slices[-1] == f"cut {export.cuts['or1/cam0']}"


def test_bad_windows_are_refused(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "streams") as manager:
        record(manager, "cam0", {}, 0, 5)
        with pytest.raises(InvalidStreamArgument, match="before its start"):
            export_key_frames(manager, "or1", ["cam0"], T0 + STEP, T0, str(tmp_path / "o"))
        with pytest.raises(InvalidStreamArgument, match="at least one camera"):
            export_key_frames(manager, "or1", [], T0, T0 + STEP, str(tmp_path / "o"))
        with pytest.raises(InvalidStreamArgument, match="before the first key frame"):
            export_key_frames(manager, "or1", ["cam0"], 0, T0, str(tmp_path / "o"))
