"""Issue 14 end to end with the real model: one caption run of the MP4 and the MKV
(module-scoped, reused by every test here): layout rules on real transcripts, the
captioned files, search, reindex, --no-keep-audio and resume."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import jsonschema
import pysubs2
import pytest
import webvtt

from tests.conftest import REPO, SRC
from tests.require import media_file, missing

pytestmark = pytest.mark.model

LIMITS = {"chars": 42, "lines": 2, "min": 0.7, "max": 7.0}


@pytest.fixture(scope="module")
def caption_env(
    _default_model: tuple[Any, str | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    ref, reason = _default_model
    if ref is None:
        missing(reason or "default model not available")
    data = tmp_path_factory.mktemp("captions") / "data"
    env = {
        **os.environ,
        "INFOMUX_DATA_DIR": str(data),
        "INFOMUX_CONFIG": str(data / "none.toml"),
        "INFOMUX_WHISPER_MODEL": str(ref.path),
    }
    # the subprocesses import the infomux these tests import (the installed one in CI)
    if SRC == REPO / "src":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    inputs = [media_file("speech_a_video.mp4"), media_file("two_audio_streams.mkv")]
    proc = subprocess.run(
        [sys.executable, "-m", "infomux", "run", "-q", "--pipeline", "caption",
         "--no-keep-audio", *map(str, inputs)],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    runs = [Path(line) for line in proc.stdout.splitlines()]
    assert len(runs) == 2
    yield {"env": env, "data": data, "mp4": runs[0], "mkv": runs[1], "inputs": inputs}


SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "src/infomux/schema/job.schema.json").read_text()
)


def infomux(env: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infomux", *args],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip


def json_words(run_dir: Path) -> list[str]:
    data = json.loads((run_dir / "transcript.json").read_text())
    return [w["text"].strip() for s in data["segments"] for w in s.get("words", [])]


@pytest.mark.parametrize("which", ["mp4", "mkv"])
def test_layout_rules_on_real_transcripts(caption_env: dict[str, Any], which: str) -> None:
    run_dir = caption_env[which]
    subs = pysubs2.load(str(run_dir / "transcript.srt"))
    vtt = list(webvtt.read(str(run_dir / "transcript.vtt")))
    assert len(subs) == len(vtt) >= 2
    words: list[str] = []
    for event, cue in zip(subs, vtt, strict=True):
        lines = event.plaintext.split("\n")
        assert lines == cue.text.split("\n")
        assert 1 <= len(lines) <= LIMITS["lines"]
        assert all(len(line) <= LIMITS["chars"] for line in lines), lines
        seconds = (event.end - event.start) / 1000
        assert LIMITS["min"] - 1e-3 <= seconds <= LIMITS["max"] + 1e-3, event
        words += " ".join(lines).split()
    assert all(a.end <= b.start for a, b in itertools.pairwise(subs))
    assert words == json_words(run_dir)  # every word, once, in order
    stats = json.loads((run_dir / "job.json").read_text())["steps"][1]["metadata"]["subtitles"]
    assert stats["cues"] == len(subs) and stats["too_long"] == stats["long_lines"] == 0
    assert 0 < stats["max_cps"] < 30


@pytest.mark.parametrize(("which", "codec"), [("mp4", "mov_text"), ("mkv", "srt")])
def test_captioned_files(caption_env: dict[str, Any], which: str, codec: str) -> None:
    run_dir = caption_env[which]
    src = caption_env["inputs"][0 if which == "mp4" else 1]
    out = run_dir / f"captioned.{which}"
    with av.open(str(out)) as c:
        [sub] = c.streams.subtitles
        assert sub.codec_context.name == codec and sub.metadata["language"] == "eng"
        texts = [bytes(p) for p in c.demux(sub) if p.size > 2]
    assert len(texts) == len(pysubs2.load(str(run_dir / "transcript.srt")))

    def copied(path: Path) -> list[list[bytes]]:
        with av.open(str(path)) as c:
            keep = [s for s in c.streams if s.type in ("video", "audio")]
            by: dict[int, list[bytes]] = {s.index: [] for s in keep}
            for p in c.demux(*keep):
                if p.size:
                    by[p.stream.index].append(bytes(p))
            return [by[i] for i in sorted(by)]

    assert copied(src) == copied(out)


def test_search_finds_a_spoken_word(caption_env: dict[str, Any]) -> None:
    env, mp4 = caption_env["env"], caption_env["mp4"]
    proc = infomux(env, "search", "--json", "bridge")
    assert proc.returncode == 0, proc.stderr
    hits = [h for h in json.loads(proc.stdout) if h["run_id"] == mp4.name]
    assert len(hits) == 1
    data = json.loads((mp4 / "transcript.json").read_text())
    word = next(
        w for s in data["segments"] for w in s.get("words", []) if "bridge" in w["text"].lower()
    )
    assert hits[0]["start_ms"] <= word["start"] * 1000 <= hits[0]["end_ms"]
    assert "[bridge]" in hits[0]["snippet"].lower()
    # reindex after deleting the database finds it again
    for path in caption_env["data"].glob("infomux.db*"):
        path.unlink()
    assert infomux(env, "reindex").stdout.startswith("2 runs")
    again = json.loads(infomux(env, "search", "--json", "--pipeline", "caption", "bridge").stdout)
    assert [h["start_ms"] for h in again] == [hits[0]["start_ms"]]


def test_dropped_audio_is_recorded_and_resume_decodes_again(caption_env: dict[str, Any]) -> None:
    env, run_dir = caption_env["env"], caption_env["mkv"]
    job = json.loads((run_dir / "job.json").read_text())
    assert not (run_dir / "audio.wav").exists() and "audio.wav" not in job["artifacts"]
    assert job["steps"][0]["metadata"]["dropped"] == ["audio.wav"]
    assert job["history"][-1]["event"] == "dropped"
    jsonschema.validate(job, SCHEMA)  # the dropped event is part of the contract
    # complete: nothing to do, nothing decoded
    assert infomux(env, "resume", "-q", run_dir.name).returncode == 0
    assert json.loads((run_dir / "job.json").read_text())["steps"][0]["attempts"] == []
    # the transcript gone: transcribe needs the audio, so the input is decoded again
    (run_dir / "transcript.txt").unlink()
    proc = infomux(env, "resume", "-q", run_dir.name)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((run_dir / "job.json").read_text())
    assert after["status"] == "completed"
    assert [len(s["attempts"]) for s in after["steps"]][:2] == [1, 1]
    assert (run_dir / "transcript.txt").is_file() and not (run_dir / "audio.wav").exists()
    jsonschema.validate(after, SCHEMA)


def test_audio_only_input_fails_the_caption_step(caption_env: dict[str, Any]) -> None:
    proc = infomux(
        caption_env["env"], "run", "-q", "--pipeline", "caption", str(media_file("speech_a.m4a"))
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("Error: caption: ") and "no video stream" in proc.stderr
