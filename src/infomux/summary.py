"""Summaries of transcripts by a chat model: prompts, map-reduce, parsing, rendering.

:func:`summarize` asks a :class:`~infomux.llm.Provider` for a summary in fixed
sections (overview, key points, decisions, action items, open questions). A transcript
that does not fit the model's context is split into overlapping pieces
(:mod:`infomux.llm.chunking`); each piece is summarized (map), then the partial
summaries are combined (reduce, again in pieces if they do not fit). The reply is
parsed leniently (headings in any common form; "None" items dropped) into a
:class:`Summary`, rendered as ``summary.md`` with empty sections left out.

The prompts are part of what a summary depends on: :data:`PROMPT_SHA256` is recorded.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infomux.llm import GenerationOptions, LLMError, Provider, Reply
from infomux.llm.chunking import CHARS_PER_TOKEN, estimate_tokens, split_text

log = logging.getLogger("infomux.summary")

SECTIONS = (
    ("overview", "Overview"),
    ("key_points", "Key points"),
    ("decisions", "Decisions"),
    ("action_items", "Action items"),
    ("open_questions", "Open questions"),
)

PROMPT_VERSION = 1
SYSTEM_PROMPT = """\
You summarize transcripts of recordings (meetings, talks, interviews). Use only what \
the transcript says; do not invent names, dates or numbers. Answer in the language of \
the transcript, in exactly this format:

## Overview
Two to four sentences on what the recording is about.

## Key points
- one line per point

## Decisions
- one line per decision that was made

## Action items
- one line per task, with who does it when the transcript says

## Open questions
- one line per question left open

Write "- None" under a heading when the transcript gives nothing for it."""

MAP_PROMPT = """\
This is part {index} of {count} of a transcript; parts overlap a little. Summarize \
this part in the format.

Transcript part {index} of {count}:
\"\"\"
{text}
\"\"\""""

REDUCE_PROMPT = """\
These are summaries of consecutive parts of one transcript. Combine them into one \
summary of the whole transcript in the format, merging repeated points.

{text}"""

SINGLE_PROMPT = """\
Summarize this transcript in the format.

Transcript:
\"\"\"
{text}
\"\"\""""

PROMPT_SHA256 = hashlib.sha256(
    "\0".join(
        (str(PROMPT_VERSION), SYSTEM_PROMPT, MAP_PROMPT, REDUCE_PROMPT, SINGLE_PROMPT)
    ).encode()
).hexdigest()
"""The sha256 of the prompt templates (recorded with every summary)."""

OVERLAP_FRACTION = 0.1
"""The share of a piece repeated at the start of the next."""
SAFETY_TOKENS = 64
"""Room left in the context for the chat template's own tokens."""
MIN_PIECE_TOKENS = 128
MAX_REDUCE_ROUNDS = 6


@dataclass
class Summary:
    """A summary's sections (empty ones stay empty) and how it was made."""

    overview: str = ""
    key_points: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    action_items: list[str] = field(default_factory=list)
    open_questions: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    pieces: int = 1
    reduce_rounds: int = 0

    def is_empty(self) -> bool:
        """Whether no section has anything."""
        return not (
            self.overview
            or self.key_points
            or self.decisions
            or self.action_items
            or self.open_questions
        )

    def sections(self) -> dict[str, Any]:
        """The sections as JSON (every key, empty ones included)."""
        return {key: getattr(self, key) for key, _ in SECTIONS}

    def to_markdown(self, title: str = "Summary") -> str:
        """``summary.md``: a title, then each section that has something."""
        lines = [f"# {title}", ""]
        for key, heading in SECTIONS:
            value = getattr(self, key)
            if not value:
                continue
            lines += [f"## {heading}", ""]
            if isinstance(value, str):
                lines.append(value)
            else:
                lines += [f"- {item}" for item in value]
            lines.append("")
        return "\n".join(lines).rstrip("\n") + "\n"

    def token_totals(self) -> dict[str, int | None]:
        """Prompt and completion tokens over every call (None: a provider did not say)."""
        totals: dict[str, int | None] = {}
        for key in ("prompt_tokens", "completion_tokens"):
            values = [c.get(key) for c in self.calls]
            totals[key] = (
                sum(v for v in values if isinstance(v, int))
                if values and all(isinstance(v, int) for v in values)
                else None
            )
        return totals


