"""The transcript scoring helper itself (tests/wer.py)."""

from __future__ import annotations

import pytest

from tests.wer import cer, normalise, wer


def test_normalise_drops_case_punctuation_and_spacing() -> None:
    assert normalise("  And so, my fellow\nAmericans:  ask NOT! ") == (
        "and so my fellow americans ask not"
    )
    assert normalise("don’t — 'quoted' well-known") == "don't quoted well known"
    assert normalise("ＡＢＣ１２３") == "abc123"  # full-width forms (NFKC)


def test_wer_counts_words_only() -> None:
    assert wer("Ask not what your country can do.", "ask not, what your country can do") == 0.0
    assert wer("one two three four", "one two tree four") == pytest.approx(0.25)
    assert wer("one two three four", "one three four five") == pytest.approx(0.5)
    assert wer("", "") == 0.0 and wer("", "anything") == 1.0


def test_cer_for_japanese_ignores_punctuation_and_spaces() -> None:
    ref = "今日は朝から雨が降っています。駅の前で、コーヒーを飲みました。"
    assert cer(ref, "今日は 朝から雨が降っています 駅の前で コーヒーを飲みました") == 0.0
    counted = "今日は朝から雨が降っています駅の前でコーヒーを飲みました"
    changed = ref.replace("雨", "雪")  # one character substituted
    assert cer(ref, changed) == pytest.approx(1 / len(counted))
    # Without spaces a whole clause is one "word": WER would say a third is wrong.
    assert wer(ref, changed) == pytest.approx(1 / 3)
