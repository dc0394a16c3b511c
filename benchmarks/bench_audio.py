"""Benchmark infomux.audio against the ffmpeg CLI (and faster-whisper, if available).

Usage::

    PYTHONPATH=src python benchmarks/bench_audio.py --media ../shared/media --runs 5
    # faster-whisper from another interpreter (kept out of the project's venv):
    ... --fw-python /path/to/venv-with-faster-whisper/bin/python

For each file and method a worker subprocess does one warm-up decode and ``--runs``
timed decodes (median reported); peak RSS is measured in a fresh subprocess per
method that decodes once (``ru_maxrss``; for the CLI method also the ffmpeg child's).
A 60-minute file is made from long_speech.mp3 with ``ffmpeg -stream_loop -c copy`` in
a temporary directory, and a 10-minute 48 kHz stereo AAC file (to exercise the
resampler) by re-encoding it. Results go to benchmarks/results/audio.{json,md} and
stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SR = 16000

METHODS = ("infomux", "ffmpeg-cli", "faster-whisper")
VARIANTS = (
    "module",  # infomux.audio.decode_audio
    "per-frame-swr",  # one resampler call per codec frame (no FIFO)
    "per-frame-swr-fs0",  # ... and resampler frame_size=0 (output as it comes)
    "per-frame-swr-fs1024",  # ... and resampler frame_size=1024
    "always-swr",  # FIFO-grouped, but no direct path for 16 kHz mono float input
    "to-ndarray",  # frame.to_ndarray() instead of np.frombuffer(frame.planes[0])
    "thread-auto",  # codec_context.thread_type = "AUTO"
    "list-concatenate",  # per-frame arrays collected in a list, np.concatenate at the end
    "decode-only",  # lower bound: demux + decode, no conversion
    "demux-only",  # lower bound: demux only
)


# --------------------------------------------------------------------------- worker side


def _import_infomux() -> Any:
    try:
        from infomux import audio
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))
        from infomux import audio
    return audio


def _ffmpeg_cli(path: str) -> np.ndarray:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path]
    cmd += ["-ar", str(SR), "-ac", "1", "-f", "f32le", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.float32)


def _variant(path: str, name: str) -> np.ndarray:
    """Decoding loops that differ from the module in one knob each (for where time goes)."""
    import av

    if name == "module":
        return _import_infomux().decode_audio(path).samples
    with av.open(path) as container:
        stream = container.streams.audio[0]
        if name == "thread-auto":
            stream.codec_context.thread_type = "AUTO"
        if name == "demux-only":
            for _ in container.demux(stream):
                pass
            return np.zeros(1, np.float32)
        if name == "decode-only":
            for packet in container.demux(stream):
                packet.decode()
            return np.zeros(1, np.float32)
        frame_size = {"per-frame-swr-fs0": None, "per-frame-swr-fs1024": 1024}.get(name, SR)
        resampler = av.AudioResampler(
            format="flt",
            layout="mono",
            rate=SR,
            frame_size=frame_size,
            options={"rematrix_maxval": "1.0"},
        )
        grouped = not name.startswith("per-frame")
        fifo = av.AudioFifo()
        duration = (container.duration or 0) / 1e6
        buf = np.empty(int(duration * SR * 1.01) + SR, np.float32)
        parts: list[np.ndarray] = []
        n = 0
        direct = name != "always-swr" and not name.startswith("per-frame")

        def put(frames: list[Any]) -> None:
            nonlocal n, buf
            for f in frames:
                if name == "to-ndarray":
                    a = f.to_ndarray()[0]
                else:
                    a = np.frombuffer(f.planes[0], np.float32, f.samples)
                if name == "list-concatenate":
                    parts.append(a.copy())
                    continue
                if n + a.shape[0] > buf.shape[0]:
                    buf.resize(max(n + a.shape[0], int(buf.shape[0] * 1.5)), refcheck=False)
                buf[n : n + a.shape[0]] = a
                n += a.shape[0]

        for packet in container.demux(stream):
            for frame in packet.decode():
                if (
                    direct
                    and frame.sample_rate == SR
                    and frame.layout.nb_channels == 1
                    and frame.format.name in ("flt", "fltp")
                ):
                    put([frame])
                elif grouped:
                    frame.pts = None
                    fifo.write(frame)
                    if fifo.samples >= frame.sample_rate:
                        put(resampler.resample(fifo.read()))
                else:
                    put(resampler.resample(frame))
        if fifo.samples:
            put(resampler.resample(fifo.read()))
        put(resampler.resample(None))
        if name == "list-concatenate":
            return np.concatenate(parts)
        return buf[:n].copy()


def _run_once(method: str, path: str) -> np.ndarray:
    if method == "infomux":
        return _import_infomux().decode_audio(path).samples
    if method == "infomux-chunks":  # bounded memory: 30 s chunks, nothing kept
        total = sum(c.shape[0] for c in _import_infomux().iter_audio_chunks(path))
        return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (total,), (0,))
    if method == "ffmpeg-cli":
        return _ffmpeg_cli(path)
    if method == "faster-whisper":
        from faster_whisper.audio import decode_audio

        return decode_audio(path, sampling_rate=SR)
    if method.startswith("variant:"):
        return _variant(path, method.split(":", 1)[1])
    raise SystemExit(f"unknown method {method}")


def _preload(method: str) -> None:
    """Import what the method needs, so that the RSS baseline includes the libraries."""
    if method in ("infomux", "infomux-chunks") or method.startswith("variant:"):
        import av

        _import_infomux()
    elif method == "faster-whisper":
        import av  # noqa: F401
        import faster_whisper.audio  # noqa: F401


def worker(method: str, path: str, runs: int, mode: str) -> dict[str, Any]:
    if mode == "rss":
        _preload(method)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        samples = _run_once(method, path)
        elapsed = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return {
            "seconds": elapsed,
            "samples": int(samples.shape[0]),
            "baseline_rss_mb": base / 1024,
            "peak_rss_mb": peak / 1024,
            "child_peak_rss_mb": child / 1024,
            "buffer_mb": samples.shape[0] * 4 / 2**20,
        }
    # Several methods (comma-separated) are timed interleaved, run by run, so that a
    # change in machine load hits them alike.
    methods = method.split(",")
    sizes: dict[str, int] = {}
    for m in methods:
        _preload(m)
        sizes[m] = int(_run_once(m, path).shape[0])  # warm-up
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(runs):
        for m in methods:
            t0 = time.perf_counter()
            _run_once(m, path)
            times[m].append(time.perf_counter() - t0)
    return {
        m: {"times": t, "median": statistics.median(t), "samples": sizes[m]}
        for m, t in times.items()
    }


# --------------------------------------------------------------------------- driver side


def _spawn(python: str, method: str, path: Path, runs: int, mode: str) -> dict[str, Any] | None:
    cmd = [python, str(Path(__file__).resolve()), "--worker", method, str(path)]
    cmd += ["--runs", str(runs), "--mode", mode]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        print(f"  {method} on {path.name} failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _faster_whisper_python(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else [sys.executable]
    for python in candidates:
        if not python:
            continue
        probe = subprocess.run(
            [python, "-c", "import faster_whisper.audio"], capture_output=True, timeout=120
        )
        if probe.returncode == 0:
            return python
    return None


def _make_hour(src: Path, tmp: Path) -> Path:
    out = tmp / "hour.mp3"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src)]
    cmd += ["-t", "3600", "-c", "copy", str(out)]
    subprocess.run(cmd, check=True)
    return out


def _make_48k_stereo(src: Path, tmp: Path) -> Path:
    out = tmp / "long_speech_48k_stereo.m4a"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src)]
    cmd += ["-ar", "48000", "-ac", "2", "-c:a", "aac", "-b:a", "96k", str(out)]
    subprocess.run(cmd, check=True)
    return out


def _resampler_quality(media: Path, runs: int) -> list[dict[str, Any]]:
    """Default swr vs higher-quality settings: time, and how much the output differs."""
    import av

    settings: dict[str, dict[str, str]] = {
        "default (swr, filter_size 32)": {},
        "swr filter_size=64 phase_shift=14 cutoff=0.98": {
            "filter_size": "64",
            "phase_shift": "14",
            "cutoff": "0.98",
        },
        "soxr precision=28": {"resampler": "soxr", "precision": "28"},
    }
    rows = []
    for name in ("speech_a_44k_stereo.mp3", "speech_a.m4a"):
        with av.open(str(media / name)) as container:
            frames = list(container.decode(audio=0))
        outputs: dict[str, np.ndarray] = {}
        for label, opts in settings.items():
            options = {"rematrix_maxval": "1.0", **opts}
            times = []
            result = None
            try:
                for _ in range(runs + 1):
                    t0 = time.perf_counter()
                    r = av.AudioResampler(
                        format="flt", layout="mono", rate=SR, frame_size=SR, options=options
                    )
                    chunks = [o.to_ndarray()[0].copy() for f in frames for o in r.resample(f)]
                    chunks += [o.to_ndarray()[0].copy() for o in r.resample(None)]
                    result = np.concatenate(chunks)
                    times.append(time.perf_counter() - t0)
            except Exception as exc:  # e.g. soxr not compiled into PyAV's FFmpeg
                rows.append({"file": name, "setting": label, "error": str(exc)})
                continue
            assert result is not None
            outputs[label] = result
            ref = outputs.get("default (swr, filter_size 32)")
            diff_db = None
            if ref is not None and label != "default (swr, filter_size 32)":
                k = min(len(ref), len(result))
                err = float(np.sum((ref[:k].astype(np.float64) - result[:k]) ** 2))
                sig = float(np.sum(ref[:k].astype(np.float64) ** 2))
                diff_db = round(10 * np.log10(err / sig), 1) if err > 0 else None
            rows.append(
                {
                    "file": name,
                    "setting": label,
                    "resample_ms": round(statistics.median(times[1:]) * 1000, 1),
                    "difference_vs_default_db": diff_db,
                }
            )
    return rows


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# infomux.audio benchmark",
        "",
        f"Machine: {result['machine']}; PyAV {result['pyav']} (FFmpeg {result['ffmpeg_lib']}), "
        f"ffmpeg CLI {result['ffmpeg_cli']}; median of {result['runs']} runs after a warm-up.",
        "",
        "## Decode + resample to 16 kHz mono float32 (seconds)",
        "",
        "| file | audio | infomux | ffmpeg CLI pipe | ratio | faster-whisper | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["timings"]:

        def cell(key: str, row: dict[str, Any] = row) -> str:
            value = row.get(key)
            return "–" if value is None else f"{value:.3f}"

        lines.append(
            f"| {row['file']} | {row['audio_seconds']:.0f} s | {cell('infomux')} | "
            f"{cell('ffmpeg-cli')} | {cell('ratio_vs_cli')} | {cell('faster-whisper')} | "
            f"{cell('ratio_vs_faster_whisper')} |"
        )
    lines += [
        "",
        "ratio = infomux / other (≤ 1.0: infomux is at least as fast).",
        "",
        "## Peak memory (one decode in a fresh process, MiB)",
        "",
        "| file | method | seconds | baseline RSS | peak RSS | peak − baseline | "
        "output buffer | ffmpeg child peak |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["memory"]:
        lines.append(
            f"| {row['file']} | {row['method']} | {row['seconds']:.2f} | "
            f"{row['baseline_rss_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
            f"{row['peak_rss_mb'] - row['baseline_rss_mb']:.0f} | {row['buffer_mb']:.0f} | "
            f"{row['child_peak_rss_mb']:.0f} |"
        )
    if result.get("variants"):
        lines += [
            "",
            "## Where the time goes (seconds, median)",
            "",
            "| file | " + " | ".join(VARIANTS) + " |",
            "| --- | " + " | ".join("---:" for _ in VARIANTS) + " |",
        ]
        for file, values in result["variants"].items():
            cells = " | ".join(
                "–" if values.get(v) is None else f"{values[v]:.3f}" for v in VARIANTS
            )
            lines.append(f"| {file} | {cells} |")
    if result.get("resampler_quality"):
        lines += [
            "",
            "## Resampler settings (libswresample through PyAV)",
            "",
            "| file | setting | resample ms | difference vs default (dB) |",
            "| --- | --- | ---: | ---: |",
        ]
        for row in result["resampler_quality"]:
            if "error" in row:
                lines.append(f"| {row['file']} | {row['setting']} | error: {row['error']} | |")
                continue
            diff = row["difference_vs_default_db"]
            lines.append(
                f"| {row['file']} | {row['setting']} | {row['resample_ms']} | "
                f"{'–' if diff is None else diff} |"
            )
    if result.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--fw-python", help="interpreter that can import faster_whisper")
    parser.add_argument("--no-hour", action="store_true", help="skip the 60-minute file")
    parser.add_argument("--no-variants", action="store_true", help="skip the variant timings")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="time", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.runs, args.mode)))
        return 0

    if shutil.which("ffmpeg") is None:
        print("the ffmpeg CLI is required", file=sys.stderr)
        return 2
    import av

    media: Path = args.media.resolve()
    fw_python = _faster_whisper_python(args.fw_python)
    notes = []
    if fw_python is None:
        notes.append("faster-whisper not importable: its column is empty (use --fw-python).")
    else:
        version = subprocess.run(
            [fw_python, "-c", "import faster_whisper; print(faster_whisper.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        notes.append(f"faster-whisper {version} run by {fw_python}.")
    cli_version = subprocess.run(
        ["ffmpeg", "-version"], capture_output=True, text=True
    ).stdout.split("\n")[0]
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": sys.version.split()[0],
        "pyav": av.__version__,
        "ffmpeg_lib": getattr(av, "ffmpeg_version_info", "?"),
        "ffmpeg_cli": cli_version.split(" ")[2] if cli_version else "?",
        "runs": args.runs,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "timings": [],
        "memory": [],
        "variants": {},
        "notes": notes,
    }
    with tempfile.TemporaryDirectory(prefix="bench_audio_") as tmp_name:
        tmp = Path(tmp_name)
        files = [media / "long_speech.mp3", media / "speech_a_video.mp4"]
        print("making a 10-minute 48 kHz stereo AAC file ...", file=sys.stderr)
        files.append(_make_48k_stereo(media / "long_speech.mp3", tmp))
        hour = None
        if not args.no_hour:
            print("making a 60-minute MP3 ...", file=sys.stderr)
            hour = _make_hour(media / "long_speech.mp3", tmp)
            files.append(hour)

        for path in files:
            runs = max(1, min(args.runs, 3)) if path == hour else args.runs
            row: dict[str, Any] = {"file": path.name}
            groups = [(sys.executable, "infomux,ffmpeg-cli")]
            if fw_python is not None:
                groups.append((fw_python, "faster-whisper"))
            for python, methods in groups:
                print(f"timing {methods} on {path.name} ...", file=sys.stderr)
                res = _spawn(python, methods, path, runs, "time")
                for method, r in (res or {}).items():
                    row[method] = r["median"]
                    row[f"{method}_runs"] = r["times"]
                    row["audio_seconds"] = r["samples"] / SR
            if row.get("infomux") and row.get("ffmpeg-cli"):
                row["ratio_vs_cli"] = row["infomux"] / row["ffmpeg-cli"]
            if row.get("infomux") and row.get("faster-whisper"):
                row["ratio_vs_faster_whisper"] = row["infomux"] / row["faster-whisper"]
            result["timings"].append(row)

        for path in [p for p in files if p in (hour, media / "long_speech.mp3")]:
            for method in (*METHODS, "infomux-chunks"):
                python = sys.executable
                if method == "faster-whisper":
                    if fw_python is None:
                        continue
                    python = fw_python
                print(f"peak RSS of {method} on {path.name} ...", file=sys.stderr)
                res = _spawn(python, method, path, 1, "rss")
                if res is not None:
                    result["memory"].append({"file": path.name, "method": method, **res})

        if not args.no_variants:
            for path in (media / "long_speech.mp3", files[2]):
                # all variants in one worker, interleaved run by run (fair under load)
                print(f"variants on {path.name} ...", file=sys.stderr)
                methods = ",".join(f"variant:{v}" for v in VARIANTS)
                res = _spawn(sys.executable, methods, path, args.runs, "time") or {}
                result["variants"][path.name] = {
                    v: res[f"variant:{v}"]["median"] if f"variant:{v}" in res else None
                    for v in VARIANTS
                }

    print("resampler settings ...", file=sys.stderr)
    result["resampler_quality"] = _resampler_quality(media, args.runs)

    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    notes.append(
        f"Load average (1/5/15 min) at start {result['load_average_start']}, "
        f"at end {result['load_average_end']}: on a busy machine the medians are noisy; "
        "infomux and the ffmpeg CLI are timed interleaved, run by run, in one worker."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audio.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    markdown = _markdown(result)
    (args.out / "audio.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
