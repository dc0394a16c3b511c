"""infomux's patch series on the pinned whisper.cpp (cpp/patches, cmake/patch_whisper_cpp.py).

The series is applied to a copy of the tree, recognised when already applied, refused
by name when it does not apply; the build reports it; and patch 0001 (logits only for
the rows that are read) leaves every transcript byte-identical.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infomux import audio, engine
from infomux.engine import Model, TranscribeOptions
from tests.fixtures import loud_click_in_quiet_speech

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "cmake" / "patch_whisper_cpp.py"
PATCHES = sorted((REPO / "cpp" / "patches").glob("*.patch"))


def _apply(source: Path, dest: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(source), str(dest), *map(str, extra)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_series_is_numbered_and_documented() -> None:
    assert PATCHES, "cpp/patches is empty"
    for i, patch in enumerate(PATCHES, start=1):
        assert patch.name.startswith(f"{i:04d}-"), patch.name
        head = patch.read_text().split("diff --git", 1)[0]
        assert "What:" in head and "Why:" in head, f"{patch.name} lacks its header"


def test_build_reports_the_patches_and_llamafile() -> None:
    info = engine.build_info()
    if not info["whisper_cpp_origin"].startswith(("pinned source", "source tree")):
        pytest.skip(f"built against {info['whisper_cpp_origin']}: cannot be patched")
    assert info["patches"] == [p.name for p in PATCHES]
    assert info["llamafile"] is True
    assert "GGML_LLAMAFILE" in info["build_options"]


def test_series_applies_to_a_copy_and_the_copy_is_reused(
    whisper_cpp_dir: Path, tmp_path: Path
) -> None:
    source_file = whisper_cpp_dir / "src" / "whisper.cpp"
    before = _digest(source_file)
    dest = tmp_path / "patched"
    first = _apply(whisper_cpp_dir, dest, *PATCHES)
    assert first.returncode == 0, first.stderr
    path, applied = first.stdout.splitlines()
    assert Path(path) == dest
    assert applied.split(",") == [p.name for p in PATCHES]
    assert _digest(source_file) == before, "the source tree was modified"
    assert "whisper_infomux_set_all_logits" in (dest / "src" / "whisper.cpp").read_text()
    assert not (dest / "models").exists(), "models are not needed to build"

    stamp = (dest / "src" / "whisper.cpp").stat().st_mtime_ns
    again = _apply(whisper_cpp_dir, dest, *PATCHES)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert (dest / "src" / "whisper.cpp").stat().st_mtime_ns == stamp, "copied again"

    # a tree that already carries the series is recognised as patched
    repatched = _apply(dest, tmp_path / "twice", *PATCHES)
    assert repatched.returncode == 0, repatched.stderr
    assert repatched.stdout.splitlines()[1] == first.stdout.splitlines()[1]


def test_a_patch_that_does_not_apply_is_named(whisper_cpp_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "0099-broken.patch"
    bad.write_text(
        "infomux patch 0099: broken on purpose\n\n"
        "diff --git a/src/whisper.cpp b/src/whisper.cpp\n"
        "--- a/src/whisper.cpp\n+++ b/src/whisper.cpp\n"
        "@@ -1,1 +1,1 @@\n-this line is not in whisper.cpp\n+nor is this one\n"
    )
    strict = _apply(whisper_cpp_dir, tmp_path / "strict", *PATCHES, bad)
    assert strict.returncode == 1
    assert "0099-broken.patch" in strict.stderr
    assert not (tmp_path / "strict").exists(), "a half-patched tree was left behind"

    lenient = _apply(whisper_cpp_dir, tmp_path / "lenient", *PATCHES, bad, "--best-effort")
    assert lenient.returncode == 0, lenient.stderr
    assert lenient.stdout.splitlines()[1] == "none"
    copy = (tmp_path / "lenient" / "src" / "whisper.cpp").read_bytes()
    assert copy == (whisper_cpp_dir / "src" / "whisper.cpp").read_bytes()


# Every decodable file of the shared media: the logits patch must not change one byte.
MEDIA = [
    "speech_a.wav",
    "speech_a_44k_stereo.mp3",
    "speech_a.m4a",
    "speech_a.ogg",
    "speech_a.flac",
    "speech_a_video.mp4",
    "two_audio_streams.mkv",
    "speech_c_8k_mulaw.wav",
    "speech_ja.m4a",
    "silence_10s.wav",
    "noise_10s.wav",
    pytest.param("long_speech.mp3", marks=pytest.mark.slow),
]


def _as_data(transcript: Any) -> list[tuple[float, float, str, list[tuple[int, str]]]]:
    return [
        (s.start, s.end, s.text, [(t.id, t.text) for t in s.tokens]) for s in transcript.segments
    ]


def _exact_data(transcript: Any) -> list[Any]:
    """Everything the spectrogram moves: times, text, no-speech and token probabilities."""
    return [
        (s.start, s.end, s.text, s.no_speech_prob, [(k.id, k.probability) for k in s.tokens])
        for s in transcript.segments
    ]


def _media_or_click(media_dir: Path, name: str) -> Any:
    """A shared media file's samples; ``click``: speech_a with a loud click in quiet speech."""
    speech = audio.load_audio(media_dir / ("speech_a.wav" if name == "click" else name))
    return loud_click_in_quiet_speech(speech) if name == "click" else speech


