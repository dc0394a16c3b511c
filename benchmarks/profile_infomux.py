"""Where does ``infomux run`` spend its time? A breakdown on one or more files.

For each file:

1. **start-up**: ``python -c pass``, ``python -m infomux --version`` and the import of
   everything ``infomux run`` needs (``-X importtime``: numpy, av, the native engine);
2. **phases, in one process** (this script re-run as a child with infomux's interpreter):
   imports, decode + resample (PyAV), ``audio.wav`` write, input hash, model resolve,
   model load, ``Model.transcribe`` (whisper.cpp's own per-call timings: sample, encode,
   decode, batchd, prompt), writing txt/srt/vtt/json;
3. **end-to-end** ``infomux run -q`` wall time, with the step times from its job.json;
4. **call counts** from ``whisper-cli`` on the same audio, same model and decoding
   (``whisper_print_timings`` prints "N runs"; infomux's engine only exposes per-call
   averages), which turn infomux's averages into totals;
5. **the physical floor**: tiny.en FLOPs per 30 s window (encoder + cross-attention K/V +
   decoder per token) over the machine's peak fp32 FMA throughput, as a real-time factor.

Writes ``profile_infomux.json`` and ``profile_infomux.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BENCH_DIR,
    CACHE_DIR,
    DEFAULT_MEDIA,
    audio_duration,
    cpu_flags,
    cpu_mhz,
    cpu_sample,
    ensure_whisper_cli,
    enter_autogroup,
    foreign_cpu,
    last_json_line,
    machine_info,
    median,
    parse_whisper_cli_timings,
    run_child,
    shell_join,
    wait_for_quiet,
)

T0 = time.perf_counter()

# ---------------------------------------------------------------------------
# the child: every phase of a run, timed in one process


def child(file: str, model: str, threads: int) -> dict[str, Any]:
    """Run infomux's phases one by one (with infomux's interpreter); return their times."""
    import resource

    phases: dict[str, float] = {}
    memory: dict[str, dict[str, float]] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phases[name] = now - t
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * page / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory[name] = {"rss_mb": round(rss, 1), "peak_mb": round(peak, 1)}
        t = time.perf_counter()

    lap("(script start, benchlib imported)")

    import numpy as np

    lap("import numpy")
    import av  # noqa: F401 - timing the import

    lap("import av (PyAV + FFmpeg libs)")
    import infomux.cli
    import infomux.pipeline  # noqa: F401

    lap("import infomux cli/pipeline")
    from infomux import audio, engine, models, writers

    engine._native()
    lap("import infomux audio/engine/models/writers + _whisper")

    decoded = audio.decode_audio(file)
    samples = decoded.samples
    lap("decode + resample (PyAV → float32 16 kHz)")

    tmp = Path(tempfile.mkdtemp(prefix="infomux-profile-"))
    audio.write_wav(tmp / "audio.wav", samples)
    lap("write audio.wav (s16, fsync)")

    import hashlib

    with open(file, "rb") as f:
        hashlib.file_digest(f, "sha256")
    lap("sha256 of the input (create_run)")

    ref = models.resolve_model(model)
    lap("resolve model (validate header, cached sha256)")

    mdl = engine.Model(ref.path)
    lap("model load (whisper_init)")

    options = engine.TranscribeOptions(language="en", n_threads=threads)
    transcript = mdl.transcribe(samples, options)
    lap("Model.transcribe")
    first_timings = dict(transcript.timings)
    second_timings = dict(mdl.transcribe(samples, options).timings)
    lap("(Model.transcribe again, same buffer: no first-call cost)")

    for fmt, writer in writers.WRITERS.items():
        (tmp / f"transcript.{fmt}").write_text(writer(transcript))
    lap("write txt/srt/vtt/json")
    second = phases.pop("(Model.transcribe again, same buffer: no first-call cost)")
    mdl.close()

    n_tokens = sum(len(s.tokens) for s in transcript.segments)
    n_text_tokens = sum(
        1 for s in transcript.segments for tok in s.tokens if not tok.text.startswith("[_")
    )
    header = mdl.header
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    return {
        "phases": phases,
        "memory": memory,
        "audio_s": samples.size / audio.SAMPLE_RATE,
        "samples_mb": samples.nbytes / 2**20,
        "samples_dtype": str(samples.dtype),
        "samples_contiguous": bool(samples.flags.c_contiguous),
        "engine_timings": first_timings,
        "engine_timings_second_call": second_timings,
        "transcribe_second_call_s": second,
        "segments": len(transcript.segments),
        "tokens": n_tokens,
        "text_tokens": n_text_tokens,
        "text": transcript.text,
        "model": str(ref.path),
        "header": header.to_dict(),
        "numpy": np.__version__,
    }


# ---------------------------------------------------------------------------
# FLOPs


def tiny_flops(h: dict[str, int], tokens_per_window: float, prompt_per_window: float) -> dict:
    """FLOPs (multiply-add = 2) of one 30 s window of a Whisper model with header ``h``."""
    d, ctx, n_mels = h["n_audio_state"], h["n_audio_ctx"], h["n_mels"]
    layers, t_layers, vocab = h["n_audio_layer"], h["n_text_layer"], h["n_vocab"]
    dt = h["n_text_state"]
    conv1 = 2 * (2 * ctx) * d * n_mels * 3  # 3000 frames, kernel 3
    conv2 = 2 * ctx * d * d * 3  # stride 2 → 1500 frames
    attn_proj = 4 * 2 * ctx * d * d  # q, k, v, out
    attn = 2 * (2 * ctx * ctx * d)  # QK^T and AV
    mlp = 2 * 2 * ctx * d * (4 * d)
    encoder = conv1 + conv2 + layers * (attn_proj + attn + mlp)
    cross_kv = t_layers * 2 * 2 * ctx * d * dt  # cross-attention K and V, once per window
    avg_len = prompt_per_window + tokens_per_window / 2
    per_token = (
        t_layers
        * (
            4 * 2 * dt * dt  # self-attn q, k, v, out
            + 2 * 2 * avg_len * dt  # self-attn over the cache
            + 2 * 2 * dt * dt  # cross-attn q, out
            + 2 * 2 * ctx * dt  # cross-attn over 1500 frames
            + 2 * 2 * dt * 4 * dt  # MLP
        )
        + 2 * dt * vocab  # logits
    )
    logits = 2 * dt * vocab
    # prompt tokens go through the decoder in one batch; only the last one needs logits
    decoder = per_token * tokens_per_window + (per_token - logits) * prompt_per_window
    return {
        "encoder": encoder,
        "encoder_detail": {
            "conv": conv1 + conv2,
            "attention_projections": layers * attn_proj,
            "attention_1500x1500": layers * attn,
            "mlp": layers * mlp,
        },
        "cross_kv": cross_kv,
        "decoder_per_token": per_token,
        "decoder": decoder,
        "total": encoder + cross_kv + decoder,
    }


def peak_flops() -> dict[str, Any]:
    """Peak fp32 FLOP/s: cores × 2 FMA units × 8 lanes (AVX2) × 2 × clock."""
    flags = cpu_flags()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma = 2 if "fma" in flags else 1
    mhz = cpu_mhz() or 0.0
    cores = os.cpu_count() or 1
    per_cycle = cores * 2 * lanes * fma  # 2 FMA pipes per core (Zen 2/3/4)
    return {
        "cores": cores,
        "clock_ghz": mhz / 1000,
        "flop_per_cycle": per_cycle,
        "peak_gflops": per_cycle * mhz / 1000,
        "formula": f"{cores} cores × 2 FMA units × {lanes} fp32 lanes × {fma} (FMA) × "
        f"{mhz / 1000:.2f} GHz",
    }


# ---------------------------------------------------------------------------
# the parent


def startup(python: str, env: dict[str, str], work: Path, runs: int) -> dict[str, Any]:
    """Interpreter start-up and import costs of the infomux CLI."""
    out: dict[str, Any] = {}
    cases = {
        "python -c pass": [python, "-c", "pass"],
        "python -m infomux --version": [python, "-m", "infomux", "--version"],
        "python -c 'import infomux.cli' + run's imports": [
            python,
            "-c",
            "import infomux.cli, infomux.pipeline, infomux.audio, infomux.engine, "
            "infomux.models, infomux.writers; infomux.engine._native()",
        ],
    }
    for name, argv in cases.items():
        walls = []
        for i in range(runs + 1):
            res = run_child(argv, work / f"startup-{len(out)}-{i}", env=env).check()
            if i:
                walls.append(res.wall_s)
        out[name] = {"wall_s": median(walls), "argv": shell_join(argv)}
    res = run_child(
        [
            python,
            "-X",
            "importtime",
            "-c",
            "import infomux.cli, infomux.pipeline, infomux.audio, infomux.engine, "
            "infomux.models, infomux.writers; infomux.engine._native()",
        ],
        work / "importtime",
        env=env,
    ).check()
    top = []
    for line in res.stderr().splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # top-level and first nested level
            top.append((int(m.group(2)) / 1e6, m.group(4)))
    top.sort(reverse=True)
    out["largest imports (cumulative s)"] = [
        {"module": name, "s": round(s, 4)} for s, name in top[:10]
    ]
    return out


def e2e(python: str, env: dict[str, str], file: Path, model: str, threads: int, work: Path) -> dict:
    """``infomux run -q`` on ``file``: wall, peak RSS and the step times of its job.json."""
    argv = [python, "-m", "infomux", "run", "-q", "--model", model, "--language", "en"]
    argv += ["--threads", str(threads), str(file)]
    res = run_child(argv, work / "e2e", env=env).check()
    run_dir = Path(res.stdout().strip().splitlines()[-1])
    job = json.loads((run_dir / "job.json").read_text())
    steps = {
        s["name"]: {"duration_s": s.get("duration_seconds"), **s.get("metadata", {})}
        for s in job["steps"]
    }
    for p in sorted(run_dir.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    run_dir.rmdir()
    return {"wall_s": res.wall_s, "maxrss_mb": res.maxrss_mb, "steps": steps}


def whisper_cli_counts(cli: Path, file: Path, model: str, threads: int, work: Path) -> dict:
    """whisper.cpp's own timings (with call counts) from whisper-cli on the same audio."""
    wav = work / "audio.wav"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(file), "-vn"),
            *("-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(wav)),
        ],
        check=True,
    )
    argv = [str(cli), "-m", model, "-f", str(wav), "-t", str(threads), "-l", "en"]
    argv += ["-bs", "1", "-bo", "1", "-otxt", "-of", str(work / "whisper-cli")]
    res = run_child(argv, work / "whisper-cli", env={}).check()
    wav.unlink()
    return {
        "wall_s": res.wall_s,
        "timings": parse_whisper_cli_timings(res.stderr()),
        "text": (work / "whisper-cli.txt").read_text(),
    }


