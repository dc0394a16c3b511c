"""Tests for infomux.audio: real decoding of the shared test media.

Media come from ``../shared/media`` next to the repository (override with
``INFOMUX_TEST_MEDIA``). Comparisons with the ``ffmpeg``/``ffprobe`` CLIs are
skipped only where those are not installed; with ``INFOMUX_TESTS_REQUIRE_ALL=1``
(CI) missing media or CLIs fail instead (``tests/require.py``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

import infomux
from infomux import audio, storage
from infomux.audio import (
    SAMPLE_RATE,
    AudioInfo,
    DecodedAudio,
    decode_audio,
    iter_audio_chunks,
    load_audio,
    quantize_s16,
    write_wav,
)
from infomux.errors import AudioDecodeError, AudioFileNotFoundError
from tests.require import media_path, missing

MEDIA = media_path()
REFERENCES = MEDIA / "references.json"
FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")

if not REFERENCES.is_file():
    missing(f"no test media in {MEDIA} (set INFOMUX_TEST_MEDIA)", module=True)


@pytest.fixture
def _ffmpeg_cli() -> None:
    if FFMPEG is None:
        missing("ffmpeg CLI not installed (the reference decoder)")


@pytest.fixture
def _ffprobe_cli() -> None:
    if FFPROBE is None:
        missing("ffprobe CLI not installed")


needs_ffmpeg = pytest.mark.usefixtures("_ffmpeg_cli")
needs_ffprobe = pytest.mark.usefixtures("_ffprobe_cli")

DURATION_TOLERANCE = 0.050  # seconds


def _good_media() -> list[tuple[str, int]]:
    """(file name, audio stream index) for every good media file in references.json."""
    if not REFERENCES.is_file():
        return []
    refs = json.loads(REFERENCES.read_text(encoding="utf-8"))
    cases = []
    for name, ref in sorted(refs.items()):
        streams = len(ref) if isinstance(ref, dict) else 1
        cases.extend((name, i) for i in range(streams))
    return cases


GOOD = _good_media()
GOOD_IDS = [f"{name}:a{idx}" for name, idx in GOOD]

# cache decodes within the session: several tests look at the same file
_decoded: dict[tuple[str, int], DecodedAudio] = {}


def _decode(name: str, stream: int = 0) -> DecodedAudio:
    key = (name, stream)
    if key not in _decoded:
        _decoded[key] = decode_audio(MEDIA / name, stream=stream)
    return _decoded[key]


def _ffmpeg_f32(path: Path, stream: int = 0) -> np.ndarray:
    """The ffmpeg CLI's own conversion to 16 kHz mono float32."""
    assert FFMPEG is not None
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-i", str(path)]
    cmd += ["-map", f"0:a:{stream}", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    return np.frombuffer(out, dtype=np.float32)


def _ffmpeg_s16(path: Path, stream: int = 0) -> np.ndarray:
    """What the replaced ``ffmpeg -ac 1 -ar 16000 -c:a pcm_s16le`` step produced, as float."""
    assert FFMPEG is not None
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-i", str(path)]
    cmd += ["-map", f"0:a:{stream}", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768


def _ffprobe_durations(path: Path, stream: int) -> list[float]:
    """Acceptable readings of the audio stream's duration per ffprobe (empty: none known).

    The stream's duration; where ``start_time`` is positive, also that minus
    ``start_time``: MP3 gapless info (1105 samples of encoder delay in
    long_speech.mp3) is dropped by decoders, but ffprobe 5.x still counts it in the
    stream's duration. Without a stream duration, the container's, for stream 0 only.
    """
    assert FFPROBE is not None
    cmd = [FFPROBE, "-v", "error", "-show_entries", "stream=codec_type,start_time,duration"]
    cmd += ["-show_entries", "format=duration", "-of", "json", str(path)]
    data = json.loads(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
    audio_streams = [s for s in data["streams"] if s.get("codec_type") == "audio"]
    value = audio_streams[stream].get("duration")
    if value not in (None, "N/A"):
        start = audio_streams[stream].get("start_time")
        delay = float(start) if start not in (None, "N/A") else 0.0
        return [float(value)] + ([float(value) - delay] if delay > 0 else [])
    if stream == 0:  # the container's duration is the longest stream: fair for stream 0 only
        fmt = data.get("format", {}).get("duration")
        return [float(fmt)] if fmt not in (None, "N/A") else []
    return []


def _compare(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(SNR in dB, correlation) of ``ours`` against ``ref`` after aligning lengths."""
    n = min(len(ours), len(ref))
    assert n > 0
    x = ours[:n].astype(np.float64)
    y = ref[:n].astype(np.float64)
    err = float(np.sum((x - y) ** 2))
    sig = float(np.sum(y**2))
    snr = float("inf") if err == 0 else 10 * np.log10(sig / err) if sig > 0 else float("-inf")
    corr = 1.0 if err == 0 else float(np.corrcoef(x, y)[0, 1])
    return snr, corr


def _dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    return float(freqs[int(np.argmax(spectrum))])


# --------------------------------------------------------------------------- good media


def test_good_media_listed() -> None:
    names = {name for name, _ in GOOD}
    assert {"speech_a.wav", "long_speech.mp3", "two_audio_streams.mkv"} <= names


@pytest.mark.parametrize(("name", "stream"), GOOD, ids=GOOD_IDS)
def test_decode_shape_and_info(name: str, stream: int) -> None:
    decoded = _decode(name, stream)
    samples = decoded.samples
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert samples.flags.c_contiguous
    assert samples.size > SAMPLE_RATE  # every test file is longer than a second
    assert np.isfinite(samples).all()
    assert np.abs(samples).max() <= 1.5
    info = decoded.info
    assert info.stream_index == stream
    assert info.decoded_duration == pytest.approx(samples.size / SAMPLE_RATE)
    assert info.decode_errors == 0
    assert info.source == str(MEDIA / name)
    json.dumps(info.to_dict())  # JSON-friendly


@needs_ffprobe
@pytest.mark.parametrize(("name", "stream"), GOOD, ids=GOOD_IDS)
def test_duration_matches_ffprobe(name: str, stream: int) -> None:
    expected = _ffprobe_durations(MEDIA / name, stream)
    if not expected:
        pytest.skip("ffprobe reports no duration for this stream (compared with ffmpeg instead)")
    decoded = _decode(name, stream)
    error = min(abs(decoded.info.decoded_duration - e) for e in expected)
    assert error <= DURATION_TOLERANCE, (decoded.info.decoded_duration, expected)


@needs_ffmpeg
@pytest.mark.parametrize(("name", "stream"), GOOD, ids=GOOD_IDS)
def test_samples_match_ffmpeg_cli(name: str, stream: int) -> None:
    ours = _decode(name, stream).samples
    ref = _ffmpeg_f32(MEDIA / name, stream)
    # lengths agree except for codec padding that we trim (MP4: < one AAC frame)
    assert abs(len(ours) - len(ref)) <= 1024
    if not np.any(ref):  # digital silence: nothing to correlate, must stay silent
        assert np.abs(ours).max() < 1e-4
        return
    snr, corr = _compare(ours, ref)
    assert snr >= 30 or corr >= 0.99, (snr, corr)


@needs_ffmpeg
@pytest.mark.parametrize(
    ("name", "stream"),
    [(n, i) for n, i in GOOD if n != "long_speech.mp3" and not n.startswith("silence")],
)
def test_samples_match_old_s16_pipeline(name: str, stream: int) -> None:
    """Same samples as the s16 WAV the pipeline used to make, to within s16 rounding."""
    ours = _decode(name, stream).samples
    ref = _ffmpeg_s16(MEDIA / name, stream)
    snr, _corr = _compare(ours, ref)
    assert snr >= 40, snr
    n = min(ours.size, ref.size)
    # s16 rounding; s16 → s16 resampling (mu-law) runs in integer arithmetic: a few LSB
    assert np.abs(ours[:n] - ref[:n]).max() <= 4 / 32768


def test_info_fields_stereo_mp3() -> None:
    info = _decode("speech_a_44k_stereo.mp3").info
    assert info.container_format == "mp3"
    assert info.codec.startswith("mp3")
    assert info.sample_rate == 44100
    assert info.channels == 2
    assert info.channel_layout == "stereo"
    assert info.sample_format == "fltp"
    assert info.stream_index == 0
    assert info.duration == pytest.approx(27.845, abs=0.05)
    assert info.pyav_version and info.ffmpeg_version
    import av

    assert info.pyav_version == av.__version__
    d = info.to_dict()
    assert set(d) == {f for f in AudioInfo.__dataclass_fields__}
    assert json.loads(json.dumps(d)) == d


def test_video_file_decodes_audio_only() -> None:
    decoded = _decode("speech_a_video.mp4")
    assert decoded.info.codec == "aac"
    assert decoded.info.container_format.startswith("mov")
    # MP4 records the last AAC packet's length: the encoder padding is trimmed
    assert decoded.info.decoded_duration == pytest.approx(decoded.info.duration, abs=0.001)


def test_two_audio_streams_both_reachable_and_different() -> None:
    default = decode_audio(MEDIA / "two_audio_streams.mkv")
    first = _decode("two_audio_streams.mkv", 0)
    second = _decode("two_audio_streams.mkv", 1)
    assert default.info.stream_index == 0
    assert np.array_equal(default.samples, first.samples)
    assert second.info.stream_index == 1
    assert abs(first.samples.size - second.samples.size) > SAMPLE_RATE  # 12.7 s vs 10.6 s
    _snr, corr = _compare(first.samples, second.samples)
    assert abs(corr) < 0.5


@pytest.mark.parametrize("stream", [2, 5, -1])
def test_stream_index_out_of_range(stream: int) -> None:
    with pytest.raises(AudioDecodeError) as err:
        decode_audio(MEDIA / "two_audio_streams.mkv", stream=stream)
    message = str(err.value)
    assert "two_audio_streams.mkv" in message
    assert "2 audio streams" in message
    assert "\n" not in message


def test_stream_index_out_of_range_single_stream() -> None:
    with pytest.raises(AudioDecodeError, match=r"has 1 audio stream \(0\.\.0\)"):
        decode_audio(MEDIA / "speech_a.wav", stream=1)


def test_mulaw_8k_upsampled() -> None:
    decoded = _decode("speech_c_8k_mulaw.wav")
    info = decoded.info
    assert info.codec == "pcm_mulaw"
    assert info.sample_rate == 8000
    assert decoded.samples.size == 2 * 100082  # exactly twice the 8 kHz sample count
    assert info.decoded_duration == pytest.approx(12.51025, abs=1e-6)
    x = decoded.samples.astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    total = power.sum()
    speech_band = power[(freqs > 300) & (freqs < 3400)].sum() / total
    above_4k2 = power[freqs > 4200].sum() / total
    above_4k5 = power[freqs > 4500].sum() / total
    assert speech_band > 0.5
    assert 10 * np.log10(above_4k2) < -45  # only the resampler's transition band leaks
    assert 10 * np.log10(above_4k5) < -60  # no spectral images of the 8 kHz source


@needs_ffmpeg
def test_mulaw_8k_matches_ffmpeg() -> None:
    ours = _decode("speech_c_8k_mulaw.wav").samples
    ref = _ffmpeg_f32(MEDIA / "speech_c_8k_mulaw.wav")
    assert ours.size == ref.size
    _snr, corr = _compare(ours, ref)
    assert corr >= 0.999


def test_stereo_downmix_is_average() -> None:
    """44.1 kHz stereo → mono: libswresample's downmix is (L + R) / 2, not L or R alone."""
    import av

    path = MEDIA / "speech_a_44k_stereo.mp3"
    with av.open(str(path)) as container:
        left = right = 0.0
        for frame in container.decode(audio=0):
            data = frame.to_ndarray().astype(np.float64)
            left += float(np.sum(data[0] ** 2))
            right += float(np.sum(data[1] ** 2))
    ours = _decode("speech_a_44k_stereo.mp3").samples.astype(np.float64)
    energy = float(np.sum(ours**2)) * 44100 / SAMPLE_RATE  # per-sample energy, rate-corrected
    # this file's channels are identical, so (L + R) / 2 has the energy of one channel;
    # swr's unnormalised float downmix, (L + R) / √2, would have twice that.
    assert left == pytest.approx(right, rel=1e-6)
    assert energy == pytest.approx((left + right) / 2, rel=0.02)


SYNTHETIC_FORMATS = [
    ("pcm_u8", 8000, 1, "wav"),
    ("pcm_s16le", 22050, 2, "wav"),
    ("pcm_s24le", 96000, 2, "wav"),
    ("pcm_s32le", 192000, 1, "wav"),
    ("pcm_f32le", 44100, 2, "wav"),
    ("pcm_f64le", 32000, 1, "wav"),
    ("pcm_s24le", 48000, 6, "wav"),  # 5.1, six different tones
    ("flac", 88200, 6, "flac"),
    ("libopus", 48000, 2, "ogg"),
]


@needs_ffmpeg
@pytest.mark.parametrize(
    ("codec", "rate", "channels", "ext"),
    SYNTHETIC_FORMATS,
    ids=[f"{c}-{r}-{n}ch" for c, r, n, _ in SYNTHETIC_FORMATS],
)
def test_sample_formats_rates_and_layouts(
    tmp_path: Path, codec: str, rate: int, channels: int, ext: str
) -> None:
    """Any rate 8-192 kHz, u8/s16/s24/s32/flt/dbl, mono to 5.1: same as the s16 pipeline."""
    path = tmp_path / f"tone.{ext}"
    cmd = [FFMPEG or "ffmpeg", "-nostdin", "-v", "error", "-y"]
    freqs = [300, 700, 1100, 1500, 1900, 60][:channels]
    for f in freqs:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={f}:sample_rate={rate}:duration=2"]
    if channels > 1:
        layout = {2: "stereo", 6: "5.1"}[channels]
        inputs = "".join(f"[{i}]" for i in range(channels))
        cmd += ["-filter_complex", f"{inputs}join=inputs={channels}:channel_layout={layout}[a]"]
        cmd += ["-map", "[a]"]
    cmd += ["-c:a", codec, str(path)]
    subprocess.run(cmd, check=True, timeout=60)

    decoded = decode_audio(path)
    assert decoded.info.sample_rate == rate
    assert decoded.info.channels == channels
    assert decoded.info.decoded_duration == pytest.approx(2.0, abs=0.03)
    ref = _ffmpeg_s16(path)
    assert abs(ref.size - decoded.samples.size) <= 2
    snr, _corr = _compare(decoded.samples, ref)
    assert snr >= 40, snr
    assert np.abs(decoded.samples).max() <= 1.0


def test_silence_and_noise() -> None:
    silence = _decode("silence_10s.wav").samples
    noise = _decode("noise_10s.wav").samples
    assert silence.size == noise.size == 10 * SAMPLE_RATE
    assert np.abs(silence).max() < 1e-4
    assert noise.std() > 0.01


# --------------------------------------------------------------------------- sources


def test_file_like_objects() -> None:
    path = MEDIA / "speech_a.m4a"
    reference = _decode("speech_a.m4a").samples
    with open(path, "rb") as fh:
        from_file = decode_audio(fh)
    assert np.array_equal(from_file.samples, reference)
    assert from_file.info.source == str(path)
    from_bytes = decode_audio(io.BytesIO(path.read_bytes()))
    assert np.array_equal(from_bytes.samples, reference)
    assert from_bytes.info.source == "<BytesIO>"


def test_non_seekable_file_like() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            return self._buf.readinto(b)

    reference = _decode("speech_a.ogg").samples
    decoded = decode_audio(Pipe((MEDIA / "speech_a.ogg").read_bytes()))
    assert np.array_equal(decoded.samples, reference)


def test_path_with_spaces_and_unicode(tmp_path: Path) -> None:
    folder = tmp_path / "dir with spaces ü"
    folder.mkdir()
    target = folder / "naïve 名前 – file.flac"
    shutil.copyfile(MEDIA / "speech_a.flac", target)
    reference = _decode("speech_a.flac").samples
    as_path = decode_audio(target)
    as_str = load_audio(str(target))
    assert np.array_equal(as_path.samples, reference)
    assert np.array_equal(as_str, reference)
    assert as_path.info.source == str(target)


def test_path_with_colon_is_a_file_not_a_protocol(tmp_path: Path) -> None:
    target = tmp_path / "concat:speech a.wav"
    shutil.copyfile(MEDIA / "speech_a.wav", target)
    decoded = decode_audio(target)
    assert np.array_equal(decoded.samples, _decode("speech_a.wav").samples)
    assert decoded.info.source == str(target)
    with pytest.raises(AudioFileNotFoundError):
        decode_audio("concat:" + str(MEDIA / "speech_a.wav"))  # not a local file name


def test_load_audio_returns_samples() -> None:
    samples = load_audio(MEDIA / "speech_a.wav")
    assert np.array_equal(samples, _decode("speech_a.wav").samples)


def test_bad_source_type() -> None:
    with pytest.raises(TypeError):
        decode_audio(12345)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.wav", "empty"),
        ("not_media.mp3", "not a recognised media file"),
        ("truncated.mp4", "header is damaged or missing"),
        ("video_only.mp4", "no audio stream"),
    ],
)
def test_bad_inputs(name: str, reason: str) -> None:
    with pytest.raises(AudioDecodeError) as err:
        decode_audio(MEDIA / name)
    assert not isinstance(err.value, AudioFileNotFoundError)
    message = str(err.value)
    assert name in message
    assert reason in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioFileNotFoundError, match=r"nope\.wav.*no such file"):
        decode_audio(missing)
    with pytest.raises(FileNotFoundError):  # also the built-in
        decode_audio(str(missing))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioFileNotFoundError, match="is a directory"):
        decode_audio(tmp_path)