def _with_and_without(tiny: Model, samples: Any, switch: Any) -> tuple[Any, Any]:
    """The transcript with a patch's native switch off (the patch), then on (whisper.cpp's
    own code). No temperature fallback: what is compared is the input, not the sampler."""
    options = TranscribeOptions(n_threads=2, language="en", temperature_increment=0.0)
    try:
        patched = tiny.transcribe(samples, options)
        switch(True)
        unpatched = tiny.transcribe(samples, options)
    finally:
        switch(False)
    return patched, unpatched


@pytest.fixture(scope="module")
def tiny(_default_model: tuple[Any, str | None]) -> Any:
    ref, reason = _default_model
    if ref is None:
        from tests.require import missing

        missing(reason or "default model not available")
    with Model(ref.path) as model:
        yield model


@pytest.mark.model
@pytest.mark.parametrize("name", MEDIA)
def test_logits_patch_keeps_transcripts_byte_identical(
    tiny: Model, media_dir: Path, name: str
) -> None:
    native = engine._native()
    if not native.set_all_logits(False):
        pytest.skip("this build does not carry patch 0001")
    samples = audio.load_audio(media_dir / name)
    options = TranscribeOptions(n_threads=2, language="en")
    try:
        patched = tiny.transcribe(samples, options)
        native.set_all_logits(True)  # the unpatched graph: every row projected
        unpatched = tiny.transcribe(samples, options)
    finally:
        native.set_all_logits(False)
    assert _as_data(patched) == _as_data(unpatched)
    # the no-speech probability (patch 0004) is a softmax of the same logits, projected
    # as one row or as part of a matrix: equal up to float rounding
    assert [s.no_speech_prob for s in patched.segments] == pytest.approx(
        [s.no_speech_prob for s in unpatched.segments], rel=1e-4, abs=1e-12
    )
    if name.startswith(("speech", "long")):
        assert patched.text, "nothing was transcribed: the comparison would prove nothing"


@pytest.mark.model
def test_no_context_keeps_the_users_prompt(tiny: Model, media_dir: Path) -> None:
    """Patch 0003: no_context drops the decoded history, not the user's initial prompt
    (before it, whisper.cpp built no prompt at all and the prompt was silently lost)."""
    if "0003-prompt-without-history.patch" not in engine.build_info()["patches"]:
        pytest.skip("this build does not carry patch 0003")
    samples = audio.load_audio(media_dir / "speech_a.wav")
    prompt = "THE RIVER TOWN WOKE SLOWLY. FISHING BOATS DRIFTED PAST."
    plain = tiny.transcribe(samples, TranscribeOptions(n_threads=2, no_context=True))
    prompted = tiny.transcribe(
        samples, TranscribeOptions(n_threads=2, no_context=True, initial_prompt=prompt)
    )
    assert prompted.text != plain.text
    # the same prompt with the rolling context on starts the same way
    with_context = tiny.transcribe(samples, TranscribeOptions(n_threads=2, initial_prompt=prompt))
    assert prompted.segments[0].text == with_context.segments[0].text


