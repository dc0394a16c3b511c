"""Subtitle layout: readable cues from word timings.

whisper.cpp's segments are as long as the decoder makes them. :func:`layout` re-cuts
the words of a transcript into cues people can read:

* at most ``max_chars`` characters per line and ``max_lines`` lines per cue;
* cues last between ``min_duration`` and ``max_duration`` seconds (a short cue is
  stretched into the silence around it, or merged with a neighbour when they fit
  together);
* a cue ends at a sentence end or a pause (``pause`` seconds between words) before it
  ends at a comma, and at a comma before it ends mid-phrase; words are never split
  (a single word longer than a line gets a line of its own);
* cues never overlap, and every word appears once, in order;
* the reading speed (characters per second) of each cue is measured; cues faster
  than ``max_cps`` are counted (and logged as a warning by the callers).

Words come from each segment's ``words`` (word timestamps); a segment without words
has its text split at spaces and its time shared out by characters, so the layout
also works on transcripts made without word timestamps (less precisely).

Pure Python, no heavy imports: it runs on any object of the writers' transcript shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "—", "–", "、", "，", "；", "：")
_CLOSERS = "\"')]}»”’"


@dataclass(frozen=True)
class LayoutOptions:
    """The limits of :func:`layout` (config keys and CLI options carry the same names)."""

    max_chars: int = 42
    """Characters per line."""
    max_lines: int = 2
    """Lines per cue."""
    min_duration: float = 0.7
    """Shortest cue, seconds."""
    max_duration: float = 7.0
    """Longest cue, seconds."""
    max_cps: float = 20.0
    """Reading speed above which a cue is reported as too fast (characters per second)."""
    pause: float = 0.5
    """A silence between two words at least this long (seconds) is a preferred break."""

    def validate(self) -> LayoutOptions:
        """Return self; raise ``ValueError`` for limits no cue can meet."""
        if self.max_chars < 1 or self.max_lines < 1:
            raise ValueError("max_chars and max_lines must be at least 1")
        if not (0 <= self.min_duration < self.max_duration) or not math.isfinite(self.max_duration):
            raise ValueError(
                f"need 0 <= min_duration < max_duration, got {self.min_duration} and "
                f"{self.max_duration}"
            )
        if self.max_cps <= 0 or self.pause < 0:
            raise ValueError("max_cps must be positive and pause must not be negative")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (recorded in job.json)."""
        return asdict(self)


# Names of the run options (job.json ``config``, config file ``[subtitles]`` table,
# per-step options) → LayoutOptions fields.
OPTION_KEYS: dict[str, str] = {
    "max_line_chars": "max_chars",
    "max_lines": "max_lines",
    "min_cue_seconds": "min_duration",
    "max_cue_seconds": "max_duration",
    "max_cps": "max_cps",
    "pause_seconds": "pause",
}
LAYOUT_KEY = "subtitle_layout"
"""Run option: True (default) lays out .srt/.vtt and caption tracks; False writes segments."""


def options_from_config(config: Mapping[str, Any], step: str | None = None) -> LayoutOptions | None:
    """The layout a run asked for, or None for plain segments.

    Reads the run options (``subtitle_layout`` and the keys of :data:`OPTION_KEYS`),
    then the step's own options (``config["steps"][step]``) over them.

    Raises:
        ValueError: a value of the wrong type, or limits no cue can meet.
    """
    merged: dict[str, Any] = dict(config)
    per_step = (config.get("steps") or {}).get(step) if step else None
    if isinstance(per_step, Mapping):
        merged.update(per_step)
    if merged.get(LAYOUT_KEY) is False:
        return None
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(LayoutOptions)}
    for key, name in OPTION_KEYS.items():
        value = merged.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"subtitle option {key!r} must be a number, got {value!r}")
        if types[name] in ("int", int) and not float(value).is_integer():
            raise ValueError(f"subtitle option {key!r} must be a whole number, got {value!r}")
        values[name] = int(value) if types[name] in ("int", int) else float(value)
    return replace(LayoutOptions(), **values).validate()