# --------------------------------------------------------------------------- parsing

_ALIASES = {
    "overview": "overview",
    "summary": "overview",
    "key points": "key_points",
    "keypoints": "key_points",
    "main points": "key_points",
    "highlights": "key_points",
    "decisions": "decisions",
    "decisions made": "decisions",
    "action items": "action_items",
    "actions": "action_items",
    "next steps": "action_items",
    "tasks": "action_items",
    "open questions": "open_questions",
    "questions": "open_questions",
    "unresolved questions": "open_questions",
}
_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s*|\*\*|__)?\s*([A-Za-z][A-Za-z ]{2,30}?)\s*(?:\*\*|__)?\s*:?\s*(?:\*\*)?\s*$"
)
_TITLE = re.compile(r"^\s*(?:summary|transcript|meeting summary|part \d+)\b.*$", re.IGNORECASE)
_ITEM = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+(.*\S)\s*$")
_NOTHING = re.compile(
    r"^(?:none|n/?a|nothing|no\b.*\b(?:mentioned|made|given|stated|raised|identified)|"
    r"not (?:mentioned|applicable|stated)|-+|\d+[.)]?)\W*$",
    re.IGNORECASE,
)


def _clean(text: str) -> str:
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)  # bold inside an item
    return " ".join(text.split())


def _section_key(title: str) -> str | None:
    """The section a heading names (singular or plural, any case), or None."""
    name = " ".join(title.lower().split())
    for candidate in (name, f"{name}s", name.removesuffix("s")):
        if candidate in _ALIASES:
            return _ALIASES[candidate]
    return None


def parse_reply(text: str) -> Summary:
    """Read a model's reply into sections; whatever stands before the first heading
    (or a reply without headings) is the overview. "None"-like items are dropped."""
    summary = Summary()
    current = "overview"
    loose: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        heading = _HEADING.match(line)
        if heading:
            key = _section_key(heading.group(1))
            if key is not None:
                current = key
                continue
            if line.endswith(":") or _TITLE.match(heading.group(1)):
                continue  # a label ("Transcript:") or a title ("# Summary"): not content
        if line.startswith("#"):
            line = line.lstrip("#").strip()  # a heading that is not a section: content
            if _TITLE.match(line):
                continue
        item = _ITEM.match(line)
        content = _clean(item.group(1) if item else line)
        if not content or _NOTHING.match(content):
            continue
        if current == "overview" and item and not loose:
            summary.key_points.append(content)  # a list before any heading: key points
        elif current == "overview":
            loose.append(content)
        else:
            getattr(summary, current).append(content)
    summary.overview = " ".join(loose)
    for key, _ in SECTIONS[1:]:
        items = getattr(summary, key)
        seen: set[str] = set()
        unique = []
        for item in items:
            if item.lower() not in seen:
                seen.add(item.lower())
                unique.append(item)
        setattr(summary, key, unique)
    return summary


# --------------------------------------------------------------------------- map-reduce

Progress = Callable[[str], None]


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


def piece_budget(provider: Provider, options: GenerationOptions) -> tuple[int, int, str]:
    """Tokens of transcript one call may hold, the overlap, and how tokens are counted.

    Raises:
        LLMError: the context leaves no room for a piece (context too small for
            ``max_tokens`` and the prompt).
    """
    method, count = counter(provider)
    fixed = count(SYSTEM_PROMPT) + count(MAP_PROMPT) + SAFETY_TOKENS
    budget = options.context - options.max_tokens - fixed
    if budget < MIN_PIECE_TOKENS:
        raise LLMError(
            f"context of {options.context} tokens leaves {max(budget, 0)} for the transcript "
            f"after {options.max_tokens} for the reply and {fixed} for the prompt; "
            "raise --summarize-context or lower --summarize-max-tokens"
        )
    return budget, int(budget * OVERLAP_FRACTION), method


