"""Patch 0011: the decoder calls of several transcriptions on one Model in one graph.

Each stream keeps its own long-form loop (seek, timestamps, temperature fallback,
prompt); only the decoder's matrix products are shared. On the CPU a graph of two or
more rows goes through other kernels (tinyBLAS) than a single row does, so a stream's
text may round differently from the same stream decoded alone: every differing segment
is reported, and the word error rate between the two must stay within 0.002 of each
other on each input.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infomux import audio, engine
from infomux.engine import Model, TranscribeOptions, Transcript
from infomux.errors import TranscriptionCancelled
from tests.fixtures import loud_click_in_quiet_speech
from tests.wer import wer

pytestmark = pytest.mark.model

PATCH = "0011-decoder-batch-group.patch"


@pytest.fixture(scope="module")
def tiny(_default_model: tuple[Any, str | None]) -> Any:
    ref, reason = _default_model
    if ref is None:
        from tests.require import missing

        missing(reason or "default model not available")
    if PATCH not in engine.build_info()["patches"]:
        pytest.skip(f"this build does not carry patch {PATCH}")
    with Model(ref.path) as model:
        yield model


def _together(
    model: Model, inputs: list[np.ndarray], options: TranscribeOptions
) -> list[Transcript]:
    """Transcribe ``inputs`` at once, one thread each; the results in order."""
    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(lambda samples: model.transcribe(samples, options), inputs))


def _differences(alone: Transcript, together: Transcript) -> list[str]:
    a = [(s.start, s.end, s.text) for s in alone.segments]
    b = [(s.start, s.end, s.text) for s in together.segments]
    return [f"alone {x!r} / together {y!r}" for x, y in zip(a, b, strict=False) if x != y] + (
        [f"{len(a)} segments alone, {len(b)} together"] if len(a) != len(b) else []
    )


def _assert_close(alone: Transcript, together: Transcript, label: str) -> None:
    diffs = _differences(alone, together)
    if diffs:  # reported, and bounded
        print(f"{label}: {len(diffs)} differing segment(s):", *diffs, sep="\n  ")
    assert wer(alone.text, together.text) <= 0.002, (label, diffs)


@pytest.fixture(scope="module")
def inputs(media_dir: Path) -> dict[str, np.ndarray]:
    speech = audio.load_audio(media_dir / "speech_a.wav")
    long = audio.load_audio(media_dir / "long_speech.mp3")
    return {
        "speech_a": speech,  # ~28 s: ends early while the other goes on
        "long_90s": long[: 90 * audio.SAMPLE_RATE],
        "telephone": audio.load_audio(media_dir / "speech_c_8k_mulaw.wav"),
    }


def test_streams_decoded_together_match_each_alone(
    tiny: Model, inputs: dict[str, np.ndarray]
) -> None:
    names = list(inputs)
    alone_opts = TranscribeOptions(n_threads=1, language="en")
    alone = [tiny.transcribe(inputs[n], alone_opts) for n in names]
    together_opts = TranscribeOptions(n_threads=1, language="en", batch_decoder=True)
    together = _together(tiny, [inputs[n] for n in names], together_opts)
    shared = [t.timings["shared_decode_calls"] for t in together]
    # the short one shares its steps with the others; the long one goes on alone after
    assert all(s > 0 for s in shared), shared
    long_index = names.index("long_90s")
    assert shared[long_index] < together[long_index].timings["decode_calls"]
    for name, a, t in zip(names, alone, together, strict=True):
        _assert_close(a, t, name)
    # alone (no other member), a call in the group is computed exactly as outside it
    again = tiny.transcribe(inputs["speech_a"], together_opts)
    assert again.timings["shared_decode_calls"] == 0
    assert [s.text for s in again.segments] == [s.text for s in alone[0].segments]


def test_a_stream_that_falls_back_beside_one_that_does_not(
    tiny: Model, inputs: dict[str, np.ndarray]
) -> None:
    quiet = loud_click_in_quiet_speech(inputs["speech_a"])
    options = TranscribeOptions(n_threads=1, language="en")
    quiet_alone = tiny.transcribe(quiet, options)
    clear_alone = tiny.transcribe(inputs["long_90s"], options)
    assert quiet_alone.timings["fallbacks"] > 0, "the test needs a window that falls back"
    assert clear_alone.timings["fallbacks"] == 0
    batched = TranscribeOptions(n_threads=1, language="en", batch_decoder=True)
    quiet_t, clear_t = _together(tiny, [quiet, inputs["long_90s"]], batched)
    assert quiet_t.timings["shared_decode_calls"] > 0
    assert quiet_t.timings["fallbacks"] > 0
    assert clear_t.timings["fallbacks"] == 0
    _assert_close(clear_alone, clear_t, "clear speech beside a falling-back stream")


def test_cancelling_one_stream_leaves_the_other_whole(
    tiny: Model, inputs: dict[str, np.ndarray]
) -> None:
    options = TranscribeOptions(n_threads=1, language="en", batch_decoder=True)
    alone = tiny.transcribe(inputs["speech_a"], dataclasses.replace(options, batch_decoder=False))
    cancel = threading.Event()
    started = threading.Event()

    def long_one() -> Any:
        def progress(_: int) -> None:
            started.set()

        try:
            return tiny.transcribe(inputs["long_90s"], options, on_progress=progress, cancel=cancel)
        except TranscriptionCancelled as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        cancelled = pool.submit(long_one)
        assert started.wait(60)
        survivor = pool.submit(tiny.transcribe, inputs["speech_a"], options)
        cancel.set()
        assert isinstance(cancelled.result(timeout=120), TranscriptionCancelled)
        result = survivor.result(timeout=120)
    _assert_close(alone, result, "the stream beside a cancelled one")
    # the Model goes on serving batched calls after the cancellation
    assert tiny.transcribe(inputs["speech_a"], options).text == alone.text
