"""The one way the tests score a transcript: jiwer over one normaliser.

Word error rate (:func:`wer`; over several texts :func:`corpus_wer`) for languages
written with spaces, character error rate (:func:`cer`) for those without (Japanese:
``speech_ja.m4a``). All compare the texts after :func:`normalise`, so case, punctuation,
full-width forms and line breaks never count as errors.
"""

from __future__ import annotations

import re
import unicodedata

import jiwer

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "＇": "'"})


def normalise(text: str) -> str:
    """NFKC, lower-case, punctuation to spaces (keeping apostrophes inside words), and
    runs of white space squeezed to one space."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = re.sub(r"[^\w\s']|_", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def _score(measure: str, reference: str, hypothesis: str) -> float:
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return float(getattr(jiwer, measure)(reference, hypothesis))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (both normalised)."""
    return _score("wer", normalise(reference), normalise(hypothesis))


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (both normalised,
    white space removed: for scripts without word boundaries, such as Japanese)."""
    ref, hyp = ("".join(normalise(t).split()) for t in (reference, hypothesis))
    return _score("cer", ref, hyp)


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Word error rate over several ``(reference, hypothesis)`` pairs: all the errors over
    all the reference words (each text normalised), not a mean of per-text rates."""
    refs = [normalise(r) for r, _ in pairs]
    hyps = [normalise(h) for _, h in pairs]
    kept = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    if not kept:
        return 0.0
    return float(jiwer.wer([r for r, _ in kept], [h for _, h in kept]))
