"""Silero voice activity detection (whisper.cpp's ``whisper_vad_*`` API), offline.

The model is Silero VAD v6.2 in ggml form. The pinned whisper.cpp source carries it
(``models/for-tests-silero-v6.2.0-ggml.bin``: real weights despite the name); the build
ships it as package data and :func:`default_vad_model` installs it into the model cache
on first use, checked against its pinned sha256. Nothing is downloaded.

Used two ways: ``--vad`` (whisper.cpp's own VAD, which transcribes only the speech) and
:func:`find_cuts`, which only picks the silences where a long recording is cut into
parts transcribed in parallel (the speech itself is left as it is).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infomux.errors import EngineError, ModelError, ModelNotFoundError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("infomux.vad")

VAD_MODEL_NAME = "silero-v6.2.0"
VAD_MODEL_FILE = "ggml-silero-v6.2.0.bin"
VAD_MODEL_SHA256 = "2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987"
VAD_MODEL_SIZE = 885_098
_PACKAGED = Path(__file__).resolve().parent / "data" / VAD_MODEL_FILE
_INSTALL_LOCK = threading.Lock()

_GGML_MAGIC = 0x67676D6C
# The layout whisper.cpp 1.8.5's VAD loader hard-codes: (name, ggml type, shape).
_F32, _F16 = 0, 1
_TENSORS: dict[bytes, tuple[int, tuple[int, ...]]] = {
    b"_model.encoder.0.reparam_conv.weight": (_F16, (3, 129, 128)),
    b"_model.encoder.0.reparam_conv.bias": (_F32, (128,)),
    b"_model.encoder.1.reparam_conv.weight": (_F16, (3, 128, 64)),
    b"_model.encoder.1.reparam_conv.bias": (_F32, (64,)),
    b"_model.encoder.2.reparam_conv.weight": (_F16, (3, 64, 64)),
    b"_model.encoder.2.reparam_conv.bias": (_F32, (64,)),
    b"_model.encoder.3.reparam_conv.weight": (_F16, (3, 64, 128)),
    b"_model.encoder.3.reparam_conv.bias": (_F32, (128,)),
    b"_model.decoder.rnn.weight_ih": (_F32, (128, 512)),
    b"_model.decoder.rnn.weight_hh": (_F32, (128, 512)),
    b"_model.decoder.rnn.bias_ih": (_F32, (512,)),
    b"_model.decoder.rnn.bias_hh": (_F32, (512,)),
    b"_model.decoder.decoder.2.weight": (_F16, (128,)),
    b"_model.decoder.decoder.2.bias": (_F32, ()),
    b"_model.stft.forward_basis_buffer": (_F16, (256, 1, 258)),
}
_ENCODER_LAYERS = ((129, 128, 3), (128, 64, 3), (64, 64, 3), (64, 128, 3))


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of speech, in seconds from the start of the audio."""

    start: float
    end: float


