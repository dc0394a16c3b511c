"""Split a long text into pieces that fit a model's context, with overlap.

Tokens are counted with the provider's tokenizer when it has one, else estimated at
:data:`CHARS_PER_TOKEN` characters per token (conservative: English text runs at about
four characters per token, so an estimate errs towards smaller pieces).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

CHARS_PER_TOKEN = 3.0

Counter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A conservative token count: ``ceil(len / CHARS_PER_TOKEN)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def _units(text: str, budget: int, count: Counter) -> list[str]:
    """Lines, and lines too long for ``budget`` cut at sentence ends, then at spaces."""
    units: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if count(line) <= budget:
            units.append(line)
            continue
        for sentence in _SENTENCE_END.split(line):
            if count(sentence) <= budget:
                units.append(sentence)
                continue
            words: list[str] = []
            for word in sentence.split():
                if words and count(" ".join([*words, word])) > budget:
                    units.append(" ".join(words))
                    words = []
                words.append(word)
            if words:
                units.append(" ".join(words))
    return units


def split_text(text: str, budget: int, overlap: int, count: Counter = estimate_tokens) -> list[str]:
    """Split ``text`` into pieces of at most ``budget`` tokens (by ``count``), each
    starting with up to ``overlap`` tokens of the end of the piece before.

    Pieces are made of whole lines (a line longer than the budget is cut at sentence
    ends, then between words). A text that fits is one piece.

    Raises:
        ValueError: ``budget`` < 1 or ``overlap`` not below ``budget``.
    """
    if budget < 1:
        raise ValueError(f"a piece must hold at least one token, not {budget}")
    if not 0 <= overlap < budget:
        raise ValueError(f"overlap {overlap} must be at least 0 and less than {budget}")
    stripped = text.strip()
    if not stripped:
        return []
    if count(stripped) <= budget:
        return [stripped]
    units = _units(stripped, budget, count)
    sizes = [count(u) + 1 for u in units]  # +1: the line break between units
    pieces: list[str] = []
    start = 0
    while start < len(units):
        end, total = start, 0
        while end < len(units) and (end == start or total + sizes[end] <= budget):
            total += sizes[end]
            end += 1
        pieces.append("\n".join(units[start:end]))
        if end >= len(units):
            break
        # the next piece starts with the last units of this one that fit in `overlap`
        back, kept = end, 0
        while back - 1 > start and kept + sizes[back - 1] <= overlap:
            back -= 1
            kept += sizes[back]
        start = back
    return pieces


__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "split_text"]
