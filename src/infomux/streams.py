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


def plan_cuts(
    samples: np.ndarray,
    options: TranscribeOptions,
    parts: int,
    *,
    vad_model: str | os.PathLike[str] | None = None,
) -> list[float]:
    """Where to cut ``samples`` into at most ``parts`` parts (seconds; [] for one pass).

    One pass for audio shorter than two parts of :data:`MIN_PART_SECONDS`, and where
    Silero VAD finds no silence near an equal split (:func:`infomux.vad.find_cuts`).
    """
    from infomux.engine import SAMPLE_RATE
    from infomux.vad import VadModel, find_cuts

    if parts < 2 or samples.size < 2 * MIN_PART_SECONDS * SAMPLE_RATE or options.vad:
        return []
    # Silero's graph is tiny: one thread beats several waiting at barriers
    with VadModel(vad_model, n_threads=1) as vad:
        return find_cuts(vad, samples, parts, min_part=MIN_PART_SECONDS)


@dataclass(frozen=True)
class Piece:
    """A stretch of a recording transcribed as one stream (sample indices)."""

    start: int
    end: int
    prompt_tokens: tuple[int, ...] = ()
    """Token ids given to the decoder as what came before (a resumed part); empty: the
    options' ``initial_prompt``."""


def pieces_between(cuts: list[float], n_samples: int) -> list[Piece]:
    """The parts between ``cuts`` (seconds) of ``n_samples`` samples."""
    from infomux.engine import SAMPLE_RATE

    bounds = [0, *(round(c * SAMPLE_RATE) for c in cuts), n_samples]
    return [Piece(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def log_plan(duration: float, cuts: list[float], threads: int) -> None:
    """Say on the log how a recording is cut into parts (nothing for one pass)."""
    if cuts:
        log.info(
            "transcribing %.1f s in %d parts cut at %s s, %d thread(s) each",
            duration,
            len(cuts) + 1,
            ", ".join(f"{c:.2f}" for c in cuts),
            threads,
        )


def transcribe_pieces(
    model: Model,
    samples: np.ndarray,
    options: TranscribeOptions,
    pieces: list[Piece],
    *,
    threads: int,
    on_segment: Callable[[int, Segment], None] | None = None,
    on_done: Callable[[int, Transcript], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Transcript]:
    """Transcribe each piece on its own state, all at once, ``threads`` threads each.

    Times in the results (and in ``on_segment(piece_index, segment)``, called from the
    worker threads one at a time) are on the whole recording's clock. ``on_done`` is
    called when a piece has finished. A failure or cancellation of one piece stops the
    others; the first piece's error (in piece order) is raised.
    """
    from infomux.engine import SAMPLE_RATE

    piece_options = dataclasses.replace(options, streams=1, n_threads=threads)
    # one piece runs on this thread and stops on `cancel` itself; several share `stop`
    stop = cancel if len(pieces) == 1 and cancel is not None else threading.Event()
    lock = threading.Lock()
    progress = [0] * len(pieces)
    total = sum(p.end - p.start for p in pieces) or 1
    weights = [(p.end - p.start) / total for p in pieces]

    def report(index: int, pct: int) -> None:
        if on_progress is None:
            return
        with lock:
            progress[index] = pct
            done = int(sum(p * w for p, w in zip(progress, weights, strict=True)))
            on_progress(done)

    def run_piece(index: int) -> Transcript:
        piece = pieces[index]
        offset = piece.start / SAMPLE_RATE
        segment_cb = None
        if on_segment is not None:
            user_cb = on_segment

            def segment_cb(segment: Segment) -> None:
                with lock:
                    user_cb(index, _shifted(segment, offset))

        result = model.transcribe(
            samples[piece.start : piece.end],
            piece_options,
            on_segment=segment_cb,
            on_progress=lambda pct: report(index, pct),
            cancel=stop,
            prompt_tokens=piece.prompt_tokens or None,
        )
        result = dataclasses.replace(
            result, segments=tuple(_shifted(s, offset) for s in result.segments)
        )
        if on_done is not None:
            with lock:
                on_done(index, result)
        return result

    if len(pieces) == 1:  # no thread needed
        return [run_piece(0)]

    def watch_cancel() -> None:
        if cancel is not None and cancel.is_set():
            stop.set()

    with ThreadPoolExecutor(len(pieces), thread_name_prefix="infomux-part") as pool:
        futures: list[Future[Transcript]] = [pool.submit(run_piece, i) for i in range(len(pieces))]
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
    return [f.result() for f in futures]  # the first part's error, in part order


def merge(
    results: list[Transcript],
    options: TranscribeOptions,
    *,
    duration: float,
    cuts: list[float],
    threads: int,
    before: list[list[Segment]] | None = None,
) -> Transcript:
    """One transcript from the pieces' (whose times are already on one clock).

    ``before[i]`` are segments of piece ``i`` transcribed earlier (a resumed run).
    """
    from infomux.engine import Transcript

    segments: list[Segment] = []
    timings: dict[str, float] = {}
    for i, result in enumerate(results):
        if before is not None:
            segments.extend(before[i])
        segments.extend(result.segments)
        for key, value in result.timings.items():
            if key.endswith("_total_ms") or key.endswith("_calls") or key == "fallbacks":
                timings[key] = timings.get(key, 0) + value
    for stage in ("sample", "encode", "decode", "batchd", "prompt"):
        if f"{stage}_total_ms" in timings:  # per-call averages, the keys job.json always had
            calls = timings.get(f"{stage}_calls", 0)
            timings[f"{stage}_ms"] = timings[f"{stage}_total_ms"] / calls if calls else 0.0
    first = next((r for r in results if r.language), results[0])
    return Transcript(
        segments=tuple(segments),
        language=first.language,
        language_probability=first.language_probability,
        duration=duration,
        options=options,
        timings=timings,
        cuts=tuple(cuts),
        streams=len(results),
        threads_per_stream=threads if len(results) > 1 else 0,
        tail_skipped=sum(r.tail_skipped for r in results),
    )


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

    Falls back to one pass when the audio is too short or has no silence near an equal
    split (:func:`plan_cuts`). Each part runs on its own state with ``n_threads //
    parts`` threads, with normal conditioning inside it. Segment, word and token times
    are on the whole recording's clock; ``on_segment`` is called from the worker threads
    (one at a time), parts interleaved. A failure or cancellation of one part stops the
    others.
    """
    from infomux.engine import SAMPLE_RATE

    duration = samples.size / SAMPLE_RATE
    cuts = plan_cuts(samples, options, parts, vad_model=vad_model)
    if not cuts:
        return model.transcribe(
            samples,
            dataclasses.replace(options, streams=1),
            on_segment=on_segment,
            on_progress=on_progress,
            cancel=cancel,
        )
    pieces = pieces_between(cuts, samples.size)
    threads = max(1, options.resolved_threads() // len(pieces))
    log_plan(duration, cuts, threads)
    segment_cb = None
    if on_segment is not None:
        user_cb = on_segment

        def segment_cb(_: int, segment: Segment) -> None:
            user_cb(segment)

    results = transcribe_pieces(
        model,
        samples,
        options,
        pieces,
        threads=threads,
        on_segment=segment_cb,
        on_progress=on_progress,
        cancel=cancel,
    )
    if on_progress is not None:
        on_progress(100)
    return merge(results, options, duration=duration, cuts=cuts, threads=threads)


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