@pytest.mark.model
def test_no_speech_probability_is_read_at_the_sot_token(tiny: Model, media_dir: Path) -> None:
    """Patch 0004: every window's no-speech probability comes from the SOT token's logits.

    Without it, a window decoded after a rolling prompt read row 0 (the previous-text
    marker, whose logits patch 0001 no longer computes): softmax of zeros, exactly
    1/n_vocab, for every window but the first.
    """
    if "0004-no-speech-at-sot.patch" not in engine.build_info()["patches"]:
        pytest.skip("this build does not carry patch 0004")
    import numpy as np

    speech = audio.load_audio(media_dir / "speech_a.wav")
    silence = np.zeros(40 * audio.SAMPLE_RATE, dtype=np.float32)
    result = tiny.transcribe(np.concatenate([speech, silence]), TranscribeOptions(n_threads=2))
    uniform = 1.0 / tiny._native_model.n_vocab
    after_first_window = [s for s in result.segments if s.start >= 25.0]
    assert after_first_window, "the speech's last sentence should be decoded in a second window"
    for segment in result.segments:
        assert abs(segment.no_speech_prob - uniform) > 0.01 * uniform, segment
    # speech is speech: low; and the 40 s of digital silence give no words
    assert max(s.no_speech_prob for s in result.segments) < 0.1
    assert all(s.start < speech.size / audio.SAMPLE_RATE + 5.0 for s in result.segments)


_RSS_SCRIPT = """
import sys
from pathlib import Path
from infomux import audio
from infomux.engine import Model, TranscribeOptions

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS")

samples = audio.load_audio(Path(sys.argv[2]))[: 150 * audio.SAMPLE_RATE]
with Model(sys.argv[1]) as model:
    options = TranscribeOptions(n_threads=2)
    model.transcribe(samples[: 28 * audio.SAMPLE_RATE], options)  # every buffer touched
    before = rss_mb()
    model.transcribe(samples, options)  # rolling prompts of ~225 tokens
    print(rss_mb() - before)
"""


@pytest.mark.model
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_long_prompts_do_not_grow_the_state(tiny: Model, media_dir: Path) -> None:
    """Patch 0005: a state keeps logits only for the rows it reads.

    Without it, each decoder batch resized the logits to n_tokens x n_vocab floats,
    writing ~47 MB of zeros per state once the rolling prompt reaches its ~225 tokens.
    """
    if "0005-compact-logits.patch" not in engine.build_info()["patches"]:
        pytest.skip("this build does not carry patch 0005")
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(tiny.path), str(media_dir / "long_speech.mp3")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    growth_mb = float(out.stdout.strip().splitlines()[-1])
    # 150 s more of log-mel is 4.6 MB; 20 MB leaves room for the allocator
    assert growth_mb < 20.0, f"RSS grew by {growth_mb:.1f} MB over 150 s of speech"


@pytest.mark.model
def test_word_timings_do_not_depend_on_where_the_speech_sits(tiny: Model, media_dir: Path) -> None:
    """Patch 0006: word timings are refined against the samples of their own segment.

    The same speech decoded from 30 s into an input (after 30 s of digital silence, with
    offset_ms, so the decoder sees the same windows) must get the same word timings,
    shifted by 30 s. Without the patch, every segment that does not start at 0 was
    refined against the energy of the input's first seconds: here, the silence.
    """
    if "0006-word-timing-energy.patch" not in engine.build_info()["patches"]:
        pytest.skip("this build does not carry patch 0006")
    import numpy as np

    native = engine._native()
    speech = audio.load_audio(media_dir / "speech_a.wav")
    shifted = np.concatenate([np.zeros(30 * audio.SAMPLE_RATE, dtype=np.float32), speech])

    def segments(samples: Any, offset_ms: int) -> list[Any]:
        params = native.DecodeParams()
        params.n_threads = 2
        params.language = "en"
        params.token_timestamps = True
        params.offset_ms = offset_ms
        return list(tiny._native_model.transcribe(samples, params, None, None, None)["segments"])

    alone, later = segments(speech, 0), segments(shifted, 30_000)
    assert len(alone) > 1, "the test needs segments that do not start at 0"
    assert [s[2] for s in alone] == [s[2] for s in later]
    for a, b in zip(alone, later, strict=True):
        assert [(t[3] + 3000, t[4] + 3000) for t in a[4]] == [(t[3], t[4]) for t in b[4]]


@pytest.mark.model
def test_negative_offset_is_refused(tiny: Model) -> None:
    import numpy as np

    params = engine._native().DecodeParams()
    params.offset_ms = -1
    with pytest.raises(ValueError, match="offset_ms"):
        tiny._native_model.transcribe(np.zeros(16000, np.float32), params, None, None, None)


