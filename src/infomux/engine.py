"""Typed wrapper over the native whisper.cpp binding (``infomux._whisper``).

Load a model once, transcribe many 16 kHz mono float32 buffers::

    from infomux.engine import Model, TranscribeOptions
    with Model("ggml-tiny.en.bin") as model:
        transcript = model.transcribe(samples, TranscribeOptions(n_threads=2))
        print(transcript.text)

Inference runs with the GIL released. Ctrl-C raises ``KeyboardInterrupt`` out of
:meth:`Model.transcribe` at whisper.cpp's next check, which comes between encoder and
decoder passes (within one encoder pass); a set ``cancel`` event raises
:class:`~infomux.errors.TranscriptionCancelled` the same way. An exception raised in a
callback stops inference and is re-raised in the caller as itself. One :class:`Model`
may be used from several threads at once: the weights are loaded once and each
concurrent call runs on its own whisper.cpp state (see :attr:`Model.n_states`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infomux.errors import EngineError, ModelError, TranscriptionCancelled

if TYPE_CHECKING:
    import numpy as np

    from infomux import _whisper

SAMPLE_RATE = 16000
"""whisper.cpp's rate (``_whisper.SAMPLE_RATE``; ``infomux.audio.SAMPLE_RATE`` is the same)."""
_native_logger = logging.getLogger("infomux.whisper")


def _native() -> Any:
    """Import the extension module (lazily: it is not needed to start the CLI)."""
    try:
        from infomux import _whisper
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EngineError(
            f"the native engine infomux._whisper is not built or not importable: {exc}"
        ) from exc
    return _whisper


def default_threads() -> int:
    """Threads used when none are given: all cores, at most 4 (whisper.cpp scales poorly beyond)."""
    return max(1, min(4, os.cpu_count() or 1))


MAX_DECODERS = 8
"""whisper.cpp's WHISPER_MAX_DECODERS: the most sequences a beam or best-of may hold."""


@dataclass(frozen=True)
class TranscribeOptions:
    """Decoding options. Every default is set here explicitly and recorded in job.json."""

    language: str | None = None
    """Spoken language code ("en", "de", ...); ``None`` detects it (English-only models: "en")."""
    translate: bool = False
    """Translate to English instead of transcribing."""
    n_threads: int | None = None
    """CPU threads; ``None`` means :func:`default_threads`."""
    beam_size: int = 1
    """1 decodes greedily; more uses beam search."""
    best_of: int = 1
    """Candidates sampled when the temperature fallback samples."""
    temperature: float = 0.0
    """Initial sampling temperature."""
    temperature_increment: float = 0.2
    """Temperature added on each fallback when decoding fails its thresholds; 0 disables."""
    initial_prompt: str | None = None
    """Text given to the decoder as previous context for the first window."""
    word_timestamps: bool = False
    """Compute token-level timestamps and group them into words."""
    max_segment_length: int = 0
    """Split segments longer than this many characters; 0 leaves them as decoded."""
    split_on_word: bool = False
    """With ``max_segment_length``, split on word boundaries instead of tokens."""
    no_context: bool = False
    """Do not condition each window on the previous window's text."""
    suppress_blank: bool = True
    """Suppress blank outputs at the start of a window."""
    suppress_non_speech: bool = False
    """Suppress non-speech tokens (music notes, brackets, ...)."""
    vad: bool = False
    """Transcribe only the speech found by Silero VAD (needs ``vad_model``)."""
    vad_model: str | None = None
    """Path of a ggml Silero VAD model."""
    skip_silent_tail: bool = True
    """Before another 30 s encoder pass for at most 5 s left after the last segment, ask
    Silero VAD (the bundled model) whether anything is said there; if not, stop."""
    short_last_window: bool = True
    """Encode a last window holding at most 4.12 s of audio with a 5.12 s audio context
    instead of 30 s (patch 0007: about a sixth of the encoder's work for that window;
    the text of every short file of the shared media is unchanged)."""
    streams: int = 1
    """Cut a long recording at silences into this many parts transcribed in parallel
    (``n_threads`` shared among them); 1 transcribes it in one pass; 0 chooses from
    ``n_threads`` and the length (see :mod:`infomux.streams`)."""

    batch_decoder: bool = False
    """When several transcriptions run on this model at once (``streams`` parts, or
    several inputs of one run), compute their decoder steps in one graph (patch 0011:
    the weights are read once per step for all of them, on all their threads)."""

    def resolved_threads(self) -> int:
        """Return the thread count that will actually be used."""
        return self.n_threads if self.n_threads else default_threads()

    def to_dict(self) -> dict[str, Any]:
        """Return every option, defaults included, with ``n_threads`` resolved."""
        data = dataclasses.asdict(self)
        data["n_threads"] = self.resolved_threads()
        return data

    def validate(self) -> None:
        """Raise ``ValueError`` for options whisper.cpp would misread."""
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {self.n_threads}")
        if self.beam_size < 1 or self.best_of < 1:
            raise ValueError("beam_size and best_of must be at least 1")
        if max(self.beam_size, self.best_of) > MAX_DECODERS:
            raise ValueError(
                f"beam_size and best_of can be at most {MAX_DECODERS} (whisper.cpp's decoders)"
            )
        if self.temperature < 0 or self.temperature_increment < 0:
            raise ValueError("temperature and temperature_increment must not be negative")
        if self.max_segment_length < 0:
            raise ValueError("max_segment_length must not be negative")
        if self.streams < 0:
            raise ValueError(f"streams must be 0 (automatic) or more, got {self.streams}")
        if self.vad and not self.vad_model:
            raise ValueError("vad=True needs vad_model, the path of a ggml Silero VAD model")
        if self.vad and self.vad_model and not Path(self.vad_model).is_file():
            raise ValueError(f"VAD model not found: {self.vad_model}")
        language = self.language
        if language not in (None, "auto") and _native().lang_id(language) < 0:
            raise ValueError(f"unknown language code {language!r}")


