"""Step ``transcribe``: run whisper.cpp on the audio and write the transcript files."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from infomux import storage
from infomux.errors import InfomuxError, StepError
from infomux.partial import PartialTranscript
from infomux.steps import OptionSpec, StepContext, StepResult, register_step
from infomux.steps.extract_audio import AUDIO_FILE

log = logging.getLogger("infomux.steps.transcribe")

_LOAD_SECONDS = "transcribe.model_load_seconds"
# prepare() of one input may still be loading while the next input's starts
_RESOURCE_LOCK = threading.Lock()
TRANSCRIPT_STEM = "transcript"


def transcribe_options(config: dict[str, Any], *, words: bool = False) -> Any:
    """Build :class:`infomux.engine.TranscribeOptions` from a run's recorded options.

    ``words`` turns word timestamps on whatever the options say (the subtitle layout
    needs them).

    Raises:
        StepError: the options are not valid (unknown language, vad without a VAD model, ...).
    """
    from infomux.engine import TranscribeOptions

    language = config.get("language")
    if language in ("", "auto"):
        language = None
    vad = bool(config.get("vad", False))
    vad_model = config.get("vad_model")
    try:
        if vad and not vad_model:
            from infomux.vad import default_vad_model

            vad_model = str(default_vad_model())
        options = TranscribeOptions(
            language=language,
            translate=bool(config.get("translate", False)),
            n_threads=config.get("threads"),
            vad=vad,
            vad_model=vad_model,
            word_timestamps=bool(config.get("word_timestamps", False)) or words,
            beam_size=int(config.get("beam_size") or 1),
            best_of=int(config.get("best_of") or 1),
            temperature=float(config.get("temperature") or 0.0),
            initial_prompt=config.get("prompt") or None,
            # runs recorded before --streams existed ran in one pass
            streams=int(config.get("streams", 1)),
            batch_decoder=bool(config.get("batch_decoder", False)),
        )
        options.validate()
    except (TypeError, ValueError, InfomuxError) as exc:
        raise StepError("transcribe", str(exc)) from exc
    return options


def _model_ref(spec: str | None, resources: dict[str, Any]) -> Any:
    """Resolve a model spec once per process (hashing a model file is not free)."""
    from infomux import models

    key = f"model_ref:{spec}"
    with _RESOURCE_LOCK:
        if key not in resources:
            resources[key] = models.resolve_model(spec)
        return resources[key]


def _loaded_model(
    path: str, resources: dict[str, Any], encoder_bf16: bool | None = None
) -> tuple[Any, float]:
    """Load a model once per process; return it and the seconds spent loading now."""
    from infomux import engine

    key = f"model:{path}" if encoder_bf16 is None else f"model:{path}:bf16={encoder_bf16}"
    with _RESOURCE_LOCK:
        if key in resources:
            return resources[key], 0.0
        started = time.perf_counter()
        try:
            model = engine.Model(path, encoder_bf16=encoder_bf16)
        except InfomuxError as exc:
            raise StepError("transcribe", str(exc)) from exc
        resources[key] = model
        return model, time.perf_counter() - started


_OPTIONS = (
    OptionSpec("model", "str", None, "model name in the cache or path to a ggml file"),
    OptionSpec("language", "str", None, "spoken language (None or 'auto': detect)"),
    OptionSpec("translate", "bool", False, "translate into English"),
    OptionSpec("threads", "int", None, "CPU threads (None: min(4, cores))", minimum=1),
    OptionSpec("streams", "int", 1, "parallel parts of one input (0: auto)", minimum=0),
    OptionSpec("batch_decoder", "bool", False, "decoder steps of parallel streams in one graph"),
    OptionSpec("encoder_bf16", "bool", None, "encoder matrices in bf16 (None: if AVX512-BF16)"),
    OptionSpec("beam_size", "int", 1, "beam search width (1: greedy)", minimum=1, maximum=16),
    OptionSpec("best_of", "int", 1, "candidates when sampling", minimum=1, maximum=16),
    OptionSpec("temperature", "float", 0.0, "sampling temperature", minimum=0.0, maximum=2.0),
    OptionSpec("prompt", "str", None, "initial prompt (vocabulary, spelling, style)"),
    OptionSpec("formats", "list", None, "transcript formats (None: txt,srt,vtt,json)"),
    OptionSpec("vad", "bool", False, "transcribe only the speech Silero VAD finds"),
    OptionSpec("vad_model", "str", None, "Silero VAD model for vad (None: the bundled one)"),
    OptionSpec("word_timestamps", "bool", False, "word timings in transcript.json"),
    OptionSpec("subtitle_layout", "bool", None, "lay .srt/.vtt cues out (false: segments)"),
    OptionSpec("max_line_chars", "int", None, "subtitle characters per line", minimum=1),
    OptionSpec("max_lines", "int", None, "subtitle lines per cue", minimum=1),
    OptionSpec("min_cue_seconds", "float", None, "shortest subtitle cue", minimum=0),
    OptionSpec("max_cue_seconds", "float", None, "longest subtitle cue", minimum=0),
    OptionSpec("max_cps", "float", None, "subtitle characters per second", minimum=0),
    OptionSpec("pause_seconds", "float", None, "pause that ends a subtitle cue", minimum=0),
)


@register_step("transcribe", requires=("extract_audio",), options=_OPTIONS)
class Transcribe:
    """Transcribe audio.wav with whisper.cpp (transcript.txt/.srt/.vtt/.json)."""

    def prepare(self, ctx: StepContext) -> None:
        """Resolve and load the model while the audio is being decoded."""
        ref = _model_ref(ctx.options.get("model"), ctx.resources)
        _, load_seconds = _loaded_model(
            str(ref.path), ctx.resources, ctx.options.get("encoder_bf16")
        )
        ctx.data[_LOAD_SECONDS] = load_seconds

    def run(self, ctx: StepContext) -> StepResult:
        """Transcribe the audio handed over by extract_audio (or audio.wav on resume)."""
        from infomux import engine, writers
        from infomux.engine import SAMPLE_RATE

        formats = writers.parse_formats(ctx.options.get("formats") or writers.DEFAULT_FORMATS)
        layout = subtitle_layout(ctx)
        options = transcribe_options(ctx.options, words=layout is not None)
        ctx.job.options = options.to_dict()
        ctx.job.environment["engine"] = engine.build_info()

        ref = _model_ref(ctx.options.get("model"), ctx.resources)
        model, load_seconds = _loaded_model(
            str(ref.path), ctx.resources, ctx.options.get("encoder_bf16")
        )
        ctx.job.model = {**ref.to_dict(), "encoder_type": model.encoder_type}
        load_seconds = ctx.data.pop(_LOAD_SECONDS, load_seconds)

        samples = ctx.data.get("audio")
        if samples is None:
            samples = self._read_audio(ctx)

        log.info("transcribe: model %s, %.1f s of audio", ref.name, samples.size / SAMPLE_RATE)
        ctx.progress("transcribe", 0)
        started = time.perf_counter()
        partial = PartialTranscript(ctx.run_dir)
        try:
            transcript, resumed = _transcribe_resumably(ctx, model, ref, samples, options, partial)
        finally:
            partial.close()
        inference_seconds = time.perf_counter() - started
        ctx.progress("transcribe", 100)

        ctx.data["transcript"] = transcript  # for later steps (caption, store)
        cues, subtitle_stats = _subtitle_cues(transcript, layout, formats)
        outputs = []
        for fmt in formats:
            name = f"{TRANSCRIPT_STEM}.{fmt}"
            if cues is not None and fmt in writers.CUE_WRITERS:
                text = writers.CUE_WRITERS[fmt](cues)
            else:
                text = writers.WRITERS[fmt](transcript)
            storage.atomic_write_text(ctx.run_dir / name, text, sync_dir=False)
            outputs.append(name)
        storage.fsync_dir(ctx.run_dir)  # one directory sync for all the renames
        partial.remove()  # the transcript is complete
        duration = float(transcript.duration)
        log.info(
            "transcribe: %d segments, language %s, %.2f s (%.1fx real time)",
            len(transcript.segments),
            transcript.language,
            inference_seconds,
            duration / inference_seconds if inference_seconds > 0 else 0.0,
        )
        return StepResult(
            outputs=outputs,
            metadata={
                "segments": len(transcript.segments),
                "language": transcript.language,
                "language_probability": transcript.language_probability,
                "task": "translate" if options.translate else "transcribe",
                "audio_seconds": round(duration, 6),
                "model_load_seconds": round(load_seconds, 6),
                "inference_seconds": round(inference_seconds, 6),
                "formats": formats,
                "engine_timings": dict(getattr(transcript, "timings", {}) or {}),
                # parallel parts of this recording (1: one pass) and where it was cut
                "streams": transcript.streams,
                "threads_per_stream": transcript.threads_per_stream or options.resolved_threads(),
                "cut_points": list(transcript.cuts),
                "tail_skipped_seconds": round(transcript.tail_skipped, 3),
                # where an interrupted transcription went on from (seconds, one per part
                # that had begun) and how many segments it kept
                "resume_points": resumed["points"],
                "resumed_segments": resumed["segments"],
                # the .srt/.vtt layout (None: one cue per segment)
                "subtitles": subtitle_stats,
            },
        )

    @staticmethod
    def _read_audio(ctx: StepContext) -> Any:
        from infomux import audio

        path = ctx.run_dir / AUDIO_FILE
        if not path.is_file():
            raise StepError("transcribe", f"{AUDIO_FILE} is missing from {ctx.run_dir}")
        log.debug("reading %s (no decoded audio in memory)", path)
        return audio.load_audio(path)


def subtitle_layout(ctx: StepContext) -> Any:
    """The run's subtitle layout (:class:`infomux.subtitles.LayoutOptions`), or None when
    it asked for one cue per segment (``subtitle_layout: false``) or writes no subtitles.

    Raises:
        StepError: the layout options are not valid.
    """
    from infomux import subtitles, writers

    try:
        layout = subtitles.options_from_config(ctx.options, "transcribe")
    except ValueError as exc:
        raise StepError("transcribe", str(exc)) from exc
    formats = writers.parse_formats(ctx.options.get("formats") or writers.DEFAULT_FORMATS)
    wanted = any(f in writers.CUE_WRITERS for f in formats) or any(
        r.name in CAPTION_STEPS for r in ctx.job.steps
    )
    return layout if wanted else None


CAPTION_STEPS = ("caption", "caption_burn")
"""Steps that turn the transcript into a subtitle track (they need word timings too)."""


def _subtitle_cues(
    transcript: Any, layout: Any, formats: list[str]
) -> tuple[list[Any] | None, dict[str, Any] | None]:
    """Lay the transcript out when .srt/.vtt are written; return the cues and their stats."""
    from infomux import subtitles, writers

    if layout is None or not any(f in writers.CUE_WRITERS for f in formats):
        return None, None
    cues = subtitles.layout(transcript, layout)
    stats = subtitles.cue_stats(cues, layout)
    if stats["too_fast"]:
        log.warning(
            "subtitles: %d of %d cues read faster than %g characters/second (fastest %.1f)",
            stats["too_fast"],
            stats["cues"],
            layout.max_cps,
            stats["max_cps"],
        )
    return cues, stats


# whisper.cpp takes at most n_text_ctx / 2 - 1 = 223 tokens of its history as prompt.
_PROMPT_TOKENS = 223


def _transcribe_resumably(
    ctx: StepContext,
    model: Any,
    ref: Any,
    samples: Any,
    options: Any,
    partial: PartialTranscript,
) -> tuple[Any, dict[str, Any]]:
    """Transcribe, writing each segment to the partial transcript as it comes, and going
    on from where an interrupted attempt stopped (each part from the end of its last
    complete segment, with the text before it as prompt, as whisper.cpp would have had).
    """
    from infomux import streams
    from infomux.engine import SAMPLE_RATE, Transcript
    from infomux.partial import Progress

    duration = samples.size / SAMPLE_RATE
    parts = streams.auto_parts(options, duration) if options.streams != 1 else 1
    fingerprint = {
        "model_sha256": ref.sha256,
        "samples": int(samples.size),
        "options": {k: v for k, v in options.to_dict().items() if k != "n_threads"},
    }
    progress = partial.load(fingerprint)
    if progress is None:
        cuts = streams.plan_cuts(samples, options, parts)
        progress = Progress(cuts=cuts)
        partial.start(fingerprint, cuts)
    else:
        partial.reopen()
    pieces = streams.pieces_between(progress.cuts, samples.size)
    threads = max(1, options.resolved_threads() // len(pieces))
    todo: list[tuple[int, streams.Piece]] = []
    points: list[float] = []
    for i, piece in enumerate(pieces):
        if i in progress.done:
            continue
        before = progress.part(i)
        if before:
            start = min(piece.end, max(piece.start, round(before[-1].end * SAMPLE_RATE)))
            # whisper.cpp's rolling prompt is the decoded tokens (text and timestamps)
            # of the windows before, of which it takes the last n_text_ctx / 2 - 1
            history = [] if options.no_context else decoded_tokens(before, model.token_beg)
            piece = streams.Piece(start, piece.end, tuple(history[-_PROMPT_TOKENS:]))
            points.append(round(start / SAMPLE_RATE, 3))
        todo.append((i, piece))
    kept = sum(len(v) for v in progress.segments.values())
    if kept:
        log.info(
            "transcribe: going on from %s s (%d segments kept)",
            ", ".join(f"{p:.2f}" for p in points) or "the end",
            kept,
        )
    else:
        streams.log_plan(duration, progress.cuts, threads)
    results = (
        streams.transcribe_pieces(
            model,
            samples,
            options,
            [piece for _, piece in todo],
            threads=threads,
            on_segment=lambda j, seg: partial.add_segment(todo[j][0], seg),
            on_done=lambda j, result: partial.part_done(todo[j][0], result.language),
            on_progress=lambda pct: ctx.progress("transcribe", pct),
            cancel=ctx.cancel,
        )
        if todo
        else []
    )
    by_part = {i: r for (i, _), r in zip(todo, results, strict=True)}
    english = "en" if not model.is_multilingual else (options.language or "")
    aligned = [
        by_part.get(i) or Transcript((), progress.done.get(i) or english, None, 0.0, options)
        for i in range(len(pieces))
    ]
    transcript = streams.merge(
        aligned,
        options,
        duration=duration,
        cuts=progress.cuts,
        threads=threads,
        before=[progress.part(i) for i in range(len(pieces))],
    )
    return transcript, {"points": points, "segments": kept}


def decoded_tokens(segments: list[Any], token_beg: int) -> list[int]:
    """The token ids whisper.cpp decoded for ``segments``, as its rolling prompt holds them.

    whisper.cpp's segments keep their tokens, except the timestamp that opens each
    segment after the first of a 30 s window (it is consumed with the previous
    segment's closing one); it is put back from the segment's start time, counted from
    the window's start (which the window's first timestamp token gives).
    """
    ids: list[int] = []
    window_cs: int | None = None
    for segment in segments:
        if not segment.tokens:
            continue
        first = segment.tokens[0].id
        start_cs = round(segment.start * 100)
        if first >= token_beg:  # a window's first segment opens with its timestamp
            window_cs = start_cs - 2 * (first - token_beg)
        elif window_cs is not None:
            ids.append(token_beg + (start_cs - window_cs) // 2)
        ids.extend(t.id for t in segment.tokens)
    return ids
