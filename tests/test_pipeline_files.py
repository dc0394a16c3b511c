"""Pipelines as data (issue 12.1): the packaged YAML, user files, validation errors with
file and line, step option schemas, the resolved graph in job.json and resume using it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infomux import graph, pipeline, storage
from infomux.cli import main
from infomux.job import SCHEMA_PATH
from infomux.steps import OptionSpec, parse_duration

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def no_user_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user pipeline file unless a test writes one: cwd and XDG_CONFIG_HOME are empty."""
    home = tmp_path / "cwd"
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_builtin_pipelines_come_from_the_packaged_yaml() -> None:
    assert graph.BUILTIN_FILE.is_file()
    builtin = pipeline.builtin_pipelines()
    assert builtin["transcribe"].steps == ("extract_audio", "transcribe", "store")
    assert builtin["transcribe"].node("transcribe").needs == ("extract_audio",)
    assert builtin["audio"].steps == ("extract_audio", "store")
    assert set(builtin) >= {"transcribe+frames", "caption", "caption-burn", "summarize", "report"}
    for p in builtin.values():
        graph.check_pipeline(p)
        assert p.description


def test_user_file_overrides_a_builtin_and_adds_one(no_user_files: Path) -> None:
    write(
        no_user_files / "infomux.yaml",
        """
        pipelines:
          transcribe:
            description: mine
            steps:
              - step: extract_audio
                id: audio
                options: {audio_stream: 1}
              - step: transcribe
                options: {beam_size: 5, prompt: "Hello."}
          just-audio:
            steps:
              - step: extract_audio
        """,
    )
    pipes = pipeline.available_pipelines()
    mine = pipes["transcribe"]
    assert mine.description == "mine" and mine.source.endswith("infomux.yaml")
    assert mine.steps == ("audio", "transcribe")
    assert mine.node("transcribe").needs == ("audio",)  # default: the step before
    assert dict(mine.node("transcribe").options) == {"beam_size": 5, "prompt": "Hello."}
    assert pipes["just-audio"].steps == ("extract_audio",)
    assert pipeline.registered_pipelines()["transcribe"].description != "mine"


def test_xdg_file_then_cwd_then_pipeline_file(no_user_files: Path, tmp_path: Path) -> None:
    xdg = write(
        tmp_path / "xdg" / "infomux" / "pipelines.yaml",
        "pipelines:\n  p: {description: xdg, steps: [{step: extract_audio}]}\n",
    )
    assert pipeline.get_pipeline("p").description == "xdg"
    write(
        no_user_files / "infomux.yaml",
        "pipelines:\n  p: {description: cwd, steps: [{step: extract_audio}]}\n",
    )
    assert pipeline.get_pipeline("p").description == "cwd"
    other = write(
        tmp_path / "other.yaml",
        "pipelines:\n  q: {steps: [{step: extract_audio}]}\n",
    )
    pipes = pipeline.available_pipelines(other)
    assert "q" in pipes and "p" not in pipes  # --pipeline-file replaces the searched files
    assert xdg.is_file()
    with pytest.raises(pipeline.PipelineFileError, match="no such pipeline file"):
        pipeline.available_pipelines(tmp_path / "missing.yaml")