@dataclass(frozen=True)
class VadOptions:
    """Silero VAD settings (whisper.cpp's defaults)."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30


def validate_vad_model_file(path: str | os.PathLike[str]) -> None:
    """Check that ``path`` is a Silero VAD ggml file whisper.cpp 1.8.5 can load safely.

    whisper.cpp's VAD loader trusts the file (a short or corrupt one can crash it), so
    the whole layout is checked first: magic, model type, hyper-parameters, and the
    tensor table (names, types, shapes), ending exactly at the end of the file.

    Raises:
        ModelNotFoundError: no such file.
        ModelError: anything else wrong, one line naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"VAD model not found: {p}")
    data = p.read_bytes()

    def bad(why: str) -> ModelError:
        return ModelError(f"{p}: not a Silero VAD ggml model ({why})")

    pos = 0

    def ints(count: int) -> tuple[int, ...]:
        nonlocal pos
        if pos + 4 * count > len(data):
            raise bad("truncated")
        values = struct.unpack_from(f"<{count}i", data, pos)
        pos += 4 * count
        return values

    if len(data) < 4 or struct.unpack_from("<I", data)[0] != _GGML_MAGIC:
        raise bad("bad magic")
    pos = 4
    (type_len,) = ints(1)
    if not 0 < type_len <= 64 or pos + type_len > len(data):
        raise bad("bad model type")
    model_type = data[pos : pos + type_len]
    pos += type_len
    if model_type != b"silero-16k":
        raise bad(f"model type {model_type!r}")
    ints(3)  # version
    n_window, n_context = ints(2)
    if (n_window, n_context) != (512, 64):
        raise bad(f"window {n_window}/{n_context}")
    (n_layers,) = ints(1)
    if n_layers != len(_ENCODER_LAYERS):
        raise bad(f"{n_layers} encoder layers")
    if tuple(ints(3) for _ in range(n_layers)) != _ENCODER_LAYERS:
        raise bad("encoder channels")
    if ints(4) != (128, 128, 128, 1):
        raise bad("LSTM / output sizes")
    seen: set[bytes] = set()
    while pos < len(data):
        n_dims, name_len, ttype = ints(3)
        if not 0 <= n_dims <= 4 or not 0 < name_len <= 256:
            raise bad("corrupt tensor table")
        shape = ints(n_dims)
        name = data[pos : pos + name_len]
        pos += name_len
        expected = _TENSORS.get(name)
        if expected is None or name in seen:
            raise bad(f"unexpected tensor {name!r}")
        if (ttype, shape) != expected:
            raise bad(f"tensor {name.decode()} has type {ttype} shape {shape}")
        count = 1
        for dim in shape:
            count *= dim
        pos += count * (4 if ttype == _F32 else 2)
        seen.add(name)
    if pos != len(data):
        raise bad("truncated")
    if seen != set(_TENSORS):
        raise bad(f"{len(_TENSORS) - len(seen)} tensors missing")


def default_vad_model() -> Path:
    """The bundled Silero VAD model in the model cache, installed there on first use.

    Raises:
        ModelNotFoundError: this build of infomux carries no VAD model (an installed
            whisper.cpp was used); give one with ``--vad-model``.
        ModelError: the bundled file is not the pinned one.
    """
    from infomux import config, storage

    dest = config.models_dir() / VAD_MODEL_FILE
    with _INSTALL_LOCK:
        if dest.is_file() and dest.stat().st_size == VAD_MODEL_SIZE:
            return dest
        if not _PACKAGED.is_file():
            raise ModelNotFoundError(
                "this infomux build has no bundled VAD model (it was built against an "
                "installed whisper.cpp); pass a Silero ggml model with --vad-model PATH"
            )
        payload = _PACKAGED.read_bytes()
        import hashlib

        digest = hashlib.sha256(payload).hexdigest()
        if digest != VAD_MODEL_SHA256:
            raise ModelError(f"{_PACKAGED}: sha256 {digest} is not the pinned Silero VAD model")
        dest.parent.mkdir(parents=True, exist_ok=True)
        storage.atomic_write_bytes(dest, payload)
        log.info("installed the Silero VAD model %s into %s", VAD_MODEL_NAME, dest)
        return dest


def vad_model_record(path: Path) -> dict[str, Any]:
    """What job.json records about a VAD model file."""
    from infomux import storage

    return {
        "name": VAD_MODEL_NAME if path.name == VAD_MODEL_FILE else path.name,
        "path": str(path),
        "sha256": storage.sha256_file(path),
        "size_bytes": path.stat().st_size,
    }


