"""The partial transcript of a run: segments written as they are decoded, to resume mid-file.

``transcript.partial.jsonl`` in the run directory is append-only JSON lines, each
flushed and fsynced as it is written:

* a header: ``{"partial": 1, "fingerprint": {...}, "cuts": [...]}`` — what the segments
  depend on (model, decoding options, number of samples) and where the recording was
  cut into parts;
* one line per decoded segment: ``{"part": i, "segment": {...}}`` (times on the whole
  recording's clock, tokens and words included);
* one line when a part has finished: ``{"part": i, "done": true, "language": ...}``.

A resumed run whose fingerprint matches keeps every complete line (a line torn by a
crash is ignored) and continues each unfinished part from the end of its last segment.
The file is removed once the transcript files are written.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infomux.engine import Segment

log = logging.getLogger("infomux.partial")

PARTIAL_FILE = "transcript.partial.jsonl"
VERSION = 1


@dataclass
class Progress:
    """What an interrupted run had already transcribed."""

    cuts: list[float]
    segments: dict[int, list[Segment]] = field(default_factory=dict)
    done: dict[int, str] = field(default_factory=dict)
    """Finished parts and the language each reported."""

    def part(self, index: int) -> list[Segment]:
        """The segments of part ``index`` (possibly none)."""
        return self.segments.get(index, [])


def segment_to_json(segment: Segment) -> dict[str, Any]:
    """A segment as JSON-friendly data, tokens and words included."""
    return segment.to_dict(tokens=True)


def segment_from_json(data: dict[str, Any]) -> Segment:
    """The inverse of :func:`segment_to_json`."""
    from infomux.engine import Segment, Token, Word

    return Segment(
        start=float(data["start"]),
        end=float(data["end"]),
        text=str(data["text"]),
        no_speech_prob=float(data["no_speech_prob"]),
        tokens=tuple(Token(**t) for t in data.get("tokens", ())),
        words=tuple(Word(**w) for w in data.get("words", ())),
    )


class PartialTranscript:
    """Writer and reader of a run's ``transcript.partial.jsonl``."""

    def __init__(self, run_dir: Path) -> None:
        """Bind to ``run_dir``'s partial file (nothing is opened yet)."""
        self.path = run_dir / PARTIAL_FILE
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()

    def load(self, fingerprint: dict[str, Any]) -> Progress | None:
        """The progress recorded under the same ``fingerprint``, or None."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # torn by a crash mid-write
        if not records or records[0].get("partial") != VERSION:
            return None
        header = records[0]
        if header.get("fingerprint") != json.loads(json.dumps(fingerprint)):
            log.info("the partial transcript was made with other options: starting over")
            return None
        progress = Progress(cuts=[float(c) for c in header.get("cuts", [])])
        for record in records[1:]:
            part = int(record.get("part", -1))
            if part < 0 or part > len(progress.cuts):
                continue
            if record.get("done"):
                progress.done[part] = str(record.get("language") or "")
            elif "segment" in record:
                progress.segments.setdefault(part, []).append(segment_from_json(record["segment"]))
        return progress

    def start(self, fingerprint: dict[str, Any], cuts: list[float]) -> None:
        """Begin a new partial transcript (replacing any other)."""
        self.close()
        self._fh = self.path.open("w", encoding="utf-8")
        self._write({"partial": VERSION, "fingerprint": fingerprint, "cuts": cuts})

    def reopen(self) -> None:
        """Go on appending to the partial transcript :meth:`load` read."""
        self.close()
        # a torn last line would glue onto the next record: end it first
        torn = False
        with self.path.open("rb") as fh:
            if fh.seek(0, os.SEEK_END) > 0:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        self._fh = self.path.open("a", encoding="utf-8")
        if torn:
            self._fh.write("\n")

    def add_segment(self, part: int, segment: Segment) -> None:
        """Record one decoded segment of ``part`` (durably, before returning)."""
        self._write({"part": part, "segment": segment_to_json(segment)})

    def part_done(self, part: int, language: str) -> None:
        """Record that ``part`` was transcribed to its end."""
        self._write({"part": part, "done": True, "language": language})

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (it stays on disk)."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def remove(self) -> None:
        """Close and delete the file (the transcript is complete)."""
        self.close()
        self.path.unlink(missing_ok=True)
