"""Parallel streams on one model: a whisper_state per call, and a recording cut at silences.

Real whisper.cpp inference with the real tiny.en model on the shared media.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infomux import audio
from infomux.engine import Model, TranscribeOptions, Transcript
from infomux.errors import EngineError
from infomux.streams import plan_streams
from infomux.vad import SpeechSpan, VadModel, best_gap, find_cuts
from tests.wer import normalise, wer

RATE = 16000


@pytest.fixture(scope="module")
def tiny(_default_model: tuple[Any, str | None]) -> Iterator[Model]:
    ref, reason = _default_model
    if ref is None:
        from tests.require import missing

        missing(reason or "default model not available")
    with Model(ref.path) as model:
        yield model


@pytest.fixture(scope="module")
def long_samples(media_dir: Path) -> np.ndarray:
    return audio.load_audio(media_dir / "long_speech.mp3")


@pytest.fixture(scope="module")
def excerpt(long_samples: np.ndarray) -> np.ndarray:
    """The first 150 s of long_speech.mp3: long enough for two parts of at least 60 s."""
    return np.ascontiguousarray(long_samples[: 150 * RATE])


def _texts(transcript: Transcript) -> list[str]:
    return [s.text for s in transcript.segments]


# --------------------------------------------------------------------------- planning


def test_plan_streams_shares_the_threads() -> None:
    assert plan_streams(2, 10) == plan_streams(2, 2)
    assert plan_streams(2, 10).streams == 2 and plan_streams(2, 10).threads_per_stream == 1
    assert plan_streams(2, 1).streams == 1 and plan_streams(2, 1).threads_per_stream == 2
    assert plan_streams(16, 10).streams == 4 and plan_streams(16, 10).threads_per_stream == 4
    assert plan_streams(8, 3, max_streams=2).streams == 2
    assert plan_streams(0, 5).threads_per_stream == 1


def test_best_gap_prefers_a_pause_near_the_target() -> None:
    spans = [SpeechSpan(0, 10), SpeechSpan(11.0, 20), SpeechSpan(20.3, 30), SpeechSpan(30.7, 40)]
    # pauses of 1.0 s (10-11) and 0.7 s (30-30.7); the one nearer 29 wins
    assert best_gap(spans, 0, 40, 29) == pytest.approx(30.35)
    assert best_gap(spans, 0, 40, 12) == pytest.approx(10.5)
    # no pause: the longest gap above min_gap
    short = [SpeechSpan(0, 10), SpeechSpan(10.3, 20), SpeechSpan(20.5, 30)]
    assert best_gap(short, 0, 30, 10) == pytest.approx(20.25)
    # gaps too short, or speech right through: no cut
    assert best_gap([SpeechSpan(0, 10), SpeechSpan(10.1, 20)], 0, 20, 10) is None
    # no speech in range: cut at the target
    assert best_gap([], 0, 20, 10) == 10


# --------------------------------------------------------------------------- states


@pytest.mark.model
def test_one_model_from_four_threads_gives_each_its_own_transcript(
    tiny: Model, long_samples: np.ndarray
) -> None:
    clips = [
        np.ascontiguousarray(long_samples[s * RATE : (s + 20) * RATE]) for s in (0, 60, 120, 180)
    ]
    options = TranscribeOptions(n_threads=1, language="en")
    alone = [tiny.transcribe(clip, options) for clip in clips]
    assert len({t.text for t in alone}) == 4, "the clips must differ for this to prove anything"

    together: list[Transcript | None] = [None] * 4
    errors: list[BaseException] = []
    all_in = threading.Barrier(4, timeout=60)

    def work(i: int) -> None:
        first = True

        def on_progress(_: int) -> None:
            nonlocal first
            if first:  # every call is inside the model before any finishes
                first = False
                all_in.wait()

        try:
            together[i] = tiny.transcribe(clips[i], options, on_progress=on_progress)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert tiny.n_states >= 4, "the four calls did not each get a state"
    for mine, reference in zip(together, alone, strict=True):
        assert mine is not None and _texts(mine) == _texts(reference)


@pytest.mark.model
def test_callback_errors_come_back_as_themselves(tiny: Model, media_dir: Path) -> None:
    samples = audio.load_audio(media_dir / "speech_c_8k_mulaw.wav")

    def boom(_: int) -> None:
        raise RuntimeError("my own error")

    with pytest.raises(RuntimeError, match="my own error") as info:
        tiny.transcribe(samples, TranscribeOptions(n_threads=2), on_progress=boom)
    assert not isinstance(info.value, EngineError)

    def reenter(_: Any) -> None:
        tiny.transcribe(samples[:RATE], TranscribeOptions(n_threads=1))

    with pytest.raises(RuntimeError, match="inside a transcription of this model"):
        tiny.transcribe(samples, TranscribeOptions(n_threads=2), on_segment=reenter)

    def close_inside(_: Any) -> None:
        tiny.close()

    with pytest.raises(RuntimeError, match="inside a transcription of this model"):
        tiny.transcribe(samples, TranscribeOptions(n_threads=2), on_segment=close_inside)
    # the model still works after all of that
    assert tiny.transcribe(samples, TranscribeOptions(n_threads=2)).text


# --------------------------------------------------------------------------- cut at silences


@pytest.mark.model
def test_cuts_fall_in_silence_and_are_deterministic(excerpt: np.ndarray) -> None:
    with VadModel() as vad:
        cuts = find_cuts(vad, excerpt, 2)
        assert cuts == find_cuts(vad, excerpt, 2)
        assert len(cuts) == 1 and 45 <= cuts[0] <= 105
        # the cut is in a stretch Silero hears no speech in, over the whole excerpt
        spans = vad.speech(excerpt)
    assert not any(s.start < cuts[0] < s.end for s in spans)
    # too short to cut
    with VadModel() as vad:
        assert find_cuts(vad, excerpt[: 100 * RATE], 2) == []


@pytest.mark.model
def test_split_transcription_matches_the_uncut_one(
    tiny: Model, excerpt: np.ndarray, references: dict[str, Any]
) -> None:
    whole = tiny.transcribe(
        excerpt, TranscribeOptions(n_threads=2, language="en", word_timestamps=True)
    )
    options = TranscribeOptions(n_threads=2, language="en", streams=2, word_timestamps=True)
    first = tiny.transcribe(excerpt, options)
    second = tiny.transcribe(excerpt, options)
    assert first.streams == 2 and first.threads_per_stream == 1 and len(first.cuts) == 1
    assert _texts(first) == _texts(second), "the same input gave different text"
    cut = first.cuts[0]

    # no word is cut: the words the uncut transcript has around the cut are all there
    # in the split one, around the cut (the part after it starts without the previous
    # text as prompt, so further on tiny.en may word things differently)
    def near(t: Transcript, reach: float) -> set[str]:
        return {
            normalise(w.text) for s in t.segments for w in s.words if abs(w.start - cut) < reach
        }

    assert near(whole, 1.5) and near(whole, 1.5) <= near(first, 3.0)
    # times are on the whole recording's clock, in order
    starts = [s.start for s in first.segments]
    assert starts == sorted(starts) and first.segments[-1].end > cut
    assert any(s.start >= cut for s in first.segments)
    assert all(s.end <= cut + 0.5 or s.start >= cut - 0.5 for s in first.segments)
    # the first part is conditioned as in the uncut run up to its last window
    same = [s.text for s in whole.segments if s.end < cut - 30]
    assert same and _texts(first)[: len(same)] == same
    assert wer(whole.text, first.text) <= 0.15
    assert first.timings["encode_calls"] >= 6


@pytest.mark.model
def test_cancel_stops_every_part(tiny: Model, excerpt: np.ndarray) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def on_progress(pct: int) -> None:
        seen.append(pct)
        cancel.set()

    from infomux.errors import TranscriptionCancelled

    with pytest.raises(TranscriptionCancelled):
        tiny.transcribe(
            excerpt,
            TranscribeOptions(n_threads=2, language="en", streams=2),
            on_progress=on_progress,
            cancel=cancel,
        )
    assert tiny._native_model.n_busy == 0, "a part kept running"


@pytest.mark.model
def test_sigint_stops_every_stream(real_model: Any, media_dir: Path, tmp_path: Path) -> None:
    """Ctrl-C during a split transcription: KeyboardInterrupt, every part stopped, within a
    bound relative to one encoder pass measured in the same process."""
    code = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        import numpy as np
        from infomux import audio
        from infomux.engine import Model, TranscribeOptions
        m = Model({str(real_model.path)!r})
        samples = audio.load_audio({str(media_dir / "long_speech.mp3")!r})[: 150 * 16000]
        t = time.monotonic()
        probe = m.transcribe(samples[: 5 * 16000], TranscribeOptions(n_threads=1, language="en"))
        window = time.monotonic() - t
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            m.transcribe(samples, TranscribeOptions(n_threads=2, language="en", streams=2))
        except KeyboardInterrupt:
            sys.stderr.write("window %.3f stopped %.3f busy %d\\n"
                             % (window, time.monotonic() - t - 1.0, m._native_model.n_busy))
            sys.exit(7)
        """
    )
    env = {**os.environ, "INFOMUX_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 7, out.stderr
    line = out.stderr.strip().splitlines()[-1].split()
    window, stopped, busy = float(line[1]), float(line[3]), int(line[5])
    assert busy == 0
    # one 1-thread window per part may still finish, plus the 0.1 s wait loop
    assert stopped < 3 * window + 0.5, out.stderr


# --------------------------------------------------------------------------- the CLI


def _infomux(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infomux", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.model
def test_run_inputs_side_by_side_prints_in_input_order(
    real_model: Any, media_dir: Path, tmp_path: Path
) -> None:
    inputs = [
        media_dir / "speech_a.wav",
        media_dir / "not_media.mp3",
        media_dir / "speech_c_8k_mulaw.wav",
        media_dir / "silence_10s.wav",
    ]
    proc = _infomux("run", "--streams", "2", "--threads", "2", *map(str, inputs))
    assert proc.returncode == 1  # one input failed
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stderr
    jobs = [json.loads((Path(p) / "job.json").read_text()) for p in lines]
    assert [Path(j["input"]["path"]).name for j in jobs] == [
        "speech_a.wav",
        "speech_c_8k_mulaw.wav",
        "silence_10s.wav",
    ]
    for job in jobs:
        assert job["status"] == "completed"
        assert job["options"]["n_threads"] == 1
        meta = job["steps"][1]["metadata"]
        assert meta["streams"] == 1 and meta["threads_per_stream"] == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "not_media.mp3" in errors[0]
    # the failed input has its own failed run, the others are untouched by it
    runs = Path(os.environ["INFOMUX_DATA_DIR"]) / "runs"
    statuses = sorted(json.loads((d / "job.json").read_text())["status"] for d in runs.iterdir())
    assert statuses == ["completed", "completed", "completed", "failed"]


@pytest.mark.model
def test_run_records_the_cut_and_resume_finishes_it(
    real_model: Any, excerpt: np.ndarray, tmp_path: Path
) -> None:
    wav = tmp_path / "excerpt.wav"
    audio.write_wav(wav, excerpt)
    proc = _infomux("run", "--streams", "2", "--threads", "2", "--language", "en", str(wav))
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip())
    job = json.loads((run_dir / "job.json").read_text())
    meta = job["steps"][1]["metadata"]
    assert meta["streams"] == 2 and len(meta["cut_points"]) == 1
    assert job["options"]["streams"] == 2
    text = (run_dir / "transcript.txt").read_text()

    # lose the transcripts, resume: the same cut, the same text
    for name in ("transcript.txt", "transcript.srt"):
        (run_dir / name).unlink()
    resumed = _infomux("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads((run_dir / "job.json").read_text())
    assert again["steps"][1]["metadata"]["cut_points"] == meta["cut_points"]
    assert (run_dir / "transcript.txt").read_text() == text