BAD_FILES = [
    (
        """
        pipelines:
          p:
            steps:
              - step: extract_audio
              - step: nope
        """,
        5,
        "unknown step 'nope'",
    ),
    (
        """
        pipelines:
          p:
            steps:
              - step: extract_audio
                options:
                  colour: red
        """,
        6,
        "unknown option 'colour'",
    ),
    (
        """
        pipelines:
          p:
            steps:
              - step: extract_audio
              - step: transcribe
                options:
                  beam_size: five
        """,
        7,
        "'beam_size' must be an integer",
    ),
    (
        """
        pipelines:
          p:
            steps:
              - step: extract_audio
                id: a
                needs: [b]
              - step: extract_audio
                id: b
                needs: [a]
        """,
        6,
        "the needs form a cycle: a -> b -> a",
    ),
    (
        """
        pipelines:
          p:
            steps:
              - step: extract_audio
              - step: transcribe
                needs: [audio]
        """,
        6,
        "needs 'audio', which is not a step of it",
    ),
    (
        """
        pipelines:
          p:
            steps:
              - step: extract_audio
              - step: extract_audio
        """,
        5,
        "duplicate step id 'extract_audio'",
    ),
    (
        """
        pipelines:
          p:
            steps:
              - step: transcribe
        """,
        4,
        "requires extract_audio",
    ),
    ("pipelines:\n  p:\n    steps: [\n", 4, "not valid YAML"),
    ("pipelines:\n  p: {steps: [{step: extract_audio}]}\n  p: {steps: []}\n", 3, "duplicate key"),
    ("pipelines:\n  p:\n    stpes: []\n", 3, "unknown key 'stpes'"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_validation_errors_name_file_line_and_problem(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(pipeline.PipelineFileError) as info:
        graph.load_file(path)
    err = info.value
    assert err.path == str(path) and err.line == line, str(err)
    assert message in err.problem
    assert str(err).startswith(f"{path}:{line}: ")


def test_cli_reports_a_broken_user_file(
    no_user_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(no_user_files / "infomux.yaml", "pipelines:\n  p:\n    steps:\n      - step: nope\n")
    assert main(["pipelines"]) == 1
    err = capsys.readouterr().err
    assert "infomux.yaml:4:" in err and "unknown step 'nope'" in err


def test_option_specs_check_types_and_durations() -> None:
    assert parse_duration("10s") == 10.0
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration(3) == 3.0
    for bad in ("ten", "-1", True, "", "5x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    spec = OptionSpec("mode", "str", "a", choices=("a", "b"))
    assert spec.check("b") == "b"
    with pytest.raises(ValueError, match="not one of a, b"):
        spec.check("c")
    assert OptionSpec("t", "float", minimum=0).check(1) == 1.0
    with pytest.raises(ValueError, match="at least"):
        OptionSpec("n", "int", minimum=1).check(0)
    assert OptionSpec("f", "list").check("txt, srt") == ["txt", "srt"]


def test_resolved_graph_is_recorded_with_defaults_and_flags_win(
    no_user_files: Path, tmp_path: Path
) -> None:
    write(
        no_user_files / "infomux.yaml",
        """
        pipelines:
          mine:
            steps:
              - step: extract_audio
              - step: transcribe
                options: {beam_size: 4, language: de}
        """,
    )
    media = tmp_path / "in.wav"
    media.write_bytes(b"not really audio")
    config = {"language": "fr", "threads": 2, "formats": ["txt"]}
    job, run_dir = pipeline.create_run(media, pipeline="mine", config=config, explicit={"threads"})
    data = json.loads((run_dir / "job.json").read_text())
    jsonschema.validate(data, SCHEMA)
    recorded = data["graph"]
    assert recorded["name"] == "mine" and recorded["source"].endswith("infomux.yaml")
    transcribe = recorded["steps"][1]
    assert transcribe["id"] == "transcribe" and transcribe["needs"] == ["extract_audio"]
    opts = transcribe["options"]
    assert opts["beam_size"] == 4  # the pipeline file's step option
    assert opts["language"] == "de"  # file over a non-explicit run option
    assert opts["threads"] == 2  # an explicit flag over everything
    assert opts["formats"] == ["txt"] and opts["best_of"] == 1  # run option; default
    # resume uses the recorded graph even after the file changed
    write(no_user_files / "infomux.yaml", "pipelines:\n  mine: {steps: [{step: nope}]}\n")
    job = storage.load_job(run_dir)
    plan = pipeline.job_graph(job)
    assert plan.node("transcribe").options["beam_size"] == 4
    todo = pipeline.prepare_resume(job, run_dir, overrides={"beam_size": 2})
    assert [r.name for r in todo] == ["extract_audio", "transcribe"]
    assert pipeline.job_graph(job).node("transcribe").options["beam_size"] == 2


def test_old_job_without_graph_still_loads_and_runs_in_order(tmp_path: Path) -> None:
    media = tmp_path / "in.wav"
    media.write_bytes(b"x")
    _, run_dir = pipeline.create_run(media, pipeline="audio", config={})
    data = json.loads((run_dir / "job.json").read_text())
    del data["graph"]
    jsonschema.validate(data, SCHEMA)
    (run_dir / "job.json").write_text(json.dumps(data))
    old = storage.load_job(run_dir)
    assert old.graph is None
    plan = pipeline.job_graph(old)
    assert plan.steps[0] == "extract_audio" and plan.nodes[0].options == {}
    assert all(n.needs == (plan.steps[i],) for i, n in enumerate(plan.nodes[1:]))


def test_steps_sub_graph_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resolved = pipeline.resolve_run_graph("transcribe", {}, only=["extract_audio"])
    assert resolved.steps == ("extract_audio",)
    with pytest.raises(pipeline.PipelineError, match="has no step 'nope'"):
        pipeline.resolve_run_graph("transcribe", {}, only=["nope"])
    code = main(["run", "--dry-run", "--language", "de", str(tmp_path / "never-read.mp4")])
    out, _ = capsys.readouterr()
    assert code == 0
    assert out.splitlines()[0].startswith("transcribe")
    assert "transcribe" in out and "<- extract_audio" in out and 'language="de"' in out
    assert not (Path(storage.config.runs_dir())).exists()  # nothing was created


def test_register_pipeline_from_python_coexists(no_user_files: Path) -> None:
    pipeline.register_pipeline(
        "py-graph",
        [
            {"step": "extract_audio", "id": "a"},
            {"step": "transcribe", "needs": ["a"], "options": {"beam_size": 3}},
        ],
        "from python",
    )
    try:
        p = pipeline.get_pipeline("py-graph")
        assert p.source == "python" and p.node("transcribe").options == {"beam_size": 3}
        write(
            no_user_files / "infomux.yaml",
            "pipelines:\n  py-graph: {description: file, steps: [{step: extract_audio}]}\n",
        )
        assert pipeline.get_pipeline("py-graph").description == "file"  # the user file wins
    finally:
        pipeline.unregister_pipeline("py-graph")


def test_pipelines_and_steps_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipelines", "--json"]) == 0
    data: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    transcribe = next(p for p in data if p["name"] == "transcribe")
    assert [n["id"] for n in transcribe["graph"]][:2] == ["extract_audio", "transcribe"]
    assert transcribe["graph"][1]["needs"] == ["extract_audio"]
    assert main(["pipelines"]) == 0
    assert "<- extract_audio" in capsys.readouterr().out
    assert main(["steps", "--json"]) == 0
    steps = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    beam = next(o for o in steps["transcribe"]["options"] if o["name"] == "beam_size")
    assert beam["default"] == 1 and beam["type"] == "int"
    assert main(["steps"]) == 0
    assert "beam_size" in capsys.readouterr().out
