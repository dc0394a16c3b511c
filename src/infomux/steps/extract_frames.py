"""Step ``extract_frames``: still frames of the input's video as JPEG, with an index.

In-process with PyAV (no ffmpeg process): the video is decoded frame by frame, and a
frame is kept at a fixed interval (``every``, e.g. ``10s``) or when the picture changes
(``scene``: a threshold on the mean absolute difference of small grey thumbnails, 0-1).
Kept frames are encoded by PyAV's MJPEG encoder into ``frames/NNNNNN.jpg``;
``frames.json`` lists each one's time, file, width, height and size in bytes.

Memory stays bounded on long video: one decoded frame at a time, plus the previous
thumbnail (64x36 grey) in scene mode. Input without a video stream (audio only; a cover
picture does not count) is a clear step failure.
"""

from __future__ import annotations

import json
import logging
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from infomux import storage
from infomux.errors import StepError
from infomux.steps import OptionSpec, StepContext, StepResult, register_step

log = logging.getLogger("infomux.steps.extract_frames")

FRAMES_DIR = "frames"
FRAMES_INDEX = "frames.json"
_THUMB = (64, 36)

_OPTIONS = (
    OptionSpec("every", "duration", 10.0, "interval between frames (e.g. 10s, 1m)", minimum=0.01),
    OptionSpec(
        "scene",
        "float",
        None,
        "keep a frame when the picture changes by more than this (0-1; e.g. 0.1) "
        "instead of at a fixed interval",
        minimum=0.0,
        maximum=1.0,
    ),
    OptionSpec("max_width", "int", 640, "scale frames down to this width (0: as is)", minimum=0),
    OptionSpec("quality", "int", 4, "JPEG quality, 2 (best) to 31", minimum=2, maximum=31),
    OptionSpec("max_frames", "int", 10000, "stop after this many frames", minimum=1),
)


@register_step("extract_frames", needs_input=True, options=_OPTIONS)
class ExtractFrames:
    """Still frames of the video as JPEG (frames/, frames.json), at an interval or scene changes."""

    def run(self, ctx: StepContext) -> StepResult:
        """Decode the video once, keep frames, write them and their index."""
        import av

        opts = ctx.options
        every = float(opts.get("every") or 10.0)
        scene = opts.get("scene")
        max_width = int(opts.get("max_width") or 0)
        quality = int(opts.get("quality") or 4)
        max_frames = int(opts.get("max_frames") or 10000)
        source = ctx.job.input.path
        out_dir = ctx.run_dir / FRAMES_DIR
        out_dir.mkdir(exist_ok=True)
        started = time.perf_counter()
        frames: list[dict[str, Any]] = []
        decoded = 0
        try:
            with av.open(source) as container:
                stream = _video_stream(container, source)
                stream.thread_type = "AUTO"
                encoder: Any = None
                next_time = 0.0
                previous: Any = None
                for frame in container.decode(stream):
                    if ctx.cancel is not None and ctx.cancel.is_set():
                        from infomux.errors import TranscriptionCancelled

                        raise TranscriptionCancelled("frame extraction cancelled")
                    decoded += 1
                    if frame.pts is None or frame.time is None:
                        continue
                    t = float(frame.time)
                    if scene is None:
                        if t + 1e-6 < next_time:
                            continue
                        next_time = (int(t / every) + 1) * every
                    else:
                        thumb = _thumbnail(frame)
                        changed = previous is None or _difference(previous, thumb) > scene
                        previous = thumb
                        if not changed:
                            continue
                    if encoder is None:
                        encoder = _encoder(frame, max_width, quality)
                    data = _encode(encoder, frame)
                    name = f"{FRAMES_DIR}/{len(frames) + 1:06d}.jpg"
                    storage.atomic_write_bytes(ctx.run_dir / name, data, sync_dir=False)
                    frames.append(
                        {
                            "time": round(t, 6),
                            "file": name,
                            "width": encoder.width,
                            "height": encoder.height,
                            "bytes": len(data),
                        }
                    )
                    if len(frames) % 50 == 0:
                        duration = stream.duration * stream.time_base if stream.duration else None
                        if duration:
                            ctx.progress("extract_frames", min(99, int(100 * t / duration)))
                    if len(frames) >= max_frames:
                        log.warning("extract_frames: stopped at max_frames=%d", max_frames)
                        break
        except av.FFmpegError as exc:
            raise StepError("extract_frames", f"cannot decode video of {source}: {exc}") from exc
        if not frames:
            raise StepError("extract_frames", f"no video frames decoded from {source}")
        index = {
            "source": source,
            "mode": "interval" if scene is None else "scene",
            "every": every if scene is None else None,
            "scene": scene,
            "frames": frames,
        }
        storage.atomic_write_text(
            ctx.run_dir / FRAMES_INDEX, json.dumps(index, indent=2) + "\n", sync_dir=False
        )
        storage.fsync_dir(out_dir)
        storage.fsync_dir(ctx.run_dir)
        seconds = time.perf_counter() - started
        ctx.progress("extract_frames", 100)
        log.info("extract_frames: %d frames of %d decoded, %.2f s", len(frames), decoded, seconds)
        return StepResult(
            outputs=[FRAMES_INDEX, FRAMES_DIR],
            metadata={
                "frames": len(frames),
                "decoded_frames": decoded,
                "mode": index["mode"],
                "seconds": round(seconds, 6),
            },
        )


def _video_stream(container: Any, source: str) -> Any:
    """The first real video stream (a cover picture of an audio file does not count)."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise StepError(
        "extract_frames", f"{Path(source).name} has no video stream (audio only): no frames"
    )


def _encoder(frame: Any, max_width: int, quality: int) -> Any:
    import av

    width, height = frame.width, frame.height
    if max_width and width > max_width:
        height = max(2, round(height * max_width / width / 2) * 2)
        width = max_width
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = frame.time_base or Fraction(1, 1000)
    encoder.options = {"qmin": str(quality), "qmax": str(quality)}
    encoder.open()
    return encoder


def _encode(encoder: Any, frame: Any) -> bytes:
    image = frame.reformat(width=encoder.width, height=encoder.height, format="yuvj420p")
    image.pts = None
    packets = encoder.encode(image)
    return b"".join(bytes(p) for p in packets)


def _thumbnail(frame: Any) -> Any:
    image = frame.reformat(width=_THUMB[0], height=_THUMB[1], format="gray")
    return image.to_ndarray().astype("float32")


def _difference(a: Any, b: Any) -> float:
    return float(abs(a - b).mean() / 255.0)