@dataclass(frozen=True)
class Word:
    """A word with its time span (seconds) and mean token probability."""

    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Token:
    """A decoder token; ``text`` is decoded with replacement (a character may span tokens)."""

    id: int
    text: str
    probability: float
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """A span of transcribed speech; times in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    no_speech_prob: float
    tokens: tuple[Token, ...] = ()
    words: tuple[Word, ...] = ()

    def to_dict(self, *, tokens: bool = False) -> dict[str, Any]:
        """Return the segment as JSON-friendly data (tokens only when asked)."""
        data: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "no_speech_prob": self.no_speech_prob,
        }
        if self.words:
            data["words"] = [dataclasses.asdict(w) for w in self.words]
        if tokens:
            data["tokens"] = [dataclasses.asdict(t) for t in self.tokens]
        return data


@dataclass(frozen=True)
class Transcript:
    """The result of one transcription."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float | None
    duration: float
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    timings: dict[str, float] = field(default_factory=dict)
    cuts: tuple[float, ...] = ()
    """Where the recording was cut into parts transcribed in parallel (seconds)."""
    streams: int = 1
    """Parts transcribed in parallel (1: one pass)."""
    threads_per_stream: int = 0
    """Threads of each part (0: not split; ``options.n_threads`` were used)."""
    tail_skipped: float = 0.0
    """Seconds of speechless tail not encoded (``skip_silent_tail``), summed over parts."""

    @property
    def text(self) -> str:
        """All segments' text, joined and stripped."""
        return "".join(s.text for s in self.segments).strip()

    def to_dict(self) -> dict[str, Any]:
        """Return the transcript as JSON-friendly data."""
        return {
            "text": self.text,
            "language": self.language,
            "language_probability": self.language_probability,
            "duration": self.duration,
            "segments": [s.to_dict() for s in self.segments],
        }


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _words_from_tokens(tokens: list[tuple[int, bytes, float, int, int]], eot: int) -> list[Word]:
    """Group text tokens into words: a token starting with a space starts a new word.

    Bytes are joined before decoding, so a character split across tokens survives.
    """
    words: list[Word] = []
    raw = b""
    probs: list[float] = []
    start = end = 0

    def flush() -> None:
        text = _decode(raw).strip()
        if text:
            words.append(Word(start / 100.0, end / 100.0, text, sum(probs) / len(probs)))

    for tid, text, p, t0, t1 in tokens:
        if tid >= eot:  # special and timestamp tokens
            continue
        if text.startswith(b" ") and raw:
            flush()
            raw, probs = b"", []
        if not raw:
            start = t0
        raw += text
        probs.append(p)
        end = t1
    if raw:
        flush()
    return words


def _segment(raw: tuple[Any, ...], eot: int, with_words: bool) -> Segment:
    t0, t1, text, no_speech_prob, tokens = raw
    return Segment(
        start=t0 / 100.0,
        end=t1 / 100.0,
        text=_decode(text),
        no_speech_prob=float(no_speech_prob),
        tokens=tuple(
            Token(tid, _decode(ttext), float(p), tt0 / 100.0, tt1 / 100.0)
            for tid, ttext, p, tt0, tt1 in tokens
        ),
        words=tuple(_words_from_tokens(tokens, eot)) if with_words else (),
    )


def _tail_vad_model() -> str:
    """The bundled VAD model for the speechless-tail check, or "" where there is none."""
    from infomux.errors import InfomuxError
    from infomux.vad import default_vad_model

    try:
        return str(default_vad_model())
    except (InfomuxError, OSError) as exc:
        logging.getLogger("infomux.engine").debug("no speechless-tail check: %s", exc)
        return ""