def profile_file(
    args: argparse.Namespace, file: Path, env: dict[str, str], warmup: bool
) -> dict[str, Any]:
    """Everything for one file (after an untimed warm-up run if ``warmup``)."""
    work = CACHE_DIR / "profile" / file.name
    work.mkdir(parents=True, exist_ok=True)
    wait_for_quiet(args.quiet_wait, 0.2)
    children = []
    first = 0 if warmup else 1
    for i in range(first, args.runs + 1):  # run 0 is the warm-up
        argv = [args.infomux_python, __file__, "--child", str(file), "--model", args.model]
        argv += ["--threads", str(args.threads)]
        wait_for_quiet(args.quiet_wait, 0.2)
        before = cpu_sample()
        res = run_child(argv, work / f"child-{i}", env=env).check()
        data = last_json_line(res.stdout())
        data["process_wall_s"] = res.wall_s
        data["maxrss_mb"] = res.maxrss_mb
        data["others"] = foreign_cpu(before, cpu_sample(), res.user_s + res.sys_s)
        if i:
            children.append(data)
    # the run with the median transcribe time
    children.sort(key=lambda d: d["phases"]["Model.transcribe"])
    phased = children[len(children) // 2]
    wait_for_quiet(args.quiet_wait, 0.2)
    end_to_end = e2e(args.infomux_python, env, file, args.model, args.threads, work)
    counts = None
    if args.whisper_cli:
        counts = whisper_cli_counts(args.whisper_cli, file, phased["model"], args.threads, work)
    return {
        "file": str(file),
        "audio_s": phased["audio_s"],
        "phases_runs": [d["phases"] for d in children],
        "phased": phased,
        "e2e": end_to_end,
        "whisper_cli": counts,
    }


def breakdown(p: dict[str, Any], peak: dict[str, Any]) -> dict[str, Any]:
    """Derived numbers: totals per whisper.cpp stage, FLOPs, the floor."""
    ph = p["phased"]
    et = ph["engine_timings"]
    counts = (p.get("whisper_cli") or {}).get("timings", {})
    runs = {k: v.get("runs", 0) for k, v in counts.items()}
    n_windows = int(runs.get("encode") or max(1, round(p["audio_s"] / 30 + 0.49)))
    stages = {}
    for key, name in (
        ("sample_ms", "sample"),
        ("encode_ms", "encode"),
        ("decode_ms", "decode"),
        ("batchd_ms", "batchd"),
        ("prompt_ms", "prompt"),
    ):
        n = runs.get(name)
        stages[name] = {
            "per_call_ms": et.get(key),
            "calls (whisper-cli)": n,
            "total_s": (et.get(key, 0.0) * n / 1000) if n else None,
        }
    transcribe_s = ph["phases"]["Model.transcribe"]
    accounted = sum(s["total_s"] or 0.0 for s in stages.values())
    tokens_per_window = ph["tokens"] / n_windows
    # whisper.cpp counts prompt *tokens* (batches of >= 16 go to "prompt"): the previous
    # window's text fed to the decoder again at the start of each window
    prompt_tokens = runs.get("prompt") or 0
    flops = tiny_flops(ph["header"], tokens_per_window, prompt_tokens / n_windows)
    total_flops = flops["total"] * n_windows
    floor_s = total_flops / (peak["peak_gflops"] * 1e9) if peak["peak_gflops"] else None
    encode_total = stages["encode"]["total_s"]
    return {
        "n_windows": n_windows,
        "tokens": ph["tokens"],
        "tokens_per_window": tokens_per_window,
        "prompt_tokens": prompt_tokens,
        "stages": stages,
        "transcribe_s": transcribe_s,
        "unaccounted_in_transcribe_s (mel, language, glue)": transcribe_s - accounted,
        "flops_per_window": flops,
        "flops_total": total_flops,
        "floor_s": floor_s,
        "floor_rtf": floor_s / p["audio_s"] if floor_s else None,
        "measured_rtf (transcribe)": transcribe_s / p["audio_s"],
        "encoder_gflops_achieved": (
            (flops["encoder"] + flops["cross_kv"]) * n_windows / encode_total / 1e9
            if encode_total
            else None
        ),
    }


def markdown(report: dict[str, Any]) -> str:
    """The profile as Markdown."""
    m = report["machine"]
    peak = report["peak"]
    lines = [
        "# Where `infomux run` spends its time",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd'])}); "
        f"peak {peak['peak_gflops']:.0f} GFLOP/s fp32 = {peak['formula']}.",
        f"Model: `{report['model']}`, {report['threads']} threads, greedy, English. "
        f"Median of {report['runs']} runs (after a warm-up).",
        "",
        "## Start-up",
        "",
        "| what | wall s |",
        "|---|---:|",
    ]
    for name, v in report["startup"].items():
        if isinstance(v, dict):
            lines.append(f"| `{name}` | {v['wall_s']:.3f} |")
    lines.append("")
    lines.append(
        "Largest imports (cumulative, `-X importtime`): "
        + ", ".join(
            f"{d['module']} {d['s']:.3f} s"
            for d in report["startup"]["largest imports (cumulative s)"]
        )
    )
    for p in report["files"]:
        ph = p["phased"]
        b = p["breakdown"]
        lines += [
            "",
            f"## {Path(p['file']).name} ({p['audio_s']:.1f} s of audio)",
            "",
            "| phase (one process, median run) | s | share | RSS after, MB | peak RSS, MB |",
            "|---|---:|---:|---:|---:|",
        ]
        total = sum(ph["phases"].values())
        for name, s in ph["phases"].items():
            mem = ph.get("memory", {}).get(name, {})
            lines.append(
                f"| {name} | {s:.3f} | {100 * s / total:.1f} % | {mem.get('rss_mb', 0):.0f} | "
                f"{mem.get('peak_mb', 0):.0f} |"
            )
        lines.append(f"| **sum** (+ interpreter start-up, see above) | {total:.3f} | | | |")
        lines += [
            "",
            "A second `Model.transcribe` of the same buffer on the same `Model` takes "
            f"{ph['transcribe_second_call_s']:.2f} s (first call "
            f"{ph['phases']['Model.transcribe']:.2f} s). This is not a warm-up: whisper.cpp "
            "keeps the previous call's text in its state as the decoder prompt "
            "(`prompt_past`, cleared only with `no_context`), so the second call decodes "
            "differently (with `no_context=True` both calls take the same time).",
        ]
        e = p["e2e"]
        steps = e["steps"]
        ea, tr = steps.get("extract_audio", {}), steps.get("transcribe", {})
        step_sum = (ea.get("duration_s") or 0) + (tr.get("duration_s") or 0)
        lines += [
            "",
            f"`infomux run -q` end to end: **{e['wall_s']:.2f} s**, "
            f"peak RSS {e['maxrss_mb']:.0f} MB; "
            f"steps: extract_audio {ea.get('duration_s', 0):.2f} s (decode "
            f"{ea.get('decode_seconds', 0):.2f}, wav {ea.get('write_seconds', 0):.3f}), "
            f"transcribe {tr.get('duration_s', 0):.2f} s (load "
            f"{tr.get('model_load_seconds', 0):.2f}, inference "
            f"{tr.get('inference_seconds', 0):.2f}); outside the steps (start-up, imports, run "
            f"set-up, job.json): {e['wall_s'] - step_sum:.2f} s.",
            "",
            "| whisper.cpp stage | per call ms (infomux) | calls (whisper-cli, same audio) "
            "| total s |",
            "|---|---:|---:|---:|",
        ]
        for name, st in b["stages"].items():
            total_s = st["total_s"]
            lines.append(
                f"| {name} | {st['per_call_ms'] or 0:.2f} | {st['calls (whisper-cli)'] or '–'} | "
                f"{'–' if total_s is None else f'{total_s:.2f}'} |"
            )
        lines.append(
            f"| rest of `Model.transcribe` (mel, glue) | | | "
            f"{b['unaccounted_in_transcribe_s (mel, language, glue)']:.2f} |"
        )
        wc = (p.get("whisper_cli") or {}).get("timings", {})
        if "mel" in wc:
            lines.append(
                f"| (whisper-cli's mel time, for reference) | | | {wc['mel']['ms'] / 1000:.2f} |"
            )
        f = b["flops_per_window"]
        lines += [
            "",
            f"Physical floor: {b['n_windows']} windows × {f['total'] / 1e9:.1f} GFLOP "
            f"(encoder {f['encoder'] / 1e9:.1f}: conv {f['encoder_detail']['conv'] / 1e9:.1f}, "
            f"projections {f['encoder_detail']['attention_projections'] / 1e9:.1f}, "
            f"1500×1500 attention {f['encoder_detail']['attention_1500x1500'] / 1e9:.1f}, "
            f"MLP {f['encoder_detail']['mlp'] / 1e9:.1f}; cross-attention K/V "
            f"{f['cross_kv'] / 1e9:.1f}; decoder ({b['tokens_per_window']:.0f} tokens + "
            f"{b['prompt_tokens'] / b['n_windows']:.0f} prompt tokens without logits) × "
            f"{f['decoder_per_token'] / 1e6:.0f} MFLOP = {f['decoder'] / 1e9:.1f}) = "
            f"{b['flops_total'] / 1e9:.0f} GFLOP → **{b['floor_s']:.2f} s, RTF floor "
            f"{b['floor_rtf']:.4f}** vs measured RTF {b['measured_rtf (transcribe)']:.4f} "
            f"(encoder reaches {b['encoder_gflops_achieved'] or 0:.0f} GFLOP/s of "
            f"{peak['peak_gflops']:.0f}).",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Profile infomux on the given files."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help="model spec or ggml path (default: tiny.en)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--files",
        nargs="+",
        type=Path,
        default=[DEFAULT_MEDIA / "speech_a_video.mp4", DEFAULT_MEDIA / "long_speech.mp3"],
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--infomux-python", default=sys.executable)
    p.add_argument("--infomux-pythonpath", type=Path, default=None)
    p.add_argument("--data-dir", type=Path, default=CACHE_DIR / "infomux-data")
    p.add_argument("--whisper-cli", type=Path, default=None)
    p.add_argument("--no-whisper-cli", action="store_true", help="no call counts")
    p.add_argument("--quiet-wait", type=float, default=None)
    p.add_argument("--autogroup-nice", type=int, default=None, metavar="N")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--from-json", type=Path, help="re-derive and re-render a saved profile")
    args = p.parse_args(argv)
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        for prof in report["files"]:
            prof["breakdown"] = breakdown(prof, report["peak"])
        (args.out / "profile_infomux.json").write_text(json.dumps(report, indent=2) + "\n")
        md = markdown(report)
        (args.out / "profile_infomux.md").write_text(md)
        print(md)
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.model, args.threads), default=str))
        return 0
    autogroup = enter_autogroup(args.autogroup_nice) if args.autogroup_nice is not None else None
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if autogroup else 120.0

    env = {
        "INFOMUX_DATA_DIR": str(args.data_dir.resolve()),
        "INFOMUX_CONFIG": str((args.data_dir / "no-config.toml").resolve()),
    }
    if args.infomux_pythonpath:
        env["PYTHONPATH"] = str(args.infomux_pythonpath.resolve())
    if args.model is None:
        out = subprocess.run(
            [
                args.infomux_python,
                "-c",
                "from infomux.models import resolve_model; print(resolve_model(None).path)",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, **env),
        ).stdout
        args.model = out.strip().splitlines()[-1]
    if not args.no_whisper_cli and args.whisper_cli is None:
        args.whisper_cli = ensure_whisper_cli(CACHE_DIR / "whisper-cli-build")
    peak = peak_flops()
    work = CACHE_DIR / "profile"
    report: dict[str, Any] = {
        "command": shell_join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "peak": peak,
        "model": args.model,
        "threads": args.threads,
        "runs": args.runs,
        "autogroup": autogroup,
        "startup": startup(args.infomux_python, env, work, args.runs),
        "files": [],
    }
    for file in args.files:
        print(f"profiling {file} ({audio_duration(file):.0f} s) ...", file=sys.stderr)
        prof = profile_file(args, file, env, warmup=file == args.files[0])
        prof["breakdown"] = breakdown(prof, peak)
        report["files"].append(prof)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile_infomux.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = markdown(report)
    (args.out / "profile_infomux.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
