"""Step ``extract_audio``: decode the input to 16 kHz mono and write ``audio.wav``.

The samples handed on to ``transcribe`` are the ones ``audio.wav`` holds (rounded to
s16 and clipped to ±1, in place), so a run resumed from ``audio.wav`` transcribes
exactly what a first run does.
"""

from __future__ import annotations

import logging
import time

from infomux.errors import StepError
from infomux.steps import OptionSpec, StepContext, StepResult, register_step

log = logging.getLogger("infomux.steps.extract_audio")

AUDIO_FILE = "audio.wav"


@register_step(
    "extract_audio",
    needs_input=True,
    options=(
        OptionSpec(
            "audio_stream", "int", None, "audio stream (0 = first; None: the best)", minimum=0
        ),
    ),
)
class ExtractAudio:
    """Decode the input's audio to 16 kHz mono PCM (audio.wav)."""

    def run(self, ctx: StepContext) -> StepResult:
        """Decode once, write ``audio.wav``, hand the samples on in ``ctx.data["audio"]``."""
        from infomux import audio

        started = time.perf_counter()
        decoded = audio.decode_audio(ctx.job.input.path, stream=ctx.options.get("audio_stream"))
        decode_seconds = time.perf_counter() - started
        info = decoded.info.to_dict()
        ctx.job.audio = info
        ctx.job.environment["pyav"] = info.get("pyav_version")
        ctx.job.environment["ffmpeg"] = info.get("ffmpeg_version")
        samples = decoded.samples
        if samples.size == 0:
            raise StepError("extract_audio", f"no audio samples decoded from {ctx.job.input.path}")
        started = time.perf_counter()
        # What audio.wav will hold, as float32: what transcribe reads from it on resume.
        samples = audio.quantize_s16(samples, out=samples)
        audio.write_wav(ctx.run_dir / AUDIO_FILE, samples, audio.SAMPLE_RATE)
        write_seconds = time.perf_counter() - started
        ctx.data["audio"] = samples
        seconds = samples.size / audio.SAMPLE_RATE
        log.info(
            "extract_audio: %.1f s of audio (%s/%s, %d Hz, %d ch)",
            seconds,
            info.get("container_format"),
            info.get("codec"),
            info.get("sample_rate") or 0,
            info.get("channels") or 0,
        )
        if info.get("decode_errors"):
            log.warning("%d packets could not be decoded and were skipped", info["decode_errors"])
        return StepResult(
            outputs=[AUDIO_FILE],
            metadata={
                "sample_rate": audio.SAMPLE_RATE,
                "samples": int(samples.size),
                "duration_seconds": round(seconds, 6),
                "decode_seconds": round(decode_seconds, 6),
                "write_seconds": round(write_seconds, 6),
            },
        )
