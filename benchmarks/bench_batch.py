"""Batch throughput (issue 15): files per minute of ``infomux batch`` on 1 and 2 local
workers and on Ray, next to a shell loop of ``infomux run`` over the same files.

Same files, same model (tiny.en, one ggml file given by path to every command), same
threads in total (``--threads-total``, default 2: the loop and one worker get them all,
two workers or two Ray actors one each), default decoding. Every configuration is one
child process timed from outside (``os.wait4``), in a fresh data directory:

``loop``       ``for f in FILES; do infomux run -q --model M --threads T "$f"; done`` (bash):
               one process, one model load, per file
``run-many``   ``infomux run -q --model M --threads T FILES...``: one process, files one
               after the other on one model
``local-1``    ``infomux batch --workers 1 --threads T DIR``
``local-2``    ``infomux batch --workers 2 --threads T/2 DIR``
``ray-2``      ``infomux batch --ray --workers 2 --threads T/2 DIR``: a local Ray instance
               started for the batch and stopped after it (its start-up is in the wall
               time; batch.json's own seconds, without it, are reported beside)

Per configuration: the median wall time of ``--runs`` runs (configurations interleaved,
after one warm-up round unless ``--no-warmup``), files per minute, audio seconds per
second, the ratio to the loop, whether every transcript is the loop's, the CPU other
processes used meanwhile. Results: ``--out`` (``batch.json``, ``batch.md``); children's
output under ``benchmarks/.cache/work/batch``.

Typical use (repository root; infomux importable by ``--infomux-python``; Ray installed
there for ``ray-2``)::

    python benchmarks/bench_batch.py --runs 3 --copies 2 \\
        --infomux-python .venv/bin/python --infomux-pythonpath src
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    CACHE_DIR,
    DEFAULT_MEDIA,
    REPO_DIR,
    cpu_sample,
    enter_autogroup,
    foreign_cpu,
    git_revision,
    machine_info,
    median,
    normalise_text,
    run_child,
    wait_for_quiet,
    word_error_rate,
)

# English speech of ../shared/media, 12-28 s each (8 files, 3.2 min of audio)
DEFAULT_FILES = (
    "speech_a.wav",
    "speech_a.flac",
    "speech_a.m4a",
    "speech_a.ogg",
    "speech_a_44k_stereo.mp3",
    "speech_a_video.mp4",
    "speech_c_8k_mulaw.wav",
    "two_audio_streams.mkv",
)
CONFIGS = ("loop", "run-many", "local-1", "local-2", "ray-2")
WORK = CACHE_DIR / "work" / "batch"


@dataclass
class Setup:
    """What every configuration's command line needs."""

    python: str
    env: dict[str, str]
    model: Path
    folder: Path
    files: list[Path]
    threads: int


