"""Parallel streams on one model: how many, and one recording cut at silences.

One :class:`~infomux.engine.Model` runs several transcriptions at once, each on its own
whisper.cpp state, on one copy of the weights. Two uses:

* several inputs of one ``infomux run a b c`` are transcribed ``K`` at a time
  (:func:`plan_streams` picks ``K`` and the threads of each);
* one long recording is cut into ``K`` contiguous parts at silences found by Silero VAD
  (:func:`infomux.vad.find_cuts`), each part transcribed with normal conditioning
  inside it, and the results merged with time offsets (:func:`transcribe_in_parts`).
  The cut points depend only on the audio, so the same input, options and ``K`` give
  the same text every time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infomux.errors import TranscriptionCancelled

if TYPE_CHECKING:
    import numpy as np

    from infomux.engine import Model, Segment, TranscribeOptions, Transcript

log = logging.getLogger("infomux.streams")

MAX_STREAMS = 4
"""More streams than this buy nothing on the CPUs measured and cost a state each."""
MIN_PART_SECONDS = 60.0
"""A part pays at least one 30 s encoder window: shorter parts are not worth a cut."""


@dataclass(frozen=True)
class StreamPlan:
    """How many streams run at once, and the threads of each."""

    streams: int
    threads_per_stream: int

    def to_dict(self) -> dict[str, int]:
        """JSON form for job.json."""
        return dataclasses.asdict(self)


def plan_streams(total_threads: int, items: int, *, max_streams: int = MAX_STREAMS) -> StreamPlan:
    """Split ``total_threads`` among up to ``items`` streams.

    whisper.cpp's threads wait for each other at every graph node, so two graphs on one
    thread each keep the cores busier than one graph on two (measured in
    ``benchmarks/``): one thread per stream, as many streams as threads (at most
    ``max_streams``), and any threads left over shared out.
    """
    total_threads = max(1, total_threads)
    streams = max(1, min(items, total_threads, max_streams))
    return StreamPlan(streams=streams, threads_per_stream=max(1, total_threads // streams))


def auto_parts(options: TranscribeOptions, duration: float) -> int:
    """Parts for one recording: ``options.streams``, or (0) chosen from threads and length."""
    if options.streams > 0:
        return options.streams
    plan = plan_streams(options.resolved_threads(), int(duration // MIN_PART_SECONDS))
    return plan.streams


def transcribe_in_parts(
    model: Model,
    samples: np.ndarray,
    options: TranscribeOptions,
    *,
    parts: int,
    vad_model: str | os.PathLike[str] | None = None,
    on_segment: Callable[[Segment], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Transcript:
    """Transcribe ``samples`` as up to ``parts`` parts cut at silences, in parallel.

    Falls back to one part when the audio is too short or has no silence near an equal
    split. Each part runs on its own state with ``n_threads // parts`` threads. Segment,
    word and token times are shifted to the whole recording; ``on_segment`` is called
    from the worker threads (one at a time), parts interleaved. A failure or
    cancellation of one part stops the others.
    """
    from infomux.engine import SAMPLE_RATE, Transcript
    from infomux.vad import VadModel, find_cuts

    duration = samples.size / SAMPLE_RATE
    total_threads = options.resolved_threads()
    one = dataclasses.replace(options, streams=1)
    cuts: list[float] = []
    if parts > 1 and duration >= 2 * MIN_PART_SECONDS:
        # Silero's graph is tiny: one thread beats several waiting at barriers
        with VadModel(vad_model, n_threads=1) as vad:
            cuts = find_cuts(vad, samples, parts, min_part=MIN_PART_SECONDS)
    if not cuts:
        return model.transcribe(
            samples, one, on_segment=on_segment, on_progress=on_progress, cancel=cancel
        )

    bounds = [0, *(round(c * SAMPLE_RATE) for c in cuts), samples.size]
    pieces = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    threads = max(1, total_threads // len(pieces))
    part_options = dataclasses.replace(one, n_threads=threads)
    log.info(
        "transcribing %.1f s in %d parts cut at %s s, %d thread(s) each",
        duration,
        len(pieces),
        ", ".join(f"{c:.2f}" for c in cuts),
        threads,
    )

    stop = threading.Event()
    lock = threading.Lock()
    progress = [0] * len(pieces)
    weights = [(end - start) / samples.size for start, end in pieces]

    def report(index: int, pct: int) -> None:
        if on_progress is None:
            return
        with lock:
            progress[index] = pct
            total = int(sum(p * w for p, w in zip(progress, weights, strict=True)))
            on_progress(total)

    def run_part(index: int) -> Transcript:
        start, end = pieces[index]
        offset = start / SAMPLE_RATE
        segment_cb = None
        if on_segment is not None:
            user_cb = on_segment

            def segment_cb(segment: Segment) -> None:
                with lock:
                    user_cb(_shifted(segment, offset))

        return model.transcribe(
            samples[start:end],
            part_options,
            on_segment=segment_cb,
            on_progress=lambda pct: report(index, pct),
            cancel=stop,
        )

    def watch_cancel() -> None:
        if cancel is not None and cancel.is_set():
            stop.set()

    with ThreadPoolExecutor(len(pieces), thread_name_prefix="infomux-part") as pool:
        futures: list[Future[Transcript]] = [pool.submit(run_part, i) for i in range(len(pieces))]
        try:
            pending = set(futures)
            while pending:
                # short waits keep Ctrl-C (raised in this thread) and `cancel` responsive
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                watch_cancel()
                if any(f.exception() is not None for f in done):
                    stop.set()
        except BaseException:
            stop.set()
            raise
    if cancel is not None and cancel.is_set():
        raise TranscriptionCancelled("transcription cancelled")
    results = [f.result() for f in futures]  # the first part's error, in part order

    segments: list[Segment] = []
    timings: dict[str, float] = {}
    for (start, _), result in zip(pieces, results, strict=True):
        segments.extend(_shifted(s, start / SAMPLE_RATE) for s in result.segments)
        for key, value in result.timings.items():
            if key.endswith("_total_ms") or key.endswith("_calls") or key == "fallbacks":
                timings[key] = timings.get(key, 0) + value
    for stage in ("sample", "encode", "decode", "batchd", "prompt"):
        calls = timings.get(f"{stage}_calls", 0)
        if calls:
            timings[f"{stage}_ms"] = timings[f"{stage}_total_ms"] / calls
    first = results[0]
    if on_progress is not None:
        on_progress(100)
    return Transcript(
        segments=tuple(segments),
        language=first.language,
        language_probability=first.language_probability,
        duration=duration,
        options=options,
        timings=timings,
        cuts=tuple(cuts),
        streams=len(pieces),
        threads_per_stream=threads,
        tail_skipped=sum(r.tail_skipped for r in results),
    )


def _shifted(segment: Segment, offset: float) -> Segment:
    """``segment`` with every time moved ``offset`` seconds later."""
    if offset == 0:
        return segment
    return dataclasses.replace(
        segment,
        start=round(segment.start + offset, 3),
        end=round(segment.end + offset, 3),
        tokens=tuple(
            dataclasses.replace(t, start=_later(t.start, offset), end=_later(t.end, offset))
            for t in segment.tokens
        ),
        words=tuple(
            dataclasses.replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3))
            for w in segment.words
        ),
    )


def _later(time: float, offset: float) -> float:
    """A token time moved by ``offset``; negative times (no timestamp) stay as they are."""
    return round(time + offset, 3) if time >= 0 else time
