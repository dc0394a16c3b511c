"""subtitles.py: the layout rules on hand-made word timings (real transcripts: test_captions.py)."""

from __future__ import annotations

import itertools

import pytest

from infomux import subtitles, writers
from infomux.engine import Segment, Transcript, Word
from infomux.subtitles import Cue, LayoutOptions, TimedWord

OPTS = LayoutOptions()


def words_of(text: str, start: float = 0.0, per_word: float = 0.3, gap: float = 0.05):
    out = []
    t = start
    for w in text.split():
        out.append(TimedWord(t, t + per_word, w))
        t += per_word + gap
    return out


def check_rules(cues: list[Cue], words: list[TimedWord], opts: LayoutOptions = OPTS) -> None:
    """Every rule of the layout that does not depend on the speech allowing it."""
    assert " ".join(" ".join(c.lines) for c in cues).split() == [w.text for w in words]
    for cue in cues:
        assert 1 <= len(cue.lines) <= opts.max_lines, cue
        assert all(len(line) <= opts.max_chars for line in cue.lines), cue
        assert cue.duration <= opts.max_duration + 1e-6, cue
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start + 1e-9, (a, b)


def test_short_sentences_stay_whole_and_break_at_sentence_end() -> None:
    words = words_of("The river town woke slowly. Fishing boats drifted past.")
    cues = subtitles.layout_words(words, OPTS)
    assert [c.text for c in cues] == ["The river town woke slowly.", "Fishing boats drifted past."]
    check_rules(cues, words)


def test_long_sentence_is_cut_at_a_comma_and_lines_are_balanced() -> None:
    text = (
        "Fishing boats drifted past the old stone bridge, and the baker on Mill Street "
        "opened his shutters at six o'clock in the morning before anyone else was awake"
    )
    words = words_of(text, per_word=0.2)
    cues = subtitles.layout_words(words, OPTS)
    check_rules(cues, words)
    assert cues[0].text.endswith("bridge,")  # the clause, not mid-phrase
    two = [c for c in cues if len(c.lines) == 2]
    assert two and all(abs(len(c.lines[0]) - len(c.lines[1])) <= 20 for c in two)


def test_pause_breaks_a_cue() -> None:
    words = words_of("one two three") + words_of("four five six", start=3.0)
    cues = subtitles.layout_words(words, OPTS)
    assert [c.text for c in cues] == ["one two three", "four five six"]


def test_max_duration_and_min_duration() -> None:
    slow = words_of(" ".join(["word"] * 12), per_word=0.9)  # 12 words over ~11 s
    cues = subtitles.layout_words(slow, OPTS)
    check_rules(cues, slow)
    assert len(cues) >= 2
    # a lone short word is stretched into the silence after it
    [cue] = subtitles.layout_words([TimedWord(1.0, 1.2, "Yes.")], OPTS)
    assert cue.start == 1.0 and cue.duration == pytest.approx(0.7)


def test_short_cue_merges_with_a_close_neighbour_and_never_overlaps() -> None:
    words = [TimedWord(0.0, 0.2, "Hi."), TimedWord(0.25, 0.5, "Okay."), TimedWord(0.55, 3, "Go")]
    cues = subtitles.layout_words(words, OPTS)
    check_rules(cues, words)
    assert all(c.duration >= OPTS.min_duration for c in cues)


def test_overlapping_word_times_give_ordered_cues() -> None:
    words = [TimedWord(0.0, 2.0, "First."), TimedWord(1.5, 3.0, "Second.")]
    cues = subtitles.layout_words(words, LayoutOptions(max_chars=6, max_lines=1))
    check_rules(cues, words, LayoutOptions(max_chars=7, max_lines=1))
    assert cues[0].end <= cues[1].start


def test_word_longer_than_a_line_is_not_split() -> None:
    long = "x" * 50
    words = words_of(f"a {long} b")
    cues = subtitles.layout_words(words, OPTS)
    assert long in [line for c in cues for line in c.lines]
    assert subtitles.cue_stats(cues, OPTS)["long_lines"] == 1


def test_reading_speed_is_reported() -> None:
    fast = [TimedWord(0.0, 1.0, "Extraordinarily"), TimedWord(1.0, 2.0, "complicated.")]
    cues = subtitles.layout_words(fast, OPTS)
    stats = subtitles.cue_stats(cues, OPTS)
    assert stats["cues"] == 1 and stats["max_cps"] > 13
    assert subtitles.cue_stats(cues, LayoutOptions(max_cps=5))["too_fast"] == 1


def test_segments_without_words_are_laid_out_too() -> None:
    seg = Segment(0.0, 10.0, " " + "lorem ipsum dolor sit amet " * 6, 0.0)
    tr = Transcript((seg,), "en", 1.0, 10.0)
    cues = subtitles.layout(tr)
    assert len(cues) >= 2 and all(len(c.lines) <= 2 for c in cues)
    assert cues[0].start == 0.0 and cues[-1].end <= 10.0


def test_words_from_segments_and_writers() -> None:
    seg = Segment(0.0, 2.0, " Hello there.", 0.0, words=(Word(0.1, 0.5, "Hello", 0.9),))
    seg2 = Segment(2.0, 3.0, " Bye.", 0.0, words=(Word(2.1, 2.4, "Bye.", 0.9),))
    tr = Transcript((seg, seg2), "en", 1.0, 3.0)
    cues = subtitles.layout(tr)
    srt = writers.cues_to_srt(cues)
    assert srt.startswith("1\n00:00:00,100 --> ")
    assert writers.cues_to_vtt(cues).startswith("WEBVTT\n\n00:00:00.100 --> ")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, LayoutOptions()),
        ({"subtitle_layout": False}, None),
        ({"max_line_chars": 32, "max_lines": 1}, LayoutOptions(max_chars=32, max_lines=1)),
        ({"min_cue_seconds": 1, "steps": {"transcribe": {"max_cue_seconds": 5}}}, None),
    ],
)
def test_options_from_config(config: dict[str, object], expected: LayoutOptions | None) -> None:
    got = subtitles.options_from_config(config, "transcribe")
    if "steps" in config:  # per-step options over the run's
        assert got == LayoutOptions(min_duration=1.0, max_duration=5.0)
    else:
        assert got == expected


@pytest.mark.parametrize(
    "config",
    [{"max_line_chars": "x"}, {"max_lines": 1.5}, {"min_cue_seconds": 8}, {"max_cps": 0}],
)
def test_bad_options(config: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        subtitles.options_from_config(config)