@dataclass(frozen=True)
class TimedWord:
    """A word with its time span (seconds)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Cue:
    """One subtitle: its time span (seconds) and its lines."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The lines joined with newlines."""
        return "\n".join(self.lines)

    @property
    def duration(self) -> float:
        """Seconds on screen."""
        return max(0.0, self.end - self.start)

    @property
    def chars(self) -> int:
        """Characters read (spaces count; line breaks count as a space)."""
        return len(" ".join(self.lines))

    @property
    def cps(self) -> float:
        """Reading speed, characters per second."""
        return self.chars / self.duration if self.duration > 0 else math.inf


# --------------------------------------------------------------------------- words


def _finite(value: float, default: float = 0.0) -> float:
    return float(value) if math.isfinite(value) else default


def transcript_words(transcript: Any) -> list[TimedWord]:
    """Every word of a transcript in order, with times that never go backwards.

    Segments with ``words`` use them; others have their text split at whitespace and
    their time shared out in proportion to each word's length.
    """
    words: list[TimedWord] = []
    for segment in transcript.segments:
        seg_start = max(0.0, _finite(segment.start))
        seg_end = max(seg_start, _finite(segment.end, seg_start))
        seg_words = [w for w in (getattr(segment, "words", None) or ()) if w.text.strip()]
        if seg_words:
            for w in seg_words:
                start = max(0.0, _finite(w.start, seg_start))
                words.append(TimedWord(start, max(start, _finite(w.end, start)), w.text.strip()))
            continue
        parts = segment.text.split()
        total = sum(len(p) for p in parts)
        at = seg_start
        for part in parts:
            length = (seg_end - seg_start) * len(part) / total if total else 0.0
            words.append(TimedWord(at, at + length, part))
            at += length
    # monotonic: a word starts no earlier than the one before it
    ordered: list[TimedWord] = []
    previous = 0.0
    for w in words:
        start = max(w.start, previous)
        end = max(w.end, start)
        ordered.append(TimedWord(start, end, w.text))
        previous = start
    return ordered


def _ends_with(text: str, marks: tuple[str, ...]) -> bool:
    return text.rstrip(_CLOSERS).endswith(marks)


# --------------------------------------------------------------------------- lines


def _line_breaks(lengths: Sequence[int], max_chars: int) -> int:
    """The fewest lines the words (of these lengths) fit in, greedily (optimal)."""
    lines, current = 0, -1
    for n in lengths:
        if current >= 0 and current + 1 + n <= max_chars:
            current += 1 + n
        else:
            lines += 1
            current = n
    return lines


def fits(words: Sequence[str], options: LayoutOptions) -> bool:
    """Whether the words fit in one cue's lines (a too-long word alone on its line is OK)."""
    return _line_breaks([len(w) for w in words], options.max_chars) <= options.max_lines