@pytest.mark.model
@pytest.mark.parametrize("name", ["speech_a.wav", "speech_a_video.mp4", "two_audio_streams.mkv"])
def test_a_short_last_window_is_encoded_short_with_the_same_text(
    tiny: Model, media_dir: Path, name: str
) -> None:
    """Patch 0007: the last window of speech_a (its last ~2.7 s) is encoded with a 5.12 s
    audio context instead of 30 s, and every word stays the same; a window with more
    audio left (two_audio_streams.mkv: one window of 12.7 s) is encoded in full."""
    if "0007-short-last-window.patch" not in engine.build_info()["patches"]:
        pytest.skip("this build does not carry patch 0007")
    samples = audio.load_audio(media_dir / name)
    full = tiny.transcribe(samples, TranscribeOptions(n_threads=2, short_last_window=False))
    short = tiny.transcribe(samples, TranscribeOptions(n_threads=2))
    assert full.timings["short_window_calls"] == 0
    expected = 0 if name.endswith(".mkv") else 1
    assert short.timings["short_window_calls"] == expected
    assert short.text == full.text


@pytest.mark.model
@pytest.mark.parametrize(
    "name",
    ["speech_a.wav", "speech_c_8k_mulaw.wav", "silence_10s.wav", "noise_10s.wav", "click"],
)
def test_window_mel_keeps_transcripts_byte_identical(
    tiny: Model, media_dir: Path, name: str
) -> None:
    """Patch 0009: computing each window's spectrogram when it is encoded (with the
    whole input's maximum found by the bounded search) gives every window exactly the
    numbers of the whole-input spectrogram: the same tokens, probabilities and times."""
    native = engine._native()
    if not native.set_eager_mel(False):
        pytest.skip("this build does not carry patch 0009")
    samples = _media_or_click(media_dir, name)
    per_window, whole = _with_and_without(tiny, samples, native.set_eager_mel)
    assert _exact_data(per_window) == _exact_data(whole)
    if name.startswith("speech"):
        assert per_window.text, "nothing was transcribed: the comparison would prove nothing"


_MEL_PEAK_SCRIPT = """
import sys
from pathlib import Path
from infomux import audio, engine
from infomux.engine import Model, TranscribeOptions

class Enough(Exception):
    pass

def stop(segment):
    raise Enough

def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise SystemExit("no " + key)

native = engine._native()
samples = audio.load_audio(Path(sys.argv[2]))
with Model(sys.argv[1]) as model:
    options = TranscribeOptions(n_threads=2)
    model.transcribe(samples[: 28 * audio.SAMPLE_RATE], options)  # every buffer touched
    for eager in (False, True):
        native.set_eager_mel(eager)
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # the peak (VmHWM) starts again from here
        before = status("VmRSS")
        try:  # the spectrogram is made before the first window; one window is enough
            model.transcribe(samples, options, on_segment=stop)
        except Enough:
            pass
        print(status("VmHWM") - before)
"""


