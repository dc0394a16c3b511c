"""Transcript writers: small pure functions ``Transcript -> str``.

They read only the public attributes of :class:`infomux.engine.Transcript`
(``segments``, ``language``, ``language_probability``, ``duration``, and each
segment's ``start``, ``end``, ``text``, ``no_speech_prob``, ``words``), so they
work with any object of that shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class WordLike(Protocol):
    start: float
    end: float
    text: str
    probability: float


class SegmentLike(Protocol):
    start: float
    end: float
    text: str
    no_speech_prob: float
    words: Sequence[WordLike]


class CueLike(Protocol):
    start: float
    end: float

    @property
    def text(self) -> str: ...


class TranscriptLike(Protocol):
    segments: Sequence[SegmentLike]
    language: str
    language_probability: float | None
    duration: float


def _millis(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds < 0:
        return 0
    return round(seconds * 1000)


def format_timestamp(seconds: float, *, separator: str = ".") -> str:
    """Format seconds as ``HH:MM:SS.mmm`` (``separator`` ``","`` for SRT).

    Negative or non-finite values become zero; hours grow past 99 if needed.
    """
    ms = _millis(seconds)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _cues(transcript: TranscriptLike) -> list[tuple[float, float, str]]:
    """Segments with non-empty text, as (start, end >= start, text) cues."""
    cues = []
    for segment in transcript.segments:
        text = " ".join(segment.text.split())
        if text:
            cues.append((segment.start, max(segment.end, segment.start), text))
    return cues


def to_txt(transcript: TranscriptLike) -> str:
    """Plain text: one line per segment, ending with a newline (empty string if no speech)."""
    lines = [text for _, _, text in _cues(transcript)]
    return "".join(line + "\n" for line in lines)


def to_srt(transcript: TranscriptLike) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, blank line after each.

    One cue per segment; :func:`cues_to_srt` writes laid-out cues (:mod:`infomux.subtitles`).
    """
    return cues_to_srt(_cues(transcript))


def to_vtt(transcript: TranscriptLike) -> str:
    """WebVTT: ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues (one per segment)."""
    return cues_to_vtt(_cues(transcript))


def _cue_parts(cue: CueLike | tuple[float, float, str]) -> tuple[float, float, str]:
    if isinstance(cue, tuple):
        return cue
    return cue.start, max(cue.end, cue.start), cue.text


def cues_to_srt(cues: Sequence[CueLike | tuple[float, float, str]]) -> str:
    """SubRip from cues (``start``, ``end``, ``text`` with a newline between lines)."""
    blocks = []
    for index, cue in enumerate(cues, start=1):
        start, end, text = _cue_parts(cue)
        blocks.append(
            f"{index}\n{format_timestamp(start, separator=',')} --> "
            f"{format_timestamp(end, separator=',')}\n{text}\n"
        )
    return "\n".join(blocks)


def cues_to_vtt(cues: Sequence[CueLike | tuple[float, float, str]]) -> str:
    """WebVTT from cues (``start``, ``end``, ``text`` with a newline between lines)."""
    blocks = ["WEBVTT\n"]
    for cue in cues:
        start, end, text = _cue_parts(cue)
        # "-->" may not appear in cue text
        text = text.replace("-->", "->")
        blocks.append(f"{format_timestamp(start)} --> {format_timestamp(end)}\n{text}\n")
    return "\n".join(blocks)


def _round(value: float | None, ndigits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), ndigits)


def transcript_dict(transcript: TranscriptLike) -> dict[str, Any]:
    """The JSON-friendly form written by :func:`to_json`.

    ``{"text", "language", "language_probability", "duration", "segments": [{"id",
    "start", "end", "text", "no_speech_prob", "words"?}]}``; ``words`` appears only on
    segments that have word timings.
    """
    segments = []
    for index, segment in enumerate(transcript.segments):
        item: dict[str, Any] = {
            "id": index,
            "start": _round(segment.start),
            "end": _round(segment.end),
            "text": segment.text.strip(),
            "no_speech_prob": _round(segment.no_speech_prob, 6),
        }
        if segment.words:
            item["words"] = [
                {
                    "start": _round(word.start),
                    "end": _round(word.end),
                    "text": word.text,
                    "probability": _round(word.probability, 6),
                }
                for word in segment.words
            ]
        segments.append(item)
    text = " ".join(s["text"] for s in segments if s["text"])
    return {
        "text": text,
        "language": transcript.language,
        "language_probability": _round(transcript.language_probability, 6),
        "duration": _round(transcript.duration),
        "segments": segments,
    }


def to_json(transcript: TranscriptLike) -> str:
    """JSON: see :func:`transcript_dict`; indented, UTF-8 (not ASCII-escaped), final newline."""
    return json.dumps(transcript_dict(transcript), indent=2, ensure_ascii=False) + "\n"


WRITERS: dict[str, Callable[[Any], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
}
"""Format name → writer. File name is ``transcript.<format>``."""

CUE_WRITERS: dict[str, Callable[[Any], str]] = {"srt": cues_to_srt, "vtt": cues_to_vtt}
"""Format name → writer of laid-out cues (:func:`infomux.subtitles.layout`)."""

DEFAULT_FORMATS: tuple[str, ...] = ("txt", "srt", "vtt", "json")


def parse_formats(value: str | Sequence[str]) -> list[str]:
    """Parse ``"txt,srt"`` (or a list) into known format names, keeping order, no duplicates.

    Raises:
        ValueError: empty, or an unknown format.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    formats: list[str] = []
    for item in items:
        name = item.strip().lower()
        if not name:
            continue
        if name not in WRITERS:
            raise ValueError(f"unknown format {name!r} (choose from {', '.join(WRITERS)})")
        if name not in formats:
            formats.append(name)
    if not formats:
        raise ValueError("no output format given")
    return formats