def break_lines(words: Sequence[str], options: LayoutOptions) -> tuple[str, ...]:
    """Split a cue's words into the fewest lines, as even as possible, at punctuation if
    that costs little (dynamic programming over the break points)."""
    if not words:
        return ()
    n = len(words)
    lengths = [len(w) for w in words]
    count = _line_breaks(lengths, options.max_chars)
    if count <= 1:
        return (" ".join(words),)
    target = (sum(lengths) + n - 1) / count
    inf = math.inf
    # best[k][i]: cost of putting words[:i] on k lines
    best = [[inf] * (n + 1) for _ in range(count + 1)]
    back = [[0] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for k in range(1, count + 1):
        for i in range(1, n + 1):
            width = -1
            for j in range(i - 1, -1, -1):  # line k holds words[j:i]
                width += lengths[j] + 1
                if width > options.max_chars and j < i - 1:
                    break
                if best[k - 1][j] == inf:
                    continue
                cost = best[k - 1][j] + (width - target) ** 2
                if i < n and _ends_with(words[i - 1], SENTENCE_END + CLAUSE_END):
                    cost -= (options.max_chars / 3) ** 2  # a line ending a clause reads well
                if cost < best[k][i]:
                    best[k][i], back[k][i] = cost, j
    lines: list[str] = []
    i = n
    for k in range(count, 0, -1):
        j = back[k][i]
        lines.append(" ".join(words[j:i]))
        i = j
    return tuple(reversed(lines))


# --------------------------------------------------------------------------- cues


def _split_points(words: Sequence[TimedWord], options: LayoutOptions) -> list[int]:
    """Indices after which a cue should end whatever its length (sentence end, pause)."""
    points = []
    for i in range(len(words) - 1):
        gap = words[i + 1].start - words[i].end
        if _ends_with(words[i].text, SENTENCE_END) or gap >= options.pause:
            points.append(i + 1)
    return points


def _fits_span(words: Sequence[TimedWord], options: LayoutOptions) -> bool:
    if len(words) <= 1:
        return True
    return fits([w.text for w in words], options) and (
        words[-1].end - words[0].start <= options.max_duration
    )


def _cut(words: Sequence[TimedWord], options: LayoutOptions) -> list[list[TimedWord]]:
    """Cut a phrase that is too long for one cue into pieces that fit."""
    pieces: list[list[TimedWord]] = []
    rest = list(words)
    while rest:
        if _fits_span(rest, options):
            pieces.append(rest)
            break
        longest = 1  # the most words that fit (always at least one)
        while longest < len(rest) and _fits_span(rest[: longest + 1], options):
            longest += 1
        chars = len(" ".join(w.text for w in rest[:longest]))
        floor = chars * 0.4  # a break earlier than this leaves a thin cue
        best, best_score = longest, 0.0
        for i in range(1, longest + 1):
            if i == len(rest):
                break
            before = len(" ".join(w.text for w in rest[:i]))
            if before < floor:
                continue
            gap = rest[i].start - rest[i - 1].end
            score = 0.0
            if _ends_with(rest[i - 1].text, CLAUSE_END + SENTENCE_END):
                score += 2.0
            score += min(gap / max(options.pause, 1e-3), 1.0)
            score += 0.5 * before / chars  # fuller is better, all else equal
            # keep short function words with what follows them
            if rest[i - 1].text.lower().strip(_CLOSERS) in _NO_BREAK_AFTER:
                score -= 1.0
            if score > best_score:
                best, best_score = i, score
        pieces.append(rest[:best])
        rest = rest[best:]
    return pieces


_NO_BREAK_AFTER = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "and",
        "or",
        "but",
        "as",
        "if",
        "than",
        "that",
        "this",
        "these",
        "those",
        "my",
        "your",
        "his",
        "her",
        "its",
        "our",
        "their",
        "is",
        "are",
        "was",
        "were",
        "be",
    ]
)


def _merge_short(groups: list[list[TimedWord]], options: LayoutOptions) -> list[list[TimedWord]]:
    """Merge a group that is too short to read into a neighbour when they fit together."""
    merged = list(groups)
    i = 0
    while i < len(merged):
        group = merged[i]
        if group[-1].end - group[0].start >= options.min_duration:
            i += 1
            continue
        candidates = []
        if i + 1 < len(merged) and _fits_span(group + merged[i + 1], options):
            candidates.append((merged[i + 1][0].start - group[-1].end, i, i + 1))
        if i > 0 and _fits_span(merged[i - 1] + group, options):
            candidates.append((group[0].start - merged[i - 1][-1].end, i - 1, i))
        if not candidates:
            i += 1
            continue
        _, a, b = min(candidates)  # the closer neighbour
        merged[a : b + 1] = [merged[a] + merged[b]]
        i = a
    return merged


def layout(transcript: Any, options: LayoutOptions | None = None) -> list[Cue]:
    """Lay the words of ``transcript`` out as cues (see the module's documentation)."""
    options = (options or LayoutOptions()).validate()
    return layout_words(transcript_words(transcript), options)


def layout_words(words: Sequence[TimedWord], options: LayoutOptions) -> list[Cue]:
    """:func:`layout` for words already in order."""
    if not words:
        return []
    groups: list[list[TimedWord]] = []
    start = 0
    for point in [*_split_points(words, options), len(words)]:
        groups.extend(_cut(words[start:point], options))
        start = point
    groups = _merge_short(groups, options)
    cues: list[Cue] = []
    for group in groups:
        lines = break_lines([w.text for w in group], options)
        end = min(group[-1].end, group[0].start + options.max_duration)
        cues.append(Cue(group[0].start, end, lines))
    return _timing(cues, options)


