"""Steps ``caption`` and ``caption_burn``: the transcript as subtitles in the video.

``caption`` muxes a soft subtitle track into a copy of the input (streams copied, not
re-encoded; see :mod:`infomux.mux`); ``caption_burn`` draws the subtitles into the
picture (re-encoding; needs FFmpeg's ``subtitles`` filter). Both write
``captioned.<ext>``, with cues laid out as the run's subtitle options say (the same
as transcript.srt), or one cue per segment with ``subtitle_layout: false``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from infomux.errors import StepError
from infomux.steps import StepContext, StepResult, register_step

log = logging.getLogger("infomux.steps.caption")

OUTPUT_STEM = "captioned"
BURN_SUBTITLES = "captions.srt"  # the cues the subtitles filter reads (caption_burn)


def caption_cues(ctx: StepContext, step: str) -> tuple[list[Any], str | None, dict[str, Any]]:
    """The cues for the track, the transcript's language, and the layout's stats.

    Raises:
        StepError: no transcript (neither handed over nor in transcript.json), bad options.
    """
    from infomux import store, subtitles

    try:
        layout = subtitles.options_from_config(ctx.options, step)
    except ValueError as exc:
        raise StepError(step, str(exc)) from exc
    transcript = ctx.data.get("transcript")
    if transcript is not None:
        language = transcript.language
        if layout is None:
            return subtitles.segment_cues(transcript), language, {}
        words = subtitles.transcript_words(transcript)
    else:
        data = store.read_transcript(ctx.run_dir)
        if data is None:
            raise StepError(
                step, "no transcript: transcript.json is missing (keep json in --formats)"
            )
        language = data.get("language")
        if layout is None:
            segs = [
                subtitles.Cue(float(s["start"]), float(s["end"]), (" ".join(s["text"].split()),))
                for s in data.get("segments", [])
                if str(s.get("text", "")).strip()
            ]
            return segs, language, {}
        words = subtitles.words_from_dict(data)
    cues = subtitles.layout_words(words, layout)
    return cues, language, subtitles.cue_stats(cues, layout)


def _source(ctx: StepContext, step: str) -> Path:
    path = Path(ctx.job.input.path)
    if not path.is_file():
        raise StepError(step, f"input {path} no longer exists")
    return path


@register_step("caption", requires=("transcribe",), needs_input=True)
class Caption:
    """Mux the subtitles into a copy of the video as a soft track (captioned.<ext>)."""

    def run(self, ctx: StepContext) -> StepResult:
        """Lay the transcript out and mux it with the input's streams copied."""
        import av

        from infomux import mux

        source = _source(ctx, "caption")
        cues, language, stats = caption_cues(ctx, "caption")
        started = time.perf_counter()
        name = _output_name(source, "caption")
        try:
            codec = ctx.options.get("caption_codec")
            report = _atomic(
                ctx.run_dir / name,
                lambda tmp: mux.mux_captions(source, tmp, cues, language=language, codec=codec),
            )
        except mux.MuxError as exc:
            raise StepError("caption", str(exc)) from exc
        except av.FFmpegError as exc:
            raise StepError("caption", f"cannot read {source.name}: {exc}") from exc
        seconds = time.perf_counter() - started
        log.info(
            "caption: %s (%d cues, %s, language %s) in %.2f s",
            name,
            report.cues,
            report.subtitle_codec,
            report.language,
            seconds,
        )
        return StepResult(
            outputs=[name],
            metadata={**report.to_dict(), "subtitles": stats, "seconds": round(seconds, 6)},
        )


@register_step("caption_burn", requires=("transcribe",), needs_input=True)
class CaptionBurn:
    """Draw the subtitles into the picture, re-encoding the video (captioned.<ext>)."""

    def run(self, ctx: StepContext) -> StepResult:
        """Write the cues as captions.srt and burn them in with the subtitles filter."""
        import av

        from infomux import mux, storage, writers

        source = _source(ctx, "caption_burn")
        missing = mux.burn_support()
        if missing:
            raise StepError("caption_burn", missing)
        cues, _, stats = caption_cues(ctx, "caption_burn")
        srt = ctx.run_dir / BURN_SUBTITLES
        storage.atomic_write_text(srt, writers.cues_to_srt(cues))
        started = time.perf_counter()
        name = _output_name(source, "caption_burn")
        try:
            report = _atomic(ctx.run_dir / name, lambda tmp: mux.burn_captions(source, tmp, srt))
        except mux.MuxError as exc:
            raise StepError("caption_burn", str(exc)) from exc
        except av.FFmpegError as exc:
            raise StepError("caption_burn", f"cannot encode {name}: {exc}") from exc
        return StepResult(
            outputs=[BURN_SUBTITLES, name],
            metadata={
                **report,
                "subtitles": stats,
                "seconds": round(time.perf_counter() - started, 6),
            },
        )


def _output_name(source: Path, step: str) -> str:
    """``captioned.<ext>`` for ``source``: a StepError when it has no video or cannot be read."""
    import av

    from infomux import mux

    try:
        with av.open(str(source)) as probe:
            mux.check_has_video(probe, source)
            return f"{OUTPUT_STEM}.{mux.output_extension(source, probe.format.name)}"
    except mux.MuxError as exc:
        raise StepError(step, str(exc)) from exc
    except av.FFmpegError as exc:
        raise StepError(step, f"cannot read {source.name}: {exc}") from exc


def _atomic(path: Path, write: Any) -> Any:
    """Call ``write(temp_path)`` and rename the result over ``path`` (fsynced)."""
    import contextlib
    import os

    from infomux import storage

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        result = write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~storage.current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    storage.fsync_dir(path.parent)
    if hasattr(result, "path"):
        result = type(result)(**{**result.__dict__, "path": path})
    return result
