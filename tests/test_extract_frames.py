"""extract_frames (issue 12.3): frames at an interval or scene changes from the shared MP4,
JPEGs that decode, times in order, a clear failure on audio-only input; the built-in
transcribe+frames pipeline runs it beside extract_audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infomux import pipeline
from infomux.errors import StepError
from tests.require import media_file


def run_frames(path: Path, **options: object) -> Path:
    config = {"pipeline": "transcribe+frames", **options}
    job, run_dir = pipeline.create_run(
        path, pipeline="transcribe+frames", config=config, only=["extract_frames"]
    )
    pipeline.execute(job, run_dir)
    return run_dir


def test_interval_frames_from_the_mp4() -> None:
    import av

    video = media_file("speech_a_video.mp4")  # 27.9 s, 320x240, 15 fps
    run_dir = run_frames(video, every="5s")
    index = json.loads((run_dir / "frames.json").read_text())
    frames = index["frames"]
    assert len(frames) == 6  # 0, 5, 10, 15, 20, 25 s
    times = [f["time"] for f in frames]
    assert times == sorted(times) and times[0] == 0.0
    assert all(abs(t - 5 * i) < 0.1 for i, t in enumerate(times))
    for entry in frames:
        path = run_dir / entry["file"]
        assert path.stat().st_size == entry["bytes"]
        with av.open(str(path)) as image:
            frame = next(image.decode(video=0))
            assert (frame.width, frame.height) == (entry["width"], entry["height"]) == (320, 240)
    record = json.loads((run_dir / "job.json").read_text())["steps"][0]
    assert record["outputs"] == ["frames.json", "frames"]
    assert record["metadata"]["frames"] == 6


def test_scene_mode_and_scaling() -> None:
    video = media_file("speech_a_video.mp4")
    run_dir = run_frames(video, scene=0.0001, max_width=160)
    frames = json.loads((run_dir / "frames.json").read_text())["frames"]
    assert frames and frames[0]["width"] == 160 and frames[0]["height"] == 120
    times = [f["time"] for f in frames]
    assert times == sorted(times)


def test_audio_only_input_fails_clearly() -> None:
    with pytest.raises(StepError, match="no video stream"):
        run_frames(media_file("speech_a_44k_stereo.mp3"))


def test_transcribe_plus_frames_runs_frames_beside_audio() -> None:
    p = pipeline.builtin_pipelines()["transcribe+frames"]
    assert p.node("extract_frames").needs == ()
    assert p.node("transcribe").needs == ("extract_audio",)
