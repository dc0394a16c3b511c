"""The native engine: the extension module and its typed wrapper, infomux.engine.

Load and error paths use whisper.cpp's ``for-tests`` models (random weights: their
text is never asserted). Transcription text is asserted with the real tiny.en model.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from infomux import _whisper
from infomux._version import __version__
from infomux.engine import Model, TranscribeOptions, build_info
from infomux.errors import EngineError, ModelError, ModelNotFoundError, TranscriptionCancelled
from tests.fixtures import loaded_model, whisper_cpp_dir
from tests.wer import wer

__all__ = ["loaded_model", "whisper_cpp_dir"]  # fixtures

SR = 16000


def read_wav(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def test_model(whisper_cpp_dir: Path) -> Model:
    model = Model(whisper_cpp_dir / "models" / "for-tests-ggml-tiny.en.bin", use_gpu=False)
    yield model
    model.close()


@pytest.fixture(scope="module")
def jfk(whisper_cpp_dir: Path) -> np.ndarray:
    return read_wav(whisper_cpp_dir / "samples" / "jfk.wav")


# --- the module ---------------------------------------------------------------------


def test_extension_version_matches_package() -> None:
    assert _whisper.__version__ == __version__
    assert importlib.metadata.version("infomux") == __version__


def test_build_info_reports_pinned_whisper_cpp() -> None:
    info = build_info()
    assert info["whisper_cpp_version"] == "1.8.5"
    assert "CPU" in info["backends"]
    assert info["infomux_native_version"] == __version__
    assert "AVX2" in info["cpu_features"] or os.uname().machine != "x86_64"


# --- loading --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "tiny.en", "base.en"])
def test_for_tests_models_load(whisper_cpp_dir: Path, name: str) -> None:
    with Model(whisper_cpp_dir / "models" / f"for-tests-ggml-{name}.bin") as model:
        assert model.is_multilingual == (not name.endswith(".en"))
    with pytest.raises(ValueError, match="closed"):
        model.transcribe(np.zeros(SR, dtype=np.float32))


def test_missing_model_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"nope\.bin"):
        Model(tmp_path / "nope.bin")


def test_directory_as_model_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=str(tmp_path)):
        Model(tmp_path)


def test_media_file_as_model_raises(media_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"not_media\.mp3"):
        Model(media_dir / "not_media.mp3")


def test_truncated_model_raises(whisper_cpp_dir: Path, tmp_path: Path) -> None:
    data = (whisper_cpp_dir / "models" / "for-tests-ggml-tiny.en.bin").read_bytes()
    bad = tmp_path / "truncated.bin"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"truncated\.bin"):
        Model(bad)


def test_bad_model_does_not_kill_the_interpreter(whisper_cpp_dir: Path, tmp_path: Path) -> None:
    """A corrupt model loaded in a child process ends in a Python exception, not a crash."""
    data = bytearray((whisper_cpp_dir / "models" / "for-tests-ggml-tiny.en.bin").read_bytes())
    data[4:8] = (10**6).to_bytes(4, "little")  # absurd n_vocab
    bad = tmp_path / "corrupt.bin"
    bad.write_bytes(bytes(data))
    code = textwrap.dedent(
        f"""
        from infomux.engine import Model
        try:
            Model({str(bad)!r})
        except Exception as e:
            print(type(e).__name__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ModelError"


# --- input validation -------------------------------------------------------------------


def test_more_decoders_than_whisper_cpp_has_are_refused(test_model: Model) -> None:
    with pytest.raises(ValueError, match="at most 8"):
        test_model.transcribe(np.zeros(SR, dtype=np.float32), TranscribeOptions(best_of=9))


def test_a_whisper_cpp_failure_names_its_own_error_line(test_model: Model) -> None:
    """Issue #10.4: when whisper_full fails, the error says why in whisper.cpp's words
    (its last ERROR line), not only "whisper_full returned -4". The native params skip
    the Python validation above, so whisper.cpp itself refuses the 9 decoders."""
    from infomux import engine

    params = engine._native().DecodeParams()
    params.n_threads = 1
    params.language = "en"
    params.best_of = 9
    samples = np.zeros(2 * SR, dtype=np.float32)
    with pytest.raises(_whisper.EngineFailure) as failure:  # EngineError in Model's API
        test_model._native_model.transcribe(samples, params, None, None, None)
    message = str(failure.value)
    assert "whisper_full returned -4" in message
    assert "too many decoders requested (9), max = 8" in message
    assert "\n" not in message


def test_int16_audio_is_rejected(test_model: Model) -> None:
    with pytest.raises(TypeError, match="int16"):
        test_model.transcribe(np.zeros(SR, dtype=np.int16))


def test_two_dimensional_audio_is_rejected(test_model: Model) -> None:
    with pytest.raises(ValueError, match="1-D"):
        test_model.transcribe(np.zeros((SR, 2), dtype=np.float32))


def test_nan_audio_is_rejected(test_model: Model) -> None:
    audio = np.zeros(SR, dtype=np.float32)
    audio[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        test_model.transcribe(audio)


def test_native_layer_rejects_wrong_dtype_without_crashing(test_model: Model) -> None:
    native = test_model._native_model
    with pytest.raises(TypeError, match="float32"):
        native.transcribe(np.zeros(SR, dtype=np.float64), _whisper.DecodeParams())
    with pytest.raises(ValueError, match="C-contiguous"):
        native.transcribe(np.zeros(2 * SR, dtype=np.float32)[::2], _whisper.DecodeParams())


def test_empty_and_very_short_audio_give_empty_results(test_model: Model) -> None:
    assert test_model.transcribe(np.zeros(0, dtype=np.float32)).segments == ()
    short = test_model.transcribe(np.zeros(SR // 4, dtype=np.float32))
    assert short.segments == ()
    assert short.duration == pytest.approx(0.25)


def test_float64_and_strided_audio_are_converted(test_model: Model, jfk: np.ndarray) -> None:
    clip = jfk[: 2 * SR]
    opts = TranscribeOptions(n_threads=2, temperature_increment=0)
    reference = test_model.transcribe(clip, opts)
    assert test_model.transcribe(clip.astype(np.float64), opts).segments == reference.segments
    strided = np.repeat(clip, 2)[::2]
    assert test_model.transcribe(strided, opts).segments == reference.segments


def test_bad_options_are_rejected(test_model: Model) -> None:
    audio = np.zeros(SR, dtype=np.float32)
    with pytest.raises(ValueError, match="language"):
        test_model.transcribe(audio, TranscribeOptions(language="xx-nope"))
    with pytest.raises(ValueError, match="vad_model"):
        test_model.transcribe(audio, TranscribeOptions(vad=True))
    with pytest.raises(ValueError, match="n_threads"):
        test_model.transcribe(audio, TranscribeOptions(n_threads=0))


# --- callbacks, cancellation, threads ----------------------------------------------------


def test_progress_callback_reaches_100(test_model: Model, jfk: np.ndarray) -> None:
    seen: list[int] = []
    test_model.transcribe(jfk, TranscribeOptions(n_threads=2), on_progress=seen.append)
    assert seen and seen[-1] == 100 and seen == sorted(seen)


def test_exception_in_callback_is_reraised(test_model: Model, jfk: np.ndarray) -> None:
    class Boom(Exception):
        pass

    def explode(percent: int) -> None:
        raise Boom(f"at {percent}%")

    with pytest.raises(Boom):
        test_model.transcribe(jfk, TranscribeOptions(n_threads=2), on_progress=explode)
    # The model is still usable afterwards.
    test_model.transcribe(jfk[:SR], TranscribeOptions(n_threads=2))


def _one_window_seconds(model: Model) -> float:
    """Wall time of transcribing one 30 s window here, now (mel, one encoder pass, its
    decoding). whisper.cpp polls for abort between encoder passes and decoder calls, so
    this bounds the cancellation latency on this machine at this load."""
    started = time.monotonic()
    model.transcribe(np.zeros(5 * SR, dtype=np.float32), TranscribeOptions(n_threads=2))
    return time.monotonic() - started


def test_cancel_event_stops_inference_quickly(test_model: Model) -> None:
    allowed = 2 * _one_window_seconds(test_model)
    audio = np.random.default_rng(0).normal(0, 0.1, 120 * SR).astype(np.float32)
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(TranscriptionCancelled):
        test_model.transcribe(audio, TranscribeOptions(n_threads=2), cancel=cancel)
    assert time.monotonic() - started < 0.5 + allowed


def test_gil_is_released_during_inference(test_model: Model, jfk: np.ndarray) -> None:
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=count)
    thread.start()
    started = time.monotonic()
    test_model.transcribe(jfk, TranscribeOptions(n_threads=1))
    elapsed = time.monotonic() - started
    done.set()
    thread.join()
    # A thread starved of the GIL would not tick at all.
    assert ticks > elapsed * 100


def test_sigint_raises_keyboard_interrupt_within_a_second(whisper_cpp_dir: Path) -> None:
    model = whisper_cpp_dir / "models" / "for-tests-ggml-tiny.en.bin"
    code = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        import numpy as np
        from infomux.engine import Model, TranscribeOptions
        m = Model({str(model)!r})
        t = time.monotonic()  # reference: one 30 s window, here, now
        m.transcribe(np.zeros(5 * 16000, dtype=np.float32), TranscribeOptions(n_threads=2))
        sys.stderr.write("window %.3f s\\n" % (time.monotonic() - t))
        audio = np.random.default_rng(0).normal(0, 0.1, 120 * 16000).astype(np.float32)
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            m.transcribe(audio, TranscribeOptions(n_threads=2))
        except KeyboardInterrupt:
            sys.stderr.write("interrupted after %.2f s\\n" % (time.monotonic() - t))
            sys.exit(7)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 7, out.stderr
    elapsed = float(out.stderr.split("after ")[1].split(" s")[0])
    window = float(out.stderr.split("window ")[1].split(" s")[0])
    assert elapsed < 1.0 + 2 * window  # the signal comes at 1.0 s
    assert out.stdout == ""


def test_nothing_is_printed_to_stdout(whisper_cpp_dir: Path) -> None:
    """whisper.cpp prints progress and timings unless told not to; we route its log."""
    wd = str(whisper_cpp_dir)
    code = textwrap.dedent(
        f"""
        import logging, wave
        import numpy as np
        logging.basicConfig(level=logging.DEBUG)   # native log lines go to stderr
        from infomux.engine import Model, TranscribeOptions
        m = Model({wd!r} + "/models/for-tests-ggml-tiny.en.bin")
        w = wave.open({wd!r} + "/samples/jfk.wav")
        a = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
        m.transcribe(a, TranscribeOptions(n_threads=2))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert "infomux.whisper" in out.stderr and "whisper_model_load" in out.stderr


def test_native_log_is_filtered_by_level(whisper_cpp_dir: Path) -> None:
    code = textwrap.dedent(
        f"""
        import logging
        logging.basicConfig(level=logging.WARNING)
        from infomux.engine import Model
        Model({str(whisper_cpp_dir)!r} + "/models/for-tests-ggml-tiny.bin")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "whisper_model_load: n_vocab" not in out.stderr  # INFO lines are dropped


# --- real transcription (real tiny.en weights) ----------------------------------------

JFK = (
    "And so my fellow Americans ask not what your country can do for you "
    "ask what you can do for your country."
)


@pytest.mark.model
def test_jfk_exact_sentence(loaded_model: Model, jfk: np.ndarray) -> None:
    transcript = loaded_model.transcribe(jfk, TranscribeOptions(n_threads=2))
    assert transcript.text == JFK
    assert transcript.language == "en"
    assert transcript.segments[0].start == 0.0
    assert transcript.segments[-1].end == pytest.approx(11.0, abs=0.5)


@pytest.mark.model
def test_speech_a_wer(loaded_model: Model, media_dir: Path, references: dict) -> None:
    from infomux.audio import load_audio

    audio = load_audio(media_dir / "speech_a.wav")
    transcript = loaded_model.transcribe(audio, TranscribeOptions(n_threads=2))
    assert wer(references["speech_a.wav"], transcript.text) <= 0.15


@pytest.mark.model
def test_word_timestamps(loaded_model: Model, jfk: np.ndarray) -> None:
    transcript = loaded_model.transcribe(jfk, TranscribeOptions(n_threads=2, word_timestamps=True))
    words = [w for s in transcript.segments for w in s.words]
    assert [w.text for w in words][:4] == ["And", "so", "my", "fellow"]
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(w.end >= w.start for w in words)
    assert 0.0 <= words[0].start < 1.0 and 9.0 < words[-1].end < 11.5


@pytest.mark.model
def test_two_threads_share_one_model(loaded_model: Model, jfk: np.ndarray) -> None:
    opts = TranscribeOptions(n_threads=1)
    results: list[str] = []

    def work() -> None:
        results.append(loaded_model.transcribe(jfk, opts).text)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [JFK, JFK]


@pytest.mark.model
def test_segments_stream_through_callback(loaded_model: Model, jfk: np.ndarray) -> None:
    streamed = []
    transcript = loaded_model.transcribe(
        jfk, TranscribeOptions(n_threads=2), on_segment=streamed.append
    )
    assert tuple(streamed) == transcript.segments


def test_engine_error_is_a_runtime_error() -> None:
    assert issubclass(EngineError, RuntimeError)


def test_multilingual_model_detects_language(whisper_cpp_dir: Path, jfk: np.ndarray) -> None:
    """Multilingual models detect the language and report its probability (random weights:
    which language is not asserted, only that it is a real code with a probability)."""
    with Model(whisper_cpp_dir / "models" / "for-tests-ggml-tiny.bin") as model:
        transcript = model.transcribe(jfk[: 3 * SR], TranscribeOptions(n_threads=2))
    assert _whisper.lang_id(transcript.language) >= 0
    assert transcript.language_probability is not None
    assert 0.0 < transcript.language_probability <= 1.0


def test_english_only_model_reports_no_detection(test_model: Model, jfk: np.ndarray) -> None:
    transcript = test_model.transcribe(jfk[: 2 * SR], TranscribeOptions(n_threads=2))
    assert transcript.language == "en"
    assert transcript.language_probability is None


@pytest.mark.model
def test_vad_skips_silence_and_keeps_original_times(
    loaded_model: Model, whisper_cpp_dir: Path, jfk: np.ndarray
) -> None:
    vad_model = whisper_cpp_dir / "models" / "for-tests-silero-v6.2.0-ggml.bin"
    silence = np.zeros(8 * SR, dtype=np.float32)
    audio = np.concatenate([silence, jfk, silence])
    opts = TranscribeOptions(n_threads=2, vad=True, vad_model=str(vad_model))
    transcript = loaded_model.transcribe(audio, opts)
    assert wer(JFK, transcript.text) <= 0.1
    assert transcript.segments[0].start >= 7.0  # mapped back to the original timeline
    assert transcript.segments[-1].end <= 8.0 + 11.5


@pytest.mark.model
def test_calls_are_independent(loaded_model: Model, media_dir: Path) -> None:
    """A file's transcript must not depend on what the model transcribed before it
    (whisper.cpp keeps the last window's text in its state between calls)."""
    from infomux.audio import load_audio

    speech = load_audio(media_dir / "speech_a.wav")
    other = load_audio(media_dir / "speech_c_8k_mulaw.wav")
    opts = TranscribeOptions(n_threads=2)
    first = loaded_model.transcribe(speech, opts)
    loaded_model.transcribe(other, opts)
    again = loaded_model.transcribe(speech, opts)
    assert again.segments == first.segments


def test_multilingual_model_detects_the_language_of_half_a_second(whisper_cpp_dir: Path) -> None:
    """Issue 10.7: under 1 s of audio used to give a silently empty language on a
    multilingual model; whisper.cpp handles from 100 ms. (The for-tests model has random
    weights: this checks the code path, not the answer.)"""
    with Model(whisper_cpp_dir / "models" / "for-tests-ggml-tiny.bin") as model:
        assert model.is_multilingual
        noise = (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32)
        result = model.transcribe(noise, TranscribeOptions(n_threads=1))
        assert result.language and result.language_probability is not None
        # below 100 ms there is nothing to detect or transcribe
        tiny = model.transcribe(noise[:800], TranscribeOptions(n_threads=1))
        assert tiny.language == "" and not tiny.segments