@pytest.mark.model
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs /proc (Linux)")
def test_the_spectrogram_costs_no_memory_per_minute(tiny: Model, media_dir: Path) -> None:
    """Patches 0008 and 0009, on 9.7 minutes of audio (37 MB of float32 samples).

    0009: with the spectrogram made window by window, the peak grows by about one
    window (1 MB), not by the whole input's spectrogram (18.6 MB). 0008: even the
    whole-input spectrogram (0009 switched off) is made without a padded copy of the
    samples (it would add 37 MB to the peak).
    """
    patches = engine.build_info()["patches"]
    wanted = {"0008-mel-without-padded-copy.patch", "0009-mel-per-window.patch"}
    if not wanted <= set(patches):
        pytest.skip("this build does not carry patches 0008 and 0009")
    out = subprocess.run(
        [sys.executable, "-c", _MEL_PEAK_SCRIPT, str(tiny.path), f"{media_dir}/long_speech.mp3"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    per_window_mb, whole_mb = (float(v) for v in out.stdout.split()[-2:])
    mel_mb = 80 * 100 * 582 * 4 / 2**20  # 80 bands x 100 frames/s x 582 s, float32
    assert per_window_mb < 6.0, f"peak grew by {per_window_mb:.1f} MB (spectrogram kept?)"
    assert whole_mb > mel_mb - 2.0, "the comparison run did not make the whole spectrogram"
    assert whole_mb < mel_mb + 10.0, f"peak grew by {whole_mb:.1f} MB (a padded copy?)"


@pytest.mark.model
def test_a_call_samples_the_same_as_the_one_before(tiny: Model, media_dir: Path) -> None:
    """Patch 0010: quiet speech makes windows fall back to sampling at a higher
    temperature; two calls on the same Model (the same state) give the same result.
    Without the patch the first decoder's random generator went on from the previous
    call, and the second call sampled other tokens (here 2 fallbacks, then 7)."""
    if "0010-seed-per-call.patch" not in engine.build_info()["patches"]:
        pytest.skip("this build does not carry patch 0010")
    samples = loud_click_in_quiet_speech(audio.load_audio(media_dir / "speech_a.wav"))
    options = TranscribeOptions(n_threads=2, language="en")
    first = tiny.transcribe(samples, options)
    second = tiny.transcribe(samples, options)
    assert first.timings["fallbacks"] > 0, "the test needs a window that falls back"
    assert second.timings["fallbacks"] == first.timings["fallbacks"]
    assert [(s.start, s.end, s.text) for s in second.segments] == [
        (s.start, s.end, s.text) for s in first.segments
    ]


@pytest.mark.model
def test_encoder_bf16_converts_the_encoder_and_keeps_the_words(
    tiny: Model, media_dir: Path, references: dict[str, Any]
) -> None:
    """Patch 0012: the encoder's matrices kept in bf16 are really converted (the
    encoder's output changes, so the probabilities do) and the words stay as good."""
    from tests.wer import wer

    if engine.ENCODER_BF16_PATCH not in engine.build_info()["patches"]:
        pytest.skip("this build does not carry patch 0012")
    assert tiny.encoder_type == ("bf16" if engine.encoder_bf16_default() else "f16")
    with (
        Model(tiny.path, encoder_bf16=False) as f16,
        Model(tiny.path, encoder_bf16=True) as bf16,
    ):
        assert (f16.encoder_type, bf16.encoder_type) == ("f16", "bf16")
        for name in ("speech_a.wav", "speech_c_8k_mulaw.wav"):
            samples = audio.load_audio(media_dir / name)
            options = TranscribeOptions(n_threads=2, language="en")
            a, b = f16.transcribe(samples, options), bf16.transcribe(samples, options)
            assert b.text, name
            assert wer(references[name], b.text) <= wer(references[name], a.text) + 0.02, name
            probabilities = [[t.probability for t in s.tokens] for s in a.segments]
            assert [[t.probability for t in s.tokens] for s in b.segments] != probabilities


def test_encoder_bf16_is_chosen_by_the_cpu_and_refused_without_the_patch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    info = engine.build_info()
    has_patch = engine.ENCODER_BF16_PATCH in info["patches"]
    expected = has_patch and "AVX512_BF16" in info["cpu_features"]
    assert engine.encoder_bf16_default(use_gpu=False) is expected
    assert engine.encoder_bf16_default(use_gpu=False, multilingual=True) is False
    fake = {**info, "patches": [], "cpu_features": [*info["cpu_features"], "AVX512_BF16"]}
    monkeypatch.setattr(engine, "build_info", lambda: fake)
    assert engine.encoder_bf16_default() is False  # no patch: whisper.cpp's f16
    fake = {**fake, "patches": [engine.ENCODER_BF16_PATCH], "backends": ["CUDA", "CPU"]}
    assert engine.encoder_bf16_default(use_gpu=False) is True
    assert engine.encoder_bf16_default(use_gpu=True) is False  # the GPU keeps f16


@pytest.mark.model
def test_encoder_bf16_asked_of_a_build_without_the_patch_is_an_error(
    tiny: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infomux.errors import ModelError

    info = engine.build_info()
    monkeypatch.setattr(engine, "build_info", lambda: {**info, "patches": []})
    with pytest.raises(ModelError, match="patch 0012-encoder-bf16"):
        Model(tiny.path, encoder_bf16=True)


@pytest.mark.model
@pytest.mark.parametrize("name", [*MEDIA, "click"])
def test_mel_sums_side_by_side_keep_transcripts_byte_identical(
    tiny: Model, media_dir: Path, name: str
) -> None:
    """Patch 0013: the DFT's outputs summed side by side and the mel filters' zero groups
    skipped give the spectrogram of whisper.cpp's own loops bit for bit: the same tokens,
    probabilities (which move with any change of the encoder's input) and times."""
    native = engine._native()
    if not native.set_reference_mel(False):
        pytest.skip("this build does not carry patch 0013")
    samples = _media_or_click(media_dir, name)
    side_by_side, reference = _with_and_without(tiny, samples, native.set_reference_mel)
    assert _exact_data(side_by_side) == _exact_data(reference)
    if name.startswith("speech"):
        assert side_by_side.text, "nothing was transcribed: the comparison would prove nothing"