def counter(provider: Provider) -> tuple[str, Callable[[str], int]]:
    """How tokens are counted: the provider's tokenizer, else the estimate."""
    try:
        probe = provider.count_tokens("infomux")
    except LLMError:
        raise
    if probe is None:
        return f"estimate ({CHARS_PER_TOKEN:g} characters per token)", estimate_tokens

    def count(text: str) -> int:
        value = provider.count_tokens(text)
        return value if value is not None else estimate_tokens(text)

    return "provider tokenizer", count


def summarize(
    provider: Provider,
    transcript: str,
    options: GenerationOptions,
    *,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[Summary, str]:
    """Summarize ``transcript``; return the summary and how tokens were counted.

    ``progress`` gets one line per call (``piece 2/5``, ``combining``);
    ``cancelled`` is polled between calls.

    Raises:
        LLMError: a call failed (one line naming the endpoint and the cause), or the
            context is too small.
        InterruptedError: ``cancelled`` said so between two calls.
    """
    budget, overlap, method = piece_budget(provider, options)
    _, count = counter(provider)
    pieces = split_text(transcript, budget, overlap, count)
    calls: list[dict[str, Any]] = []
    say = progress or (lambda _line: None)

    def call(prompt: str, kind: str, label: str) -> str:
        if cancelled is not None and cancelled():
            raise InterruptedError("summarize cancelled")
        say(label)
        started = time.perf_counter()
        reply: Reply = provider.chat(_messages(prompt), options)
        seconds = time.perf_counter() - started
        calls.append(
            {
                "kind": kind,
                "input_chars": len(prompt),
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "seconds": round(seconds, 3),
                # the reply stopped at max_tokens: it may end mid-sentence
                "truncated": reply.completion_tokens is not None
                and reply.completion_tokens >= options.max_tokens,
            }
        )
        if calls[-1]["truncated"]:
            log.warning(
                "%s: the reply reached max_tokens (%d) and may be cut short",
                label,
                options.max_tokens,
            )
        return reply.text

    if len(pieces) <= 1:
        text = call(SINGLE_PROMPT.format(text=pieces[0] if pieces else ""), "single", "one call")
        result = parse_reply(text)
        result.calls, result.pieces = calls, 1
        return result, method
    partials = []
    for i, piece in enumerate(pieces, 1):
        reply = call(
            MAP_PROMPT.format(index=i, count=len(pieces), text=piece),
            "map",
            f"piece {i}/{len(pieces)} ({len(piece)} characters)",
        )
        partials.append(parse_reply(reply).to_markdown(f"Part {i}"))
    rounds = 0
    reduce_budget = (
        options.context
        - options.max_tokens
        - count(SYSTEM_PROMPT)
        - count(REDUCE_PROMPT)
        - SAFETY_TOKENS
    )
    while True:
        rounds += 1
        groups = _groups(partials, reduce_budget, count)
        if len(groups) == 1 or rounds >= MAX_REDUCE_ROUNDS:
            text = call(
                REDUCE_PROMPT.format(text="\n\n".join(groups[0] if len(groups) == 1 else partials)),
                "reduce",
                f"combining {len(partials)} part summaries",
            )
            break
        merged = []
        for j, group in enumerate(groups, 1):
            reply = call(
                REDUCE_PROMPT.format(text="\n\n".join(group)),
                "reduce",
                f"combining group {j}/{len(groups)} (round {rounds})",
            )
            merged.append(parse_reply(reply).to_markdown(f"Parts, group {j}"))
        partials = merged
    result = parse_reply(text)
    result.calls, result.pieces, result.reduce_rounds = calls, len(pieces), rounds
    return result, method


def _groups(partials: list[str], budget: int, count: Callable[[str], int]) -> list[list[str]]:
    """Consecutive partial summaries packed into groups of at most ``budget`` tokens
    (at least two per group, so each round shrinks the list)."""
    groups: list[list[str]] = []
    current: list[str] = []
    total = 0
    for text in partials:
        size = count(text) + 2
        if current and total + size > budget and len(current) >= 2:
            groups.append(current)
            current, total = [], 0
        current.append(text)
        total += size
    if current:
        if groups and len(current) == 1:
            groups[-1].append(current[0])
        else:
            groups.append(current)
    return groups


__all__ = [
    "PROMPT_SHA256",
    "PROMPT_VERSION",
    "SECTIONS",
    "Summary",
    "parse_reply",
    "piece_budget",
    "summarize",
]
