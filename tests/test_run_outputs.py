"""Run options of issue 12.4 that shape what a run leaves behind: ``--output-dir``,
``--print``, the stdout contract without them, and the config file (every run option
settable, unknown keys an error naming the key)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infomux import config, exports, pipeline, storage
from infomux.cli import main
from infomux.job import SCHEMA_PATH
from tests.fixtures import cli
from tests.require import media_file

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))



def load(run_dir: Path) -> dict[str, Any]:
    data = json.loads((run_dir / "job.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return data


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "cfg" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("INFOMUX_CONFIG", str(path))
    return path


# --------------------------------------------------------------------------- stdout


def test_stdout_is_exactly_the_run_dir_byte_for_byte(hermetic_env: Path, tmp_path: Path) -> None:
    media = media_file("speech_a.wav")
    proc = cli("run", "--pipeline", "audio", "--output-dir", str(tmp_path / "out"), str(media))
    assert proc.returncode == 0, proc.stderr
    [run_dir] = sorted((hermetic_env / "runs").iterdir())
    assert proc.stdout == os.fsencode(run_dir) + b"\n"
    assert b"infomux:" in proc.stderr  # the logs go to stderr, not stdout


def test_print_without_a_transcribe_step_is_a_usage_error(hermetic_env: Path) -> None:
    proc = cli("run", "--pipeline", "audio", "--print", "txt", str(media_file("speech_a.wav")))
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert b"--print needs a transcript" in proc.stderr
    assert not (hermetic_env / "runs").exists()


def test_print_and_output_dir_end_to_end(real_model: Any, tmp_path: Path, capsys: Any) -> None:
    """--print txt: the run dir line, then transcript.txt; --output-dir links it."""
    out_dir = tmp_path / "out"
    media = media_file("speech_a.wav")
    args = ["run", "-q", "--formats", "txt", "--print", "srt", "--output-dir", str(out_dir)]
    assert main([*args, str(media)]) == 0
    out, _ = capsys.readouterr()
    first, _, rest = out.partition("\n")
    run_dir = Path(first)
    srt = (run_dir / "transcript.srt").read_text(encoding="utf-8")
    assert rest == srt and srt.startswith("1\n00:00:")  # --print srt added srt to formats
    data = load(run_dir)
    assert data["config"]["print"] == "srt" and data["config"]["formats"] == ["txt", "srt"]
    assert data["config"]["output_dir"] == str(out_dir)
    exported = {e["file"]: e for e in data["exports"]}
    assert sorted(exported) == ["transcript.srt", "transcript.txt"]
    assert exported["transcript.txt"]["path"] == str(out_dir / "speech_a.txt")
    assert exported["transcript.txt"]["method"] == "hardlink"  # tmp_path: one file system
    assert os.path.samefile(out_dir / "speech_a.txt", run_dir / "transcript.txt")
    assert sorted(p.name for p in out_dir.iterdir()) == ["speech_a.srt", "speech_a.txt"]


# --------------------------------------------------------------------------- exports


def fake_transcribed_run(tmp_path: Path) -> tuple[Any, Path]:
    """A run of the audio pipeline given transcript files, as if transcribed."""
    job, run_dir = pipeline.create_run(media_file("speech_a.wav"), pipeline="audio")
    for fmt in ("txt", "srt"):
        (run_dir / f"transcript.{fmt}").write_text(f"a {fmt}\n", encoding="utf-8")
    (run_dir / "audio.wav").write_bytes(b"x")
    job.add_artifacts(["audio.wav", "transcript.txt", "transcript.srt"])
    return job, run_dir


def test_exports_copy_across_file_systems_and_never_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, run_dir = fake_transcribed_run(tmp_path)
    out_dir = tmp_path / "out"
    first = exports.export_outputs(job, run_dir, out_dir)
    assert [(r["file"], Path(r["path"]).name, r["method"]) for r in first] == [
        ("transcript.txt", "speech_a.txt", "hardlink"),
        ("transcript.srt", "speech_a.srt", "hardlink"),
    ]

    job2, run_dir2 = fake_transcribed_run(tmp_path)
    (run_dir2 / "transcript.txt").write_text("second\n", encoding="utf-8")
    real_link = os.link

    def link(src: Any, dst: Any) -> None:
        if Path(src).parent == run_dir2:  # run dir -> out dir: "another file system"
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst)

    monkeypatch.setattr(exports.os, "link", link)
    second = exports.export_outputs(job2, run_dir2, out_dir)
    # names taken: this run's files carry its id; the first run's files are untouched
    assert [Path(r["path"]).name for r in second] == [
        f"speech_a.{job2.id}.txt",
        f"speech_a.{job2.id}.srt",
    ]
    assert {r["method"] for r in second} == {"copy"}
    assert (out_dir / "speech_a.txt").read_text() == "a txt\n"
    assert (out_dir / f"speech_a.{job2.id}.txt").read_text() == "second\n"
    assert not os.path.samefile(out_dir / f"speech_a.{job2.id}.txt", run_dir2 / "transcript.txt")
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # no temp files
    storage.save_job(job2, run_dir2)
    assert load(run_dir2)["exports"] == second
    assert "exports" not in load(fake_transcribed_run(tmp_path)[1])  # none: key absent


def test_output_dir_that_cannot_be_made_fails_before_any_run(
    hermetic_env: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = cli("run", "--pipeline", "audio", "--output-dir", str(blocker / "sub"),
               str(media_file("speech_a.wav")))  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.decode().strip().startswith("Error: cannot create output dir")
    assert not (hermetic_env / "runs").exists()


# --------------------------------------------------------------------------- config file


def test_unknown_config_key_is_an_error_naming_it(
    hermetic_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, monkeypatch, 'model = "tiny.en"\nbeam_sise = 3\n')
    with pytest.raises(ValueError, match="unknown key 'beam_sise'"):
        config.load_config()
    proc = cli("run", "--pipeline", "audio", str(media_file("speech_a.wav")))
    assert proc.returncode == 1 and proc.stdout == b""
    line = proc.stderr.decode().strip()
    assert line.startswith(f"Error: config file {path}: unknown key 'beam_sise' (known: ")
    assert "\n" not in line
    write_config(tmp_path, monkeypatch, 'print = "txt"\n')
    with pytest.raises(ValueError, match="'print' cannot be set in the config file"):
        config.load_config()
    write_config(tmp_path, monkeypatch, "[subtitle]\nmax_lines = 1\n")
    with pytest.raises(ValueError, match="unknown key 'subtitle'"):
        config.load_config()
    write_config(tmp_path, monkeypatch, "subtitles = 3\n")
    with pytest.raises(ValueError, match="'subtitles' must be a table"):
        config.load_config()
    write_config(tmp_path, monkeypatch, 'vad = "yes"\n')
    with pytest.raises(ValueError, match="'vad' must be true or false"):
        config.load_config()


def test_every_run_option_settable_in_the_config_file(
    hermetic_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    write_config(
        tmp_path,
        monkeypatch,
        "\n".join(
            [
                'language = "en"',
                "threads = 2",
                "streams = 'auto'",
                'formats = "txt,json"',
                "vad = true",
                'vad_model = "vad.bin"',
                "word_timestamps = true",
                "translate = false",
                "beam_size = 3",
                "best_of = 2",
                "temperature = 0",
                'prompt = "Names."',
                "audio_stream = 0",
                "keep_audio = false",
                "encoder_bf16 = false",
                'output_dir = "out"',
                'pipeline = "audio"',
                "[subtitles]",
                "max_line_chars = 30",
                "",
            ]
        ),
    )
    assert main(["run", "-q", "--dry-run", str(media_file("speech_a.wav"))]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("audio:")  # the config file's pipeline
    from infomux.commands import run as run_cmd

    parser_args = _parse(["run", "x"])
    options = run_cmd.run_config(parser_args)
    cfg_dir = tmp_path / "cfg"
    expected = {
        "language": "en",
        "threads": 2,
        "streams": 0,
        "formats": ["txt", "json"],
        "vad": True,
        "vad_model": str(cfg_dir / "vad.bin"),
        "word_timestamps": True,
        "translate": False,
        "beam_size": 3,
        "best_of": 2,
        "temperature": 0.0,
        "prompt": "Names.",
        "audio_stream": 0,
        "keep_audio": False,
        "encoder_bf16": False,
        "output_dir": str(cfg_dir / "out"),
        "max_line_chars": 30,
    }
    assert {k: options.get(k) for k in expected} == expected
    # flags win over the file
    flags = _parse(
        ["run", "--formats", "srt", "--no-vad", "--output-dir", "o2", "--encoder-bf16", "x"]
    )
    options = run_cmd.run_config(flags)
    assert options["formats"] == ["srt"] and options["vad"] is False
    assert options["encoder_bf16"] is True
    assert options["output_dir"] == str(Path("o2").absolute())


def _parse(argv: list[str]) -> Any:
    from infomux.cli import build_parser

    return build_parser().parse_args(argv)


def test_a_runs_own_earlier_exports_are_replaced(tmp_path: Path) -> None:
    """A resumed run (resume --from-step) exports again under the same names."""
    job, run_dir = fake_transcribed_run(tmp_path)
    out_dir = tmp_path / "out"
    exports.export_outputs(job, run_dir, out_dir)
    (run_dir / "transcript.txt").unlink()  # the step made it anew
    (run_dir / "transcript.txt").write_text("redone\n", encoding="utf-8")
    again = exports.export_outputs(job, run_dir, out_dir)
    assert [Path(r["path"]).name for r in again] == ["speech_a.txt", "speech_a.srt"]
    assert (out_dir / "speech_a.txt").read_text() == "redone\n"
    assert len(job.exports) == 4  # both exports recorded


def test_print_order_with_parallel_inputs_is_input_order(
    hermetic_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Several inputs run side by side: each run dir line is followed by its transcript,
    in input order, whichever finishes first."""
    import time

    from infomux.commands import run as run_cmd

    dirs = {}
    for name, delay in (("a", 0.6), ("b", 0.0)):
        run_dir = tmp_path / f"run-{name}"
        run_dir.mkdir()
        (run_dir / "transcript.txt").write_text(f"text of {name}", encoding="utf-8")
        dirs[name] = (run_dir, delay)

    def fake_run_one(raw: str, *args: Any, **kwargs: Any) -> Path:
        run_dir, delay = dirs[raw]
        time.sleep(delay)  # b finishes first
        assert kwargs.get("print_dir") is False
        return run_dir

    monkeypatch.setattr(run_cmd, "_run_one", fake_run_one)
    code = main(["run", "-q", "--streams", "2", "--threads", "2", "--print", "txt", "a", "b"])
    out, _ = capsys.readouterr()
    assert code == 0
    a, b = dirs["a"][0], dirs["b"][0]
    assert out == f"{a}\ntext of a\n{b}\ntext of b\n"
