"""Word error rate after normalising case and punctuation (as the benchmarks do)."""

from __future__ import annotations

import re

import jiwer


def normalise(text: str) -> str:
    """Lower-case, drop punctuation (keeping apostrophes inside words), squeeze spaces."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    """Return the word error rate of ``hypothesis`` against ``reference``."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))