class VadModel:
    """A loaded Silero VAD model (validated before whisper.cpp reads it)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, n_threads: int = 1) -> None:
        """Load ``path`` (default: :func:`default_vad_model`)."""
        from infomux.engine import _native

        self.path = Path(path) if path is not None else default_vad_model()
        validate_vad_model_file(self.path)
        native = _native()
        try:
            self._vad: Any = native.VadModel(str(self.path), n_threads=max(1, n_threads))
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: {exc}") from exc

    def speech(self, samples: np.ndarray, options: VadOptions | None = None) -> list[SpeechSpan]:
        """Speech spans of 16 kHz mono float32 ``samples``."""
        from infomux.engine import _native, as_float32_audio

        options = options or VadOptions()
        native = _native()
        params = native.VadParams()
        params.threshold = options.threshold
        params.min_speech_ms = options.min_speech_ms
        params.min_silence_ms = options.min_silence_ms
        params.speech_pad_ms = options.speech_pad_ms
        array = as_float32_audio(samples)
        try:
            spans = self._vad.speech(array, params)
        except native.EngineFailure as exc:
            raise EngineError(str(exc)) from exc
        return [SpeechSpan(float(a), float(b)) for a, b in spans]

    def close(self) -> None:
        """Free the native model."""
        self._vad.close()

    def __enter__(self) -> VadModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def best_gap(
    spans: Sequence[SpeechSpan],
    lo: float,
    hi: float,
    target: float,
    *,
    min_gap: float = 0.2,
    pause: float = 0.6,
) -> float | None:
    """Where to cut near ``target``: the middle of a silence between two speech spans.

    A pause of at least ``pause`` seconds nearest ``target`` wins (parts of equal
    length finish together); without one, the longest silence of at least ``min_gap``
    seconds. Only silences inside ``[lo, hi]`` count: the edges of the range are not
    silences (speech may go on beyond them), and a range with no speech at all is cut
    at ``target``. None when there is no silence long enough.
    """
    inside = sorted((s for s in spans if s.end > lo and s.start < hi), key=lambda s: s.start)
    if not inside:
        return round(target, 2)
    best: tuple[bool, float, float] | None = None
    previous_end = inside[0].end
    for span in inside[1:]:
        gap = span.start - previous_end
        if gap >= min_gap:
            middle = (previous_end + span.start) / 2
            is_pause = gap >= pause
            # pauses: nearest first; shorter gaps: longest first, then nearest
            key = (is_pause, -abs(middle - target) if is_pause else gap, middle)
            if best is None or key[:2] > best[:2]:
                best = key
        previous_end = max(previous_end, span.end)
    return None if best is None else round(best[2], 2)


def find_cuts(
    vad: VadModel,
    samples: np.ndarray,
    parts: int,
    *,
    min_part: float = 60.0,
    search: float = 30.0,
    min_gap: float = 0.2,
) -> list[float]:
    """Where to cut 16 kHz ``samples`` into at most ``parts`` parts, in seconds.

    Near each equal split (within ``search`` seconds of it) Silero VAD looks for
    speech, and the cut goes in the middle of the longest silence there
    (:func:`best_gap`), so no word is cut. Only those stretches are run through VAD,
    not the whole recording. Parts shorter than ``min_part`` seconds are not made
    (each part pays at least one 30 s encoder window). The cuts depend only on the
    audio: the same input always gives the same cuts.
    """
    from infomux.engine import SAMPLE_RATE as rate

    duration = samples.size / rate
    parts = min(parts, int(duration // min_part)) if min_part > 0 else parts
    cuts: list[float] = []
    for i in range(1, max(parts, 1)):
        target = i * duration / parts
        lo = max(0.0, target - search)
        hi = min(duration, target + search)
        found = vad.speech(samples[int(lo * rate) : int(hi * rate)])
        spans = [SpeechSpan(s.start + lo, s.end + lo) for s in found]
        cut = best_gap(spans, lo, hi, target, min_gap=min_gap)
        if cut is None:
            log.info("no silence of %.1f s near %.1f s: no cut there", min_gap, target)
            continue
        if (not cuts or cut - cuts[-1] >= min_part) and duration - cut >= min_part / 2:
            cuts.append(cut)
    return cuts