def test_zero_length_audio(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
    with pytest.raises(AudioDecodeError, match=r"zero\.wav.*zero-length audio"):
        decode_audio(path)


def test_bad_input_via_iter_chunks() -> None:
    with pytest.raises(AudioDecodeError, match=r"video_only\.mp4"):
        next(iter_audio_chunks(MEDIA / "video_only.mp4"))


def _faststart_m4a(tmp_path: Path) -> bytes:
    """speech_a.m4a with its moov atom first, so a cut or garbled tail keeps the header."""
    out = tmp_path / "fast.m4a"
    cmd = [FFMPEG or "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(MEDIA / "speech_a.m4a")]
    cmd += ["-c", "copy", "-movflags", "+faststart", str(out)]
    subprocess.run(cmd, check=True, timeout=60)
    return out.read_bytes()


@needs_ffmpeg
def test_corrupt_packets_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = bytearray(_faststart_m4a(tmp_path))
    rng = np.random.default_rng(2)
    data[150_000:200_000] = rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    path = tmp_path / "garbled.m4a"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="infomux.audio"):
        decoded = decode_audio(path)
    assert decoded.info.decode_errors > 0
    assert 10 < decoded.info.decoded_duration < 27.8
    assert any(
        "garbled.m4a" in r.getMessage() and "could not be decoded" in r.getMessage()
        for r in caplog.records
    )
    # the intact start is unharmed
    reference = _decode("speech_a.m4a").samples
    n = 5 * SAMPLE_RATE
    assert np.array_equal(decoded.samples[:n], reference[:n])


@needs_ffmpeg
def test_cut_off_file_decodes_what_is_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _faststart_m4a(tmp_path)
    path = tmp_path / "half.m4a"
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="infomux.audio"):
        decoded = decode_audio(path)
    assert 10 < decoded.info.decoded_duration < 20
    assert decoded.info.duration == pytest.approx(27.845, abs=0.01)
    assert any("cut-off" in r.getMessage() for r in caplog.records)