def as_float32_audio(audio: Any) -> np.ndarray:
    """Return ``audio`` as a 1-D C-contiguous float32 array, copying only if needed.

    Raises:
        TypeError: not a numeric array, or integer PCM (scale it to [-1, 1] first).
        ValueError: not 1-D, or contains NaN/inf.
    """
    import numpy as np

    array = np.asarray(audio)
    if array.dtype.kind not in "f":
        raise TypeError(
            f"audio must be floating point PCM in [-1, 1] (float32), got dtype {array.dtype}"
            + (
                " (divide integer PCM by its full scale, e.g. 32768)"
                if array.dtype.kind in "iu"
                else ""
            )
        )
    if array.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples, got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    # One pass without a temporary array: a NaN or inf anywhere makes the sum non-finite.
    if array.size and not np.isfinite(np.sum(array, dtype=np.float64)):
        raise ValueError("audio contains NaN or infinite samples")
    return array


class Model:
    """A whisper.cpp model loaded once and used for many transcriptions."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        use_gpu: bool = True,
        flash_attn: bool = True,
        encoder_bf16: bool | None = None,
    ) -> None:
        """Validate and load the ggml model at ``path``.

        Args:
            path: a ggml Whisper model file.
            use_gpu: use a GPU backend when the build has one.
            flash_attn: whisper.cpp's flash attention.
            encoder_bf16: keep an f16 file's encoder matrices in bf16 (patch 0012:
                faster on CPUs with AVX512-BF16; the text can change slightly). ``None``
                decides with :func:`encoder_bf16_default`. Ignored for other files.

        Raises:
            ModelNotFoundError: no such file.
            ModelError: not a valid ggml Whisper model, whisper.cpp refused it, or
                ``encoder_bf16=True`` on a build without patch 0012.
        """
        from infomux.ggml import validate_model_file

        self.path = Path(path)
        self.header = validate_model_file(self.path)
        native = _native()
        native.set_log_level(_native_logger.getEffectiveLevel())
        if encoder_bf16 is None:
            encoder_bf16 = encoder_bf16_default(
                use_gpu=use_gpu, multilingual=self.header.is_multilingual
            )
        elif encoder_bf16 and ENCODER_BF16_PATCH not in build_info()["patches"]:
            raise ModelError(
                f"{self.path}: bf16 encoder matrices need whisper.cpp patch {ENCODER_BF16_PATCH}, "
                "which this build does not have"
            )
        try:
            self._model: _whisper.Model | None = native.Model(
                str(self.path), use_gpu=use_gpu, flash_attn=flash_attn, encoder_bf16=encoder_bf16
            )
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: {exc}") from exc
        self.encoder_type: str = "bf16" if self._model.encoder_bf16 else self.header.weight_type
        """Type of the encoder's matrices in memory (``bf16``, or the file's type)."""
        self.is_multilingual: bool = self._native_model.is_multilingual
        self._eot: int = self._native_model.token_eot
        self.token_beg: int = self._native_model.token_beg
        """Id of the first timestamp token (``<|0.00|>``); timestamps follow it."""

    @property
    def _native_model(self) -> _whisper.Model:
        if self._model is None:
            raise ValueError("the model is closed")
        return self._model

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions | None = None,
        *,
        on_segment: Callable[[Segment], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
        prompt_tokens: Sequence[int] | None = None,
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 ``audio``.

        Args:
            audio: samples in [-1, 1]; a C-contiguous float32 1-D array is used as is.
            options: decoding options (defaults: greedy, language detected).
            on_segment: called with each new :class:`Segment` as it is decoded.
            on_progress: called with the percentage done.
            cancel: when set, inference stops and :class:`TranscriptionCancelled` is raised.
            prompt_tokens: token ids given to the decoder as what came before (to go on
                with a transcription exactly as whisper.cpp would have: the ids of the
                segments' tokens so far); ``options.initial_prompt`` is then not used.

        Raises:
            TypeError, ValueError: unusable audio or options.
            TranscriptionCancelled: ``cancel`` was set.
            EngineError: whisper.cpp failed.
        """
        options = options or TranscribeOptions()
        options.validate()
        samples = as_float32_audio(audio)
        duration = samples.size / SAMPLE_RATE
        if samples.size == 0:
            return Transcript((), options.language or "", None, 0.0, options)
        if options.streams != 1 and not options.vad and not prompt_tokens:
            from infomux import streams

            parts = streams.auto_parts(options, duration)
            if parts > 1:
                return streams.transcribe_in_parts(
                    self,
                    samples,
                    options,
                    parts=parts,
                    on_segment=on_segment,
                    on_progress=on_progress,
                    cancel=cancel,
                )
            options = dataclasses.replace(options, streams=1)

        native = _native()
        native.set_log_level(_native_logger.getEffectiveLevel())
        params = native.DecodeParams()
        params.language = options.language or ""
        params.translate = options.translate
        params.n_threads = options.resolved_threads()
        params.beam_size = options.beam_size
        params.best_of = options.best_of
        params.temperature = options.temperature
        params.temperature_inc = options.temperature_increment
        params.initial_prompt = options.initial_prompt or ""
        if prompt_tokens:
            params.prompt_tokens = [int(t) for t in prompt_tokens]
        params.token_timestamps = options.word_timestamps
        params.max_len = options.max_segment_length
        params.split_on_word = options.split_on_word
        params.no_context = options.no_context
        params.suppress_blank = options.suppress_blank
        params.suppress_nst = options.suppress_non_speech
        params.vad = options.vad
        params.vad_model_path = options.vad_model or ""
        params.tail_vad_model = _tail_vad_model() if options.skip_silent_tail else ""
        params.short_last_window = options.short_last_window
        params.batch_decoder = options.batch_decoder

        with_words = options.word_timestamps
        eot = self._eot
        segment_cb = None
        if on_segment is not None:
            user_cb = on_segment

            def segment_cb(raw: tuple[Any, ...]) -> None:
                user_cb(_segment(raw, eot, with_words))

        should_abort = cancel.is_set if cancel is not None else None
        if options.vad and options.vad_model:
            from infomux.vad import validate_vad_model_file

            validate_vad_model_file(Path(options.vad_model))
        try:
            result = self._native_model.transcribe(
                samples, params, segment_cb, on_progress, should_abort
            )
        except native.AbortedError as exc:
            raise TranscriptionCancelled("transcription cancelled") from exc
        except native.EngineFailure as exc:
            raise EngineError(str(exc)) from exc
        # anything else (a callback's own exception, ValueError for bad input) is itself
        return Transcript(
            segments=tuple(_segment(raw, eot, with_words) for raw in result["segments"]),
            language=result["language"],
            language_probability=result["language_probability"],
            duration=duration,
            options=options,
            timings=dict(result["timings"]),
            tail_skipped=float(result["tail_skipped_s"]),
        )

    @property
    def n_states(self) -> int:
        """whisper.cpp states made so far: one per call that ran at the same time as others."""
        return int(self._native_model.n_states)

    def close(self) -> None:
        """Free the native model (after calls running on other threads finish).

        Further calls raise ``ValueError``; calling it from inside a callback of one of
        this model's own calls raises ``RuntimeError``.
        """
        if self._model is not None:
            self._model.close()
            self._model = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._model is None else "open"
        return f"<infomux.engine.Model {str(self.path)!r} {state}>"