def command(config: str, setup: Setup) -> list[str]:
    """The child's argv for ``config``."""
    infomux = [setup.python, "-m", "infomux"]
    model = ["--model", str(setup.model)]
    total, half = setup.threads, max(1, setup.threads // 2)
    if config == "loop":
        run = shlex.join([*infomux, "run", "-q", *model, "--threads", str(total)])
        files = " ".join(shlex.quote(str(f)) for f in setup.files)
        return ["bash", "-c", f'set -e; for f in {files}; do {run} "$f"; done']
    if config == "run-many":
        return [*infomux, "run", "-q", *model, "--threads", str(total), *map(str, setup.files)]
    batch = [*infomux, "batch", *model, str(setup.folder)]
    if config == "local-1":
        return [*batch, "--workers", "1", "--threads", str(total)]
    if config == "local-2":
        return [*batch, "--workers", "2", "--threads", str(half)]
    if config == "ray-2":
        return [*batch, "--ray", "--workers", "2", "--threads", str(half)]
    raise ValueError(f"unknown configuration {config!r}")


def transcripts(data_dir: Path) -> dict[str, str]:
    """Input file name -> transcript.txt of every completed run under ``data_dir``."""
    found = {}
    for job_path in sorted((data_dir / "runs").glob("*/job.json")):
        job = json.loads(job_path.read_text(encoding="utf-8"))
        text = job_path.parent / "transcript.txt"
        if job.get("status") == "completed" and text.is_file():
            found[Path(job["input"]["path"]).name] = text.read_text(encoding="utf-8")
    return found


def batch_facts(data_dir: Path) -> dict[str, Any] | None:
    """The batch's own seconds and engine from batch.json (batch configurations)."""
    paths = list((data_dir / "batches").glob("*/batch.json"))
    if not paths:
        return None
    batch = json.loads(paths[0].read_text(encoding="utf-8"))
    return {"timings": batch.get("timings"), "engine": batch.get("engine")}


def measure(config: str, setup: Setup, run_dir: Path, quiet_wait: float) -> dict[str, Any]:
    """One run of ``config`` in a fresh data directory under ``run_dir``."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    data = run_dir / "data"
    data.mkdir(parents=True)
    waited = wait_for_quiet(quiet_wait, 0.2)
    env = {**setup.env, "INFOMUX_DATA_DIR": str(data)}
    before = cpu_sample()
    child = run_child(command(config, setup), run_dir / "child", env=env, cwd=REPO_DIR)
    after = cpu_sample()
    own_cpu = child.user_s + child.sys_s
    texts = transcripts(data)
    result = {
        "config": config,
        "returncode": child.returncode,
        "wall_s": round(child.wall_s, 3),
        "cpu_s": round(own_cpu, 3),  # what wait4 sees: not Ray's daemons and actors
        "files_done": len(texts),
        "others_cpu": {k: round(v, 2) for k, v in foreign_cpu(before, after, own_cpu).items()},
        "waited_for_quiet_s": round(waited, 1),
        "batch": batch_facts(data),
        "transcripts": texts,
    }
    if child.returncode != 0:
        result["stderr_tail"] = child.stderr()[-1500:]
    return result


def resolve_model(python: str, env: dict[str, str], spec: str) -> Path:
    """The ggml file of ``spec`` in the benchmark's own model cache (converted once)."""
    code = (
        "import sys; from infomux.models import resolve_model; "
        "print(resolve_model(sys.argv[1]).path)"
    )
    data = CACHE_DIR / "infomux-data"
    out = subprocess.run(
        [python, "-c", code, spec],
        env={**env, "INFOMUX_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_DIR,
    ).stdout
    return Path(out.strip().splitlines()[-1])


def _words(texts: dict[str, str]) -> dict[str, str]:
    return {name: normalise_text(text) for name, text in texts.items()}


def summarise(
    rows: dict[str, list[dict[str, Any]]], audio_s: float, files: int, references: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Per configuration: medians, files/min, ratio to the loop, transcript agreement."""
    summary: dict[str, dict[str, Any]] = {}
    loop_texts = rows["loop"][0]["transcripts"] if rows.get("loop") else {}
    for config, runs in rows.items():
        ok = [r for r in runs if r["returncode"] == 0 and r["files_done"] == files]
        if not ok:
            summary[config] = {"failed": True, "runs": len(runs)}
            continue
        wall = median([r["wall_s"] for r in ok])
        entry: dict[str, Any] = {
            "runs": len(ok),
            "wall_s": round(wall, 3),
            "wall_min_s": round(min(r["wall_s"] for r in ok), 3),
            "files_per_minute": round(files / wall * 60, 2),
            "audio_s_per_s": round(audio_s / wall, 2),
            "others_busy_cores": round(max(r["others_cpu"]["busy_cores"] for r in ok), 2),
        }
        batch_seconds = [
            r["batch"]["timings"]["seconds"] for r in ok if r.get("batch") and r["batch"]["timings"]
        ]
        if batch_seconds:
            entry["batch_seconds"] = round(median(batch_seconds), 3)
            entry["files_per_minute_in_batch"] = round(files / median(batch_seconds) * 60, 2)
        texts = ok[0]["transcripts"]
        if loop_texts:  # line breaks follow segment times, which move with the threads
            entry["same_text_as_loop"] = texts == loop_texts
            entry["same_words_as_loop"] = _words(texts) == _words(loop_texts)
        scored = [word_error_rate(references[n], t) for n, t in texts.items() if n in references]
        if scored:
            entry["mean_wer"] = round(sum(scored) / len(scored), 4)
        summary[config] = entry
    if "loop" in summary and not summary["loop"].get("failed"):
        base = summary["loop"]["wall_s"]
        for entry in summary.values():
            if not entry.get("failed"):
                entry["x_loop"] = round(entry["wall_s"] / base, 3)
    return summary


def _same(entry: dict[str, Any]) -> str:
    if "same_words_as_loop" not in entry:
        return ""
    words = "yes" if entry["same_words_as_loop"] else "NO"
    return f"{words} ({'same' if entry['same_text_as_loop'] else 'other line breaks'})"


def markdown(report: dict[str, Any]) -> str:
    """The results table."""
    lines = [
        "# infomux batch: files per minute (issue 15)",
        "",
        f"{report['files']} files, {report['audio_s']:.0f} s of audio "
        f"({', '.join(report['file_names'])}"
        f"{', each x ' + str(report['copies']) if report['copies'] > 1 else ''}), "
        f"model {report['model_name']}, {report['threads_total']} threads in total; "
        f"median of {report['runs']} run(s); {report['machine']['cores']} cores "
        f"({report['machine']['cpu']}); infomux {report['git']}, Ray {report['ray_version']}.",
        "",
        "| configuration | wall s | files/min | audio s/s | x loop | batch s (no start-up) "
        "| same words as loop (text) | WER | others' cores |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for config, entry in report["summary"].items():
        if entry.get("failed"):
            lines.append(f"| `{config}` | failed | | | | | | | |")
            continue
        lines.append(
            f"| `{config}` | {entry['wall_s']:.2f} | {entry['files_per_minute']:.1f} "
            f"| {entry['audio_s_per_s']:.1f} | {entry.get('x_loop', float('nan')):.2f} "
            f"| {entry.get('batch_seconds', '')} "
            f"| {_same(entry)} "
            f"| {entry.get('mean_wer', '')} | {entry['others_busy_cores']} |"
        )
    lines += [
        "",
        "Same words: the transcripts lower-cased without punctuation equal the loop's; the",
        "text itself can break lines elsewhere when a transcription has other threads",
        "(segment times move by a few ms).",
        "",
        "Commands (FILES, DIR: the files above, M: the model's ggml file):",
        "",
    ]
    for config, argv in report["commands"].items():
        lines.append(f"- `{config}`: `{argv}`")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--files", nargs="+", default=list(DEFAULT_FILES))
    parser.add_argument("--copies", type=int, default=1, help="each file this many times")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--threads-total", type=int, default=2)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--infomux-python", default=sys.executable)
    parser.add_argument("--infomux-pythonpath", default=None)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--autogroup-nice", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--name", default="batch")
    args = parser.parse_args(argv)

    if args.autogroup_nice is not None:
        print(f"autogroup: {enter_autogroup(args.autogroup_nice)}", file=sys.stderr)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if args.infomux_pythonpath:
        path = str(Path(args.infomux_pythonpath).resolve())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
    model = resolve_model(args.infomux_python, env, args.model)

    folder = WORK / "media"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files = []
    for name in args.files:
        source = args.media / name
        for copy in range(args.copies):
            dest = folder / (f"{copy:02d}_{name}" if args.copies > 1 else name)
            shutil.copyfile(source, dest)
            files.append(dest)
    setup = Setup(args.infomux_python, env, model, folder, files, args.threads_total)
    references_path = args.media / "references.json"
    raw = json.loads(references_path.read_text(encoding="utf-8"))
    references = {}
    for dest in files:
        ref = raw.get(dest.name.split("_", 1)[1] if args.copies > 1 else dest.name)
        if isinstance(ref, str) and ref:
            references[dest.name] = ref
        elif isinstance(ref, dict):  # several streams: the first is transcribed
            references[dest.name] = next(iter(ref.values()))

    probe = subprocess.run(
        [args.infomux_python, "-c", "import sys, infomux.audio as a; "
         "print(sum(a.decode_audio(p).info.decoded_duration for p in sys.argv[1:]))",
         *map(str, files)],
        env=env, capture_output=True, text=True, check=True, cwd=REPO_DIR,
    )  # fmt: skip
    audio_s = float(probe.stdout.strip().splitlines()[-1])
    ray_version = subprocess.run(
        [args.infomux_python, "-c", "import ray; print(ray.__version__)"],
        env=env, capture_output=True, text=True, check=False,
    ).stdout.strip() or None  # fmt: skip

    shown = Setup("python", {}, Path("M"), Path("DIR"), [Path("FILES...")], args.threads_total)
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in args.configs}
    rounds = args.runs + (0 if args.no_warmup else 1)
    for i in range(rounds):
        warmup = i == 0 and not args.no_warmup
        for config in args.configs:
            result = measure(config, setup, WORK / config / f"run{i}", args.quiet_wait)
            label = "warm-up" if warmup else f"run {i if not args.no_warmup else i + 1}"
            print(
                f"{config:9s} {label}: {result['wall_s']:.2f} s, "
                f"{result['files_done']}/{len(files)} files, exit {result['returncode']}, "
                f"others {result['others_cpu']['busy_cores']:.2f} cores",
                file=sys.stderr,
            )
            if result["returncode"] != 0:
                print(result.get("stderr_tail", ""), file=sys.stderr)
            if not warmup:
                rows[config].append(result)

    summary = summarise(rows, audio_s, len(files), references)
    report = {
        "benchmark": "bench_batch",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": git_revision(),
        "machine": machine_info(),
        "ray_version": ray_version,
        "model_name": args.model,
        "model": str(model),
        "threads_total": args.threads_total,
        "files": len(files),
        "file_names": list(args.files),
        "copies": args.copies,
        "audio_s": round(audio_s, 2),
        "runs": args.runs,
        "warmup": not args.no_warmup,
        "commands": {c: shlex.join(command(c, shown)) for c in args.configs},
        "summary": summary,
        "runs_detail": {
            c: [{k: v for k, v in r.items() if k != "transcripts"} for r in runs]
            for c, runs in rows.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(not e.get("failed") for e in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