def test_cut_off_mp3(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = (MEDIA / "speech_a_44k_stereo.mp3").read_bytes()
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="infomux.audio"):
        decoded = decode_audio(path)
    assert 12 < decoded.info.decoded_duration < 16
    reference = _decode("speech_a_44k_stereo.mp3").samples
    n = decoded.samples.size - SAMPLE_RATE
    assert np.array_equal(decoded.samples[:n], reference[:n])
    assert any("half.mp3" in r.getMessage() for r in caplog.records)


@needs_ffmpeg
def test_nothing_decodable_raises(tmp_path: Path) -> None:
    data = bytearray(_faststart_m4a(tmp_path))
    moov_end = data.index(b"mdat") + 4
    rng = np.random.default_rng(3)
    data[moov_end:] = rng.integers(0, 256, len(data) - moov_end, dtype=np.uint8).tobytes()
    path = tmp_path / "all_garbage.m4a"
    path.write_bytes(bytes(data))
    with pytest.raises(AudioDecodeError, match=r"all_garbage\.m4a.*no audio could be decoded"):
        decode_audio(path)


# --------------------------------------------------------------------------- mid-stream change


def _tone(path: Path, freq: int, rate: int, channels: int, seconds: float, codec: str) -> None:
    cmd = [FFMPEG or "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi"]
    cmd += ["-i", f"sine=frequency={freq}:sample_rate={rate}:duration={seconds}"]
    cmd += ["-ac", str(channels), "-c:a", codec]
    if codec == "libmp3lame":
        cmd += ["-write_xing", "0", "-id3v2_version", "0"]
    cmd.append(str(path))
    subprocess.run(cmd, check=True, timeout=60)