def _timing(cues: list[Cue], options: LayoutOptions) -> list[Cue]:
    """No overlaps; cues shorter than the minimum stretched into the silence after
    (then before) them."""
    out = list(cues)
    for i, cue in enumerate(out):
        nxt = out[i + 1].start if i + 1 < len(out) else math.inf
        end = min(cue.end, nxt)
        if end - cue.start < options.min_duration:
            end = min(cue.start + options.min_duration, nxt)
        start = cue.start
        if end - start < options.min_duration:
            prev = out[i - 1].end if i > 0 else 0.0
            start = max(prev, end - options.min_duration)
        out[i] = Cue(round(start, 3), round(max(end, start), 3), cue.lines)
    return out


# --------------------------------------------------------------------------- report


def cue_stats(cues: Iterable[Cue], options: LayoutOptions) -> dict[str, Any]:
    """What a layout came to: counts, the limits each cue keeps or breaks, reading speed.

    ``too_fast`` counts cues above ``max_cps``; ``too_short``/``too_long`` and
    ``long_lines`` count cues the limits could not be kept for (a lone word wider than a
    line; a short cue with speech right before and after it).
    """
    items = list(cues)
    rates = [c.cps for c in items if c.duration > 0]
    long_lines = sum(
        any(len(line) > options.max_chars for line in c.lines) or len(c.lines) > options.max_lines
        for c in items
    )
    eps = 1e-6
    return {
        "cues": len(items),
        "max_cps": round(max(rates), 2) if rates else 0.0,
        "mean_cps": round(sum(rates) / len(rates), 2) if rates else 0.0,
        "too_fast": sum(c.cps > options.max_cps for c in items),
        "too_short": sum(c.duration < options.min_duration - eps for c in items),
        "too_long": sum(c.duration > options.max_duration + eps for c in items),
        "long_lines": long_lines,
        "max_line_chars": max((len(line) for c in items for line in c.lines), default=0),
        "max_lines": max((len(c.lines) for c in items), default=0),
        "options": options.to_dict(),
    }


def segment_cues(transcript: Any) -> list[Cue]:
    """The plain output: one cue per segment with text, as whisper.cpp cut them."""
    cues = []
    for segment in transcript.segments:
        text = " ".join(segment.text.split())
        if text:
            cues.append(Cue(segment.start, max(segment.end, segment.start), (text,)))
    return cues


def run_options(table: Any, cli: Mapping[str, Any]) -> dict[str, Any]:
    """The layout options a new run records: ``cli`` values (None: not given) over the
    config file's ``[subtitles]`` table (``layout`` and the keys of :data:`OPTION_KEYS`).

    Raises:
        ValueError: the table has unknown keys or wrong values.
    """
    table = {} if table is None else table
    if not isinstance(table, Mapping):
        raise ValueError("'subtitles' in the config file must be a table")
    unknown = sorted(set(table) - {"layout", *OPTION_KEYS})
    if unknown:
        known = ", ".join(["layout", *OPTION_KEYS])
        raise ValueError(f"unknown key(s) in [subtitles]: {', '.join(unknown)} (known: {known})")
    layout = table.get("layout", True)
    if not isinstance(layout, bool):
        raise ValueError("'layout' in [subtitles] must be true or false")
    result: dict[str, Any] = {LAYOUT_KEY: layout}
    result.update({k: table[k] for k in OPTION_KEYS if k in table})
    if cli.get(LAYOUT_KEY) is not None:
        result[LAYOUT_KEY] = bool(cli[LAYOUT_KEY])
    result.update({k: cli[k] for k in OPTION_KEYS if cli.get(k) is not None})
    options_from_config(result)  # check
    return result


def words_from_dict(data: Mapping[str, Any]) -> list[TimedWord]:
    """:func:`transcript_words` of a ``transcript.json`` (as data)."""

    class _W:
        def __init__(self, w: Mapping[str, Any]) -> None:
            self.start = float(w.get("start") or 0.0)
            self.end = float(w.get("end") or self.start)
            self.text = str(w.get("text", ""))

    class _S:
        def __init__(self, s: Mapping[str, Any]) -> None:
            self.start = float(s.get("start") or 0.0)
            self.end = float(s.get("end") or self.start)
            self.text = str(s.get("text", ""))
            self.words = [_W(w) for w in s.get("words") or ()]

    from types import SimpleNamespace

    return transcript_words(SimpleNamespace(segments=[_S(s) for s in data.get("segments") or ()]))
