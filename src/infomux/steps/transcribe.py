"""Step ``transcribe``: run whisper.cpp on the audio and write the transcript files."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from infomux import storage
from infomux.errors import InfomuxError, StepError
from infomux.steps import StepContext, StepResult, register_step
from infomux.steps.extract_audio import AUDIO_FILE

log = logging.getLogger("infomux.steps.transcribe")

_LOAD_SECONDS = "transcribe.model_load_seconds"
# prepare() of one input may still be loading while the next input's starts
_RESOURCE_LOCK = threading.Lock()
TRANSCRIPT_STEM = "transcript"


def transcribe_options(config: dict[str, Any]) -> Any:
    """Build :class:`infomux.engine.TranscribeOptions` from a run's recorded options.

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
            n_threads=config.get("threads"),
            vad=vad,
            vad_model=vad_model,
            word_timestamps=bool(config.get("word_timestamps", False)),
            # runs recorded before --streams existed ran in one pass
            streams=int(config.get("streams", 1)),
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


def _loaded_model(path: str, resources: dict[str, Any]) -> tuple[Any, float]:
    """Load a model once per process; return it and the seconds spent loading now."""
    from infomux import engine

    key = f"model:{path}"
    with _RESOURCE_LOCK:
        if key in resources:
            return resources[key], 0.0
        started = time.perf_counter()
        model = engine.Model(path)
        resources[key] = model
        return model, time.perf_counter() - started


@register_step("transcribe", requires=("extract_audio",))
class Transcribe:
    """Transcribe audio.wav with whisper.cpp (transcript.txt/.srt/.vtt/.json)."""

    def prepare(self, ctx: StepContext) -> None:
        """Resolve and load the model while the audio is being decoded."""
        ref = _model_ref(ctx.options.get("model"), ctx.resources)
        _, load_seconds = _loaded_model(str(ref.path), ctx.resources)
        ctx.data[_LOAD_SECONDS] = load_seconds

    def run(self, ctx: StepContext) -> StepResult:
        """Transcribe the audio handed over by extract_audio (or audio.wav on resume)."""
        from infomux import engine, writers
        from infomux.engine import SAMPLE_RATE

        formats = writers.parse_formats(ctx.options.get("formats") or writers.DEFAULT_FORMATS)
        options = transcribe_options(ctx.options)
        ctx.job.options = options.to_dict()
        ctx.job.environment["engine"] = engine.build_info()

        ref = _model_ref(ctx.options.get("model"), ctx.resources)
        ctx.job.model = ref.to_dict()
        model, load_seconds = _loaded_model(str(ref.path), ctx.resources)
        load_seconds = ctx.data.pop(_LOAD_SECONDS, load_seconds)

        samples = ctx.data.get("audio")
        if samples is None:
            samples = self._read_audio(ctx)

        log.info("transcribe: model %s, %.1f s of audio", ref.name, samples.size / SAMPLE_RATE)
        ctx.progress("transcribe", 0)
        started = time.perf_counter()
        transcript = model.transcribe(
            samples,
            options,
            on_progress=lambda pct: ctx.progress("transcribe", pct),
            cancel=ctx.cancel,
        )
        inference_seconds = time.perf_counter() - started
        ctx.progress("transcribe", 100)

        outputs = []
        for fmt in formats:
            name = f"{TRANSCRIPT_STEM}.{fmt}"
            text = writers.WRITERS[fmt](transcript)
            storage.atomic_write_text(ctx.run_dir / name, text, sync_dir=False)
            outputs.append(name)
        storage.fsync_dir(ctx.run_dir)  # one directory sync for all the renames
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