@needs_ffmpeg
@pytest.mark.parametrize(("codec", "ext"), [("aac", "aac"), ("libmp3lame", "mp3")])
def test_mid_stream_rate_and_layout_change(
    tmp_path: Path, codec: str, ext: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = tmp_path / f"first.{ext}"
    second = tmp_path / f"second.{ext}"
    _tone(first, 440, 44100, 2, 2.0, codec)
    _tone(second, 880, 22050, 1, 3.0, codec)
    joined = tmp_path / f"joined.{ext}"
    joined.write_bytes(first.read_bytes() + second.read_bytes())  # raw ADTS / MP3 frames

    with caplog.at_level(logging.INFO, logger="infomux.audio"):
        decoded = decode_audio(joined)
    assert any("changed mid-stream" in r.getMessage() for r in caplog.records)
    expected = decode_audio(first).samples.size + decode_audio(second).samples.size
    assert abs(decoded.samples.size - expected) <= 0.05 * SAMPLE_RATE
    assert decoded.info.decoded_duration == pytest.approx(5.0, abs=0.15)
    assert decoded.info.sample_rate == 44100 and decoded.info.channels == 2  # first frame's
    # content: 440 Hz first, 880 Hz after the switch, both at the right pitch
    s = decoded.samples
    assert _dominant_frequency(s[int(0.5 * SAMPLE_RATE) : int(1.5 * SAMPLE_RATE)]) == (
        pytest.approx(440, abs=5)
    )
    assert _dominant_frequency(s[int(3.0 * SAMPLE_RATE) : int(4.5 * SAMPLE_RATE)]) == (
        pytest.approx(880, abs=5)
    )
    # ffmpeg CLI agrees: identical before the switch; after it the CLI has dropped the
    # old resampler's tail (16-32 samples) where we flush it, so align before comparing.
    ref = _ffmpeg_f32(joined)
    assert abs(ref.size - s.size) <= 0.05 * SAMPLE_RATE
    head = int(1.8 * SAMPLE_RATE)
    assert _compare(s[:head], ref[:head])[1] >= 0.99
    tail_ours = s[int(3.0 * SAMPLE_RATE) : int(4.5 * SAMPLE_RATE)]
    best = max(
        _compare(tail_ours, ref[int(3.0 * SAMPLE_RATE) - lag : int(4.5 * SAMPLE_RATE) - lag])[1]
        for lag in range(0, 129)
    )
    assert best >= 0.99


# --------------------------------------------------------------------------- buffer, chunks


def test_buffer_growth_gives_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """A capacity estimate far too small must grow the buffer, not lose samples."""
    reference = _decode("speech_a.flac").samples
    monkeypatch.setattr(audio.decode, "_MAX_INITIAL_SECONDS", 0.5)
    grown = decode_audio(MEDIA / "speech_a.flac").samples
    assert np.array_equal(grown, reference)
    assert grown.flags.owndata and grown.flags.c_contiguous


def test_result_owns_trimmed_buffer() -> None:
    samples = _decode("speech_a.m4a").samples
    assert samples.flags.owndata  # trimmed in place, not a view of a larger buffer
    assert samples.base is None


def test_iter_audio_chunks_equals_full_decode() -> None:
    full = _decode("long_speech.mp3").samples
    chunks = list(iter_audio_chunks(MEDIA / "long_speech.mp3"))
    size = 30 * SAMPLE_RATE
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert all(c.size == size for c in chunks[:-1])
    assert 0 < chunks[-1].size <= size
    assert sum(c.size for c in chunks) == full.size
    assert np.array_equal(np.concatenate(chunks), full)


@pytest.mark.parametrize("name", ["speech_a_video.mp4", "speech_c_8k_mulaw.wav"])
def test_iter_audio_chunks_odd_size(name: str) -> None:
    full = _decode(name).samples
    chunks = list(iter_audio_chunks(MEDIA / name, chunk_seconds=0.7))
    assert {c.size for c in chunks[:-1]} == {int(0.7 * SAMPLE_RATE)}
    assert np.array_equal(np.concatenate(chunks), full)


def test_iter_audio_chunks_stream_and_early_stop() -> None:
    second = _decode("two_audio_streams.mkv", 1).samples
    gen = iter_audio_chunks(MEDIA / "two_audio_streams.mkv", chunk_seconds=4, stream=1)
    head = next(gen)
    gen.close()  # closes the container; no warnings (pytest turns them into errors)
    assert np.array_equal(head, second[: 4 * SAMPLE_RATE])


def test_iter_audio_chunks_bad_chunk_size() -> None:
    with pytest.raises(ValueError):
        next(iter_audio_chunks(MEDIA / "speech_a.wav", chunk_seconds=0))


# --------------------------------------------------------------------------- write_wav


def test_write_wav_round_trip(tmp_path: Path) -> None:
    samples = _decode("speech_a.m4a").samples
    out = tmp_path / "audio.wav"
    write_wav(out, samples)
    with wave.open(str(out), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == SAMPLE_RATE
        assert wav.getnframes() == samples.size
    back = decode_audio(out)
    assert back.info.codec == "pcm_s16le"
    assert back.samples.size == samples.size
    assert np.abs(back.samples - samples).max() <= 0.5 / 32768 + 1e-7
    assert [p.name for p in tmp_path.iterdir()] == ["audio.wav"]  # no temp files left
    assert out.stat().st_mode & 0o777 == 0o666 & ~storage.current_umask()  # not 0600


def test_write_wav_clips_and_replaces(tmp_path: Path) -> None:
    out = tmp_path / "audio.wav"
    out.write_bytes(b"old content")
    write_wav(out, np.array([0.0, 2.0, -2.0, 0.5, np.nan, -1.0], dtype=np.float64))
    with wave.open(str(out), "rb") as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert pcm.tolist() == [0, 32767, -32768, 16384, 0, -32768]


def test_write_wav_other_rate_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "8k.wav"
    write_wav(out, np.zeros(800, dtype=np.float32), sample_rate=8000)
    with wave.open(str(out), "rb") as wav:
        assert wav.getframerate() == 8000
    with pytest.raises(ValueError):
        write_wav(tmp_path / "x.wav", np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(TypeError):
        write_wav(tmp_path / "x.wav", np.zeros(10, dtype=np.int16))
    with pytest.raises(ValueError):
        write_wav(tmp_path / "x.wav", np.zeros(10, dtype=np.float32), sample_rate=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["8k.wav"]


def test_quantize_s16_gives_what_audio_wav_holds(tmp_path: Path) -> None:
    """The engine's samples on a first run equal those a resume reads from audio.wav."""
    decoded = _decode("speech_a_44k_stereo.mp3").samples
    loud = decoded * np.float32(3.0 / np.abs(decoded).max())  # peaks at ±3: clipped
    loud[[10, 20, 30]] = [np.nan, np.inf, -np.inf]
    for samples in (decoded, loud):
        out = tmp_path / "audio.wav"
        write_wav(out, samples)
        on_disk = load_audio(out)
        quantized = quantize_s16(samples)
        assert quantized.dtype == np.float32 and quantized.flags.c_contiguous
        np.testing.assert_array_equal(quantized, on_disk)
        assert not np.array_equal(quantized, samples)  # it did change something
        in_place = samples.copy()
        assert quantize_s16(in_place, out=in_place) is in_place
        np.testing.assert_array_equal(in_place, on_disk)
        write_wav(out, quantized)  # idempotent: the file does not change
        np.testing.assert_array_equal(load_audio(out), on_disk)
    assert np.nanmax(loud) > 1 and np.abs(quantize_s16(loud)).max() == 1.0
    with pytest.raises(ValueError):
        quantize_s16(decoded, out=np.empty(3, dtype=np.float32))
    with pytest.raises(TypeError):
        quantize_s16(np.zeros(4, dtype=np.int16))


# --------------------------------------------------------------------------- import cost


def test_import_does_not_load_av() -> None:
    code = "import sys, infomux.audio; print('av' in sys.modules)"
    env = dict(os.environ)
    src = str(Path(infomux.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
