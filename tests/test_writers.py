"""writers.py: txt/srt/vtt/json from hand-built transcripts."""

from __future__ import annotations

import json

import pytest

from infomux import writers
from infomux.engine import Segment, Transcript, Word


def seg(start: float, end: float, text: str, words: tuple[Word, ...] = ()) -> Segment:
    return Segment(start=start, end=end, text=text, no_speech_prob=0.01, words=words)


def transcript(*segments: Segment, language: str = "en") -> Transcript:
    return Transcript(
        segments=tuple(segments), language=language, language_probability=0.98, duration=12.5
    )


SAMPLE = transcript(
    seg(0.0, 2.5, " The river town woke slowly."),
    seg(2.5, 3661.0406, " Fishing boats   drifted past."),
    seg(3661.5, 3662.0, "   "),  # blank: no cue
)


@pytest.mark.parametrize(
    ("seconds", "vtt", "srt"),
    [
        (0, "00:00:00.000", "00:00:00,000"),
        (1.0004, "00:00:01.000", "00:00:01,000"),
        (1.0006, "00:00:01.001", "00:00:01,001"),
        (59.9996, "00:01:00.000", "00:01:00,000"),
        (3661.25, "01:01:01.250", "01:01:01,250"),
        (360000.0, "100:00:00.000", "100:00:00,000"),
        (-3.0, "00:00:00.000", "00:00:00,000"),
        (float("nan"), "00:00:00.000", "00:00:00,000"),
    ],
)
def test_format_timestamp(seconds: float, vtt: str, srt: str) -> None:
    assert writers.format_timestamp(seconds) == vtt
    assert writers.format_timestamp(seconds, separator=",") == srt


def test_txt() -> None:
    assert writers.to_txt(SAMPLE) == "The river town woke slowly.\nFishing boats drifted past.\n"


def test_srt() -> None:
    assert writers.to_srt(SAMPLE) == (
        "1\n00:00:00,000 --> 00:00:02,500\nThe river town woke slowly.\n"
        "\n"
        "2\n00:00:02,500 --> 01:01:01,041\nFishing boats drifted past.\n"
    )


def test_vtt() -> None:
    assert writers.to_vtt(SAMPLE) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\nThe river town woke slowly.\n"
        "\n"
        "00:00:02.500 --> 01:01:01.041\nFishing boats drifted past.\n"
    )


def test_vtt_escapes_arrow_and_end_not_before_start() -> None:
    out = writers.to_vtt(transcript(seg(5.0, 4.0, "a --> b")))
    assert "00:00:05.000 --> 00:00:05.000\na -> b\n" in out


def test_json_without_words() -> None:
    data = json.loads(writers.to_json(SAMPLE))
    assert data["text"] == "The river town woke slowly. Fishing boats   drifted past."
    assert data["language"] == "en" and data["language_probability"] == 0.98
    assert data["duration"] == 12.5
    assert [s["id"] for s in data["segments"]] == [0, 1, 2]
    first = data["segments"][0]
    assert first == {
        "id": 0,
        "start": 0.0,
        "end": 2.5,
        "text": "The river town woke slowly.",
        "no_speech_prob": 0.01,
    }
    assert all("words" not in s for s in data["segments"])


def test_json_with_words_and_unicode() -> None:
    words = (Word(0.0, 0.4, " Grüße", 0.9), Word(0.4, 0.81234, " 世界", 0.5))
    out = writers.to_json(transcript(seg(0.0, 0.9, " Grüße 世界", words), language="de"))
    assert "Grüße" in out and "世界" in out  # not ASCII-escaped
    data = json.loads(out)
    assert data["segments"][0]["words"] == [
        {"start": 0.0, "end": 0.4, "text": " Grüße", "probability": 0.9},
        {"start": 0.4, "end": 0.812, "text": " 世界", "probability": 0.5},
    ]


def test_empty_transcript() -> None:
    empty = transcript()
    assert writers.to_txt(empty) == ""
    assert writers.to_srt(empty) == ""
    assert writers.to_vtt(empty) == "WEBVTT\n"
    assert json.loads(writers.to_json(empty))["segments"] == []


def test_parse_formats() -> None:
    assert writers.parse_formats("txt,srt") == ["txt", "srt"]
    assert writers.parse_formats(" JSON , txt,json,") == ["json", "txt"]
    assert writers.parse_formats(["vtt"]) == ["vtt"]
    with pytest.raises(ValueError, match="unknown format"):
        writers.parse_formats("txt,docx")
    with pytest.raises(ValueError, match="no output format"):
        writers.parse_formats(",")
    assert set(writers.WRITERS) == set(writers.DEFAULT_FORMATS) == {"txt", "srt", "vtt", "json"}
