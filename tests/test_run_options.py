"""Run options (issue 12.4): decoding options reach whisper.cpp, are recorded in job.json
(the graph's step options and the engine's options) and are reused by resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infomux import pipeline, storage
from infomux.cli import main
from tests.require import media_file


def test_decoding_options_reach_whisper_and_resume_reuses_them(
    real_model: Any, capsys: Any
) -> None:
    audio = media_file("speech_a.wav")
    code = main(
        [
            "run",
            "-q",
            "--beam-size",
            "2",
            "--best-of",
            "2",
            "--temperature",
            "0.1",
            "--prompt",
            "Hello there.",
            "--formats",
            "txt",
            str(audio),
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    run_dir = Path(out.strip())
    data = json.loads((run_dir / "job.json").read_text())
    opts = data["options"]  # what whisper.cpp was given
    assert opts["beam_size"] == 2 and opts["best_of"] == 2
    assert opts["temperature"] == 0.1 and opts["initial_prompt"] == "Hello there."
    node = data["graph"]["steps"][1]["options"]
    assert node["beam_size"] == 2 and node["prompt"] == "Hello there."
    assert data["config"]["beam_size"] == 2

    job = storage.load_job(run_dir)
    pipeline.prepare_resume(job, run_dir, from_step="transcribe")
    pipeline.execute(job, run_dir)
    again = json.loads((run_dir / "job.json").read_text())
    assert again["options"]["initial_prompt"] == "Hello there."
    assert again["options"]["beam_size"] == 2
    assert again["steps"][1]["attempts"][0]["outputs"] == ["attempts/transcribe/1/transcript.txt"]