ENCODER_BF16_PATCH = "0012-encoder-bf16.patch"
"""The whisper.cpp patch that keeps the encoder's matrices in bf16."""


def encoder_bf16_default(*, use_gpu: bool = True, multilingual: bool = False) -> bool:
    """Whether a model keeps its encoder's f16 matrices in bf16 when not told.

    Yes where it was measured to pay without costing words: an English-only model, a
    build with patch 0012 whose CPU code uses AVX512-BF16 (with GGML_NATIVE, the CPU has
    the instruction), and no GPU backend that would run the encoder instead (GPUs keep
    whisper.cpp's f16). Elsewhere ggml would convert every bf16 element in software,
    which is slower than f16. Multilingual models keep f16: with bf16, base's
    translation of the Japanese sample lost words that f16 finds.
    """
    if multilingual:
        return False
    info = build_info()
    if ENCODER_BF16_PATCH not in info["patches"] or "AVX512_BF16" not in info["cpu_features"]:
        return False
    gpu_backends = [b for b in info["backends"] if b.upper() not in ("CPU", "BLAS")]
    return not (use_gpu and gpu_backends)


def build_info() -> dict[str, Any]:
    """Return what the native engine was built with, for job.json and ``infomux doctor``."""
    native = _native()
    system = native.system_info()
    features = sorted(
        part.split("=")[0].split(":")[-1].strip()
        for part in system.split("|")
        if "=" in part and part.split("=")[1].strip() == "1"
    )
    options = [opt for opt in native.BUILD_OPTIONS.split(",") if opt]
    patches = getattr(native, "PATCHES", "none")
    return {
        "infomux_native_version": native.__version__,
        "whisper_cpp_version": native.whisper_version(),
        "whisper_cpp_origin": native.WHISPER_ORIGIN,
        "patches": [p for p in patches.split(",") if p and p != "none"],
        "llamafile": "GGML_LLAMAFILE" in options,
        "build_options": options,
        "backends": list(native.backend_names()),
        "cpu_features": features,
        "system_info": system.strip(),
    }
