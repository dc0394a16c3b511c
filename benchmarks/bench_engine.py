"""The engine levers of the engine-speed issue, each measured against its own absence.

In one process, on one loaded model (the library call, so start-up and decoding do not
blur the numbers), variants interleaved run by run:

* ``logits``: patch 0001 on (only the rows that are read are projected onto the
  vocabulary) vs off (``_whisper.set_all_logits(True)``: what whisper.cpp 1.8.5 does);
  same text asserted;
* ``streams``: one recording in one pass on N threads vs cut at silences into K parts
  on N/K threads each (``TranscribeOptions.streams``), with WER for both;
* ``pair``: two different clips transcribed side by side on one thread each (two
  whisper_states on one model) vs the same two one after the other on two threads;
* ``state``: the memory of one more whisper_state (RSS before and after a call that
  needs one), which is the "K x one state's size" of the memory bar;
* ``mel``: patch 0013 on (the spectrogram's DFT and mel sums side by side) vs off
  (``_whisper.set_reference_mel(True)``: whisper.cpp's loops); same text asserted;
* ``encoder``: the encoder's matrices in f16 vs bf16 (patch 0012), and the WER of both
  on the short English media;
* ``batch``: the recording cut into K parts (``--batch-streams``, default 2 and 4) on
  one model, each part's decoder calls on its own state and threads, vs computed
  together in one graph per step (``batch_decoder``, patch 0011): wall time, decoder
  milliseconds per call (waiting included), the calls that were shared, WER, and
  whether the text is the same;
* ``resume``: a pipeline run interrupted two thirds of the way through its
  transcription, then resumed (it goes on from its last segment), against a whole run:
  the time of the resume's transcribe step over the whole run's.

GGML_LLAMAFILE is a build option: its effect shows in ``bench_backends.py`` (whisper-cli
is built stock, without it) and in the profile. Writes ``bench_engine.json`` and
``bench_engine.md`` (``--stem``) to ``--out``.

    PYTHONPATH=src python benchmarks/bench_engine.py --runs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from benchlib import BENCH_DIR, DEFAULT_MEDIA, enter_autogroup, machine_info, word_error_rate


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> int:
    """Run the measurements and write the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    p.add_argument("--file", default="long_speech.mp3")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-streams", type=int, nargs="*", default=[2, 4])
    p.add_argument("--only", nargs="*", default=["logits", "streams", "pair", "state", "resume"])
    p.add_argument("--stem", default="bench_engine", help="name of the result files")
    p.add_argument("--autogroup-nice", type=int, default=None)
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args()
    if args.autogroup_nice is not None:
        enter_autogroup(args.autogroup_nice)

    from infomux import audio, engine
    from infomux.engine import Model, TranscribeOptions
    from infomux.models import resolve_model

    native = engine._native()
    refs = json.loads((args.media / "references.json").read_text())
    samples = audio.load_audio(args.media / args.file)
    reference = refs.get(args.file, "")
    ref = resolve_model("tiny.en")
    base = TranscribeOptions(n_threads=args.threads, language="en")
    results: dict[str, Any] = {
        "machine": machine_info(),
        "build": engine.build_info(),
        "file": args.file,
        "audio_s": samples.size / 16000,
        "threads": args.threads,
        "runs": args.runs,
    }
    rss_start = _rss_mb()
    model = Model(ref.path)
    results["rss_after_load_mb"] = round(_rss_mb(), 1)
    results["rss_before_load_mb"] = round(rss_start, 1)

    if "logits" in args.only:
        results["logits"] = _switch_lever(
            args.runs,
            model,
            samples,
            base,
            native.set_all_logits,
            ("patched", "all_rows"),
            "prompt_total_ms",
            "prompt_s",
        )
        print("logits", results["logits"], flush=True)

    if "mel" in args.only:
        options = dataclasses.replace(base, streams=args.streams)
        results["mel"] = {
            "streams": args.streams,
            **_switch_lever(
                args.runs,
                model,
                samples,
                options,
                native.set_reference_mel,
                ("side_by_side", "reference"),
                "mel_total_ms",
                "mel_cpu_s",
            ),
        }
        print("mel", results["mel"], flush=True)

    if "streams" in args.only:
        variants = {1: base, args.streams: dataclasses.replace(base, streams=args.streams)}
        times: dict[str, list[float]] = {str(k): [] for k in variants}
        wer: dict[str, float] = {}
        cuts: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for k, options in variants.items():
                wall, t = _timed(lambda options=options: model.transcribe(samples, options))
                times[str(k)].append(wall)
                wer[str(k)] = round(word_error_rate(reference, t.text), 4) if reference else -1
                cuts[str(k)] = list(t.cuts)
        results["streams"] = {
            "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
            "wer": wer,
            "cuts": cuts,
        }
        print("streams", results["streams"], flush=True)

    if "pair" in args.only:
        half = samples.size // 2
        clips = [samples[: min(half, 120 * 16000)], samples[half : half + 120 * 16000]]
        one = dataclasses.replace(base, n_threads=1)

        def side_by_side() -> None:
            threads = [threading.Thread(target=model.transcribe, args=(c, one)) for c in clips]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

        def in_a_row() -> None:
            for c in clips:
                model.transcribe(c, base)

        times = {"side_by_side_1t": [], "in_a_row_2t": []}
        for _ in range(args.runs):
            times["side_by_side_1t"].append(_timed(side_by_side)[0])
            times["in_a_row_2t"].append(_timed(in_a_row)[0])
        results["pair"] = {
            "clips_s": [round(c.size / 16000, 1) for c in clips],
            "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        }
        print("pair", results["pair"], flush=True)

    if "state" in args.only:
        fresh = Model(ref.path)
        clip = samples[: 20 * 16000]
        fresh.transcribe(clip, dataclasses.replace(base, n_threads=1))
        before = _rss_mb()
        hold = threading.Barrier(2, timeout=120)

        def waiter() -> Any:
            first = [True]

            def wait_once(_: int) -> None:
                if first[0]:  # both calls are inside the model before either finishes
                    first[0] = False
                    hold.wait()

            return wait_once

        one_thread = dataclasses.replace(base, n_threads=1)
        th = threading.Thread(
            target=fresh.transcribe, args=(clip, one_thread), kwargs={"on_progress": waiter()}
        )
        th.start()
        fresh.transcribe(clip, one_thread, on_progress=waiter())
        th.join()
        results["state"] = {
            "states": fresh.n_states,
            "rss_one_state_mb": round(before, 1),
            "rss_two_states_mb": round(_rss_mb(), 1),
            "one_state_mb": round(_rss_mb() - before, 1),
        }
        fresh.close()
        print("state", results["state"], flush=True)

    if "batch" in args.only:
        results["batch"] = _batch(args, model, samples, reference, base)

    if "encoder" in args.only:
        results["encoder"] = _encoder_bf16(args, ref, samples, refs, base)

    if "resume" in args.only:
        results["resume"] = _resume(args, ref)
        print("resume", results["resume"], flush=True)

    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{args.stem}.md").write_text(_markdown(results))
    print(f"wrote {args.out / (args.stem + '.md')}")
    return 0


def _switch_lever(
    runs: int,
    model: Any,
    samples: Any,
    options: Any,
    switch: Any,
    names: tuple[str, str],
    timing: str,
    timing_name: str,
) -> dict[str, Any]:
    """A patch against its absence through its native switch (off: ``names[0]``, the
    patch; on: ``names[1]``, whisper.cpp's own code), runs alternating: median wall
    seconds, median of one whisper.cpp timing (ms, reported in s), same text or not."""
    out: dict[str, list[tuple[float, Any]]] = {name: [] for name in names}
    for _ in range(runs):
        for name in names:
            switch(name == names[1])
            try:
                out[name].append(_timed(lambda: model.transcribe(samples, options)))
            finally:
                switch(False)

    def median(values: Any) -> float:
        return round(statistics.median(values), 3)

    return {
        "median_s": {k: median(wall for wall, _ in v) for k, v in out.items()},
        timing_name: {
            k: median(t.timings.get(timing, 0.0) / 1000 for _, t in v) for k, v in out.items()
        },
        "same_text": out[names[0]][-1][1].text == out[names[1]][-1][1].text,
    }


def _batch(
    args: argparse.Namespace, model: Any, samples: Any, reference: str, base: Any
) -> dict[str, Any]:
    """K parts on K states vs the same K parts' decoder calls in one graph (patch 0011)."""
    out: dict[str, Any] = {}
    for k in args.batch_streams:
        variants = {
            "states": dataclasses.replace(base, streams=k),
            "one_graph": dataclasses.replace(base, streams=k, batch_decoder=True),
        }
        times: dict[str, list[float]] = {v: [] for v in variants}
        facts: dict[str, dict[str, Any]] = {}
        texts: dict[str, str] = {}
        for _ in range(args.runs):
            for name, options in variants.items():
                wall, t = _timed(lambda options=options: model.transcribe(samples, options))
                times[name].append(wall)
                calls = t.timings.get("decode_calls", 0) or 1
                facts[name] = {
                    "decode_ms_per_call": round(t.timings.get("decode_total_ms", 0.0) / calls, 2),
                    "decode_calls": t.timings.get("decode_calls", 0),
                    "shared_decode_calls": t.timings.get("shared_decode_calls", 0),
                    "threads_per_stream": t.threads_per_stream,
                    "wer": round(word_error_rate(reference, t.text), 4) if reference else -1,
                }
                texts[name] = t.text
        out[str(k)] = {
            "median_s": {v: round(statistics.median(x), 3) for v, x in times.items()},
            "facts": facts,
            "same_text": texts["states"] == texts["one_graph"],
        }
        print("batch", k, out[str(k)], flush=True)
    return out


# English media with a reference text, for the WER of the encoder's matrix type
SHORT_MEDIA = (
    "speech_a.wav",
    "speech_a_44k_stereo.mp3",
    "speech_a.m4a",
    "speech_a.ogg",
    "speech_a.flac",
    "speech_a_video.mp4",
    "speech_c_8k_mulaw.wav",
)


def _encoder_bf16(
    args: argparse.Namespace, ref: Any, samples: Any, refs: dict[str, str], base: Any
) -> dict[str, Any]:
    """The encoder's matrices in f16 (the file's) vs bf16 (patch 0012), same run."""
    from infomux import audio
    from infomux.engine import Model

    models = {bf16: Model(ref.path, encoder_bf16=bf16 == "bf16") for bf16 in ("f16", "bf16")}
    options = dataclasses.replace(base, streams=args.streams)
    times: dict[str, list[float]] = {k: [] for k in models}
    facts: dict[str, dict[str, Any]] = {}
    for _ in range(args.runs):
        for name, model in models.items():
            wall, t = _timed(lambda model=model: model.transcribe(samples, options))
            times[name].append(wall)
            facts[name] = {
                "encode_ms_per_window": round(t.timings.get("encode_ms", 0.0), 1),
                "windows": t.timings.get("encode_calls", 0),
                "decode_ms_per_call": round(t.timings.get("decode_ms", 0.0), 2),
                "wer": round(word_error_rate(refs.get(args.file, ""), t.text), 4),
            }
    short: dict[str, dict[str, Any]] = {}
    for file in SHORT_MEDIA:
        clip = audio.load_audio(args.media / file)
        texts = {k: m.transcribe(clip, base).text for k, m in models.items()}
        short[file] = {k: round(word_error_rate(refs[file], v), 4) for k, v in texts.items()}
        short[file]["same_text"] = texts["f16"] == texts["bf16"]
    for m in models.values():
        m.close()
    out = {
        "streams": args.streams,
        "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "facts": facts,
        "short_media_wer": short,
    }
    print("encoder", out, flush=True)
    return out


def _resume(args: argparse.Namespace, ref: Any) -> dict[str, Any]:
    """Whole run vs the resume of one interrupted at two thirds (transcribe step times)."""
    import os
    import tempfile

    from infomux import pipeline, storage
    from infomux.errors import TranscriptionCancelled

    config = {
        "model": str(ref.path),
        "language": "en",
        "threads": args.threads,
        "formats": ["txt"],
        "streams": 1,
    }
    path = args.media / args.file
    whole, resumed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INFOMUX_DATA_DIR"] = tmp
        resources: dict[str, Any] = {}
        for _ in range(args.runs):
            job, run_dir = pipeline.create_run(path, config=config)
            pipeline.execute(job, run_dir, resources=resources)
            whole.append(storage.load_job(run_dir).steps[1].duration_seconds or 0.0)

            job, run_dir = pipeline.create_run(path, config=config)
            cancel = threading.Event()

            def stop_at_two_thirds(step: str, pct: int, cancel: Any = cancel) -> None:
                if step == "transcribe" and pct >= 67:
                    cancel.set()

            with contextlib.suppress(TranscriptionCancelled):
                pipeline.execute(
                    job, run_dir, resources=resources, on_progress=stop_at_two_thirds, cancel=cancel
                )
            job = storage.load_job(run_dir)
            pipeline.prepare_resume(job, run_dir)
            pipeline.execute(job, run_dir, resources=resources)
            resumed.append(storage.load_job(run_dir).steps[1].duration_seconds or 0.0)
        pipeline.close_resources(resources)
    w, r = statistics.median(whole), statistics.median(resumed)
    return {"whole_s": round(w, 3), "resume_s": round(r, 3), "ratio": round(r / w, 3)}


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Engine levers on {r['file']} ({r['audio_s']:.0f} s), {r['threads']} threads, "
        f"median of {r['runs']}",
        "",
        f"Machine: {r['machine'].get('cpu')}; build: patches {r['build']['patches']}, "
        f"llamafile {r['build']['llamafile']}",
        "",
    ]
    if "logits" in r:
        m, pr = r["logits"]["median_s"], r["logits"]["prompt_s"]
        lines.append(
            f"- logits only for read rows (patch 0001): {m['patched']:.2f} s vs "
            f"{m['all_rows']:.2f} s unpatched (x{m['patched'] / m['all_rows']:.2f}); prompt "
            f"{pr['patched']:.2f} s vs {pr['all_rows']:.2f} s; "
            f"same text: {r['logits']['same_text']}"
        )
    if "mel" in r:
        m, c = r["mel"]["median_s"], r["mel"]["mel_cpu_s"]
        lines.append(
            f"- spectrogram sums side by side (patch 0013) vs whisper.cpp's loops, "
            f"{r['mel']['streams']} streams: {m['side_by_side']:.2f} s vs {m['reference']:.2f} s "
            f"(x{m['side_by_side'] / m['reference']:.2f}); log-mel CPU time "
            f"{c['side_by_side']:.2f} s vs {c['reference']:.2f} s; "
            f"same text: {r['mel']['same_text']}"
        )
    if "streams" in r:
        m, w = r["streams"]["median_s"], r["streams"]["wer"]
        k = next(key for key in m if key != "1")
        lines.append(
            f"- one pass vs {k} parts cut at silences {r['streams']['cuts'][k]}: "
            f"{m['1']:.2f} s vs {m[k]:.2f} s (x{m[k] / m['1']:.2f}); WER {w['1']} vs {w[k]}"
        )
    if "pair" in r:
        m = r["pair"]["median_s"]
        lines.append(
            f"- two clips {r['pair']['clips_s']} s: side by side on 1 thread each "
            f"{m['side_by_side_1t']:.2f} s vs one after the other on 2 threads "
            f"{m['in_a_row_2t']:.2f} s (x{m['side_by_side_1t'] / m['in_a_row_2t']:.2f})"
        )
    if "state" in r:
        lines.append(f"- one more whisper_state: {r['state']['one_state_mb']} MB of RSS")
    for k, b in r.get("batch", {}).items():
        m, f = b["median_s"], b["facts"]
        lines.append(
            f"- {k} parts, decoder calls on {k} states vs in one graph (patch 0011): "
            f"{m['states']:.2f} s vs {m['one_graph']:.2f} s "
            f"(x{m['one_graph'] / m['states']:.2f}); decoder "
            f"{f['states']['decode_ms_per_call']} vs {f['one_graph']['decode_ms_per_call']} ms "
            f"per call, {f['one_graph']['shared_decode_calls']} of "
            f"{f['one_graph']['decode_calls']} calls shared; WER {f['states']['wer']} vs "
            f"{f['one_graph']['wer']}; same text: {b['same_text']}"
        )
    if "encoder" in r:
        e = r["encoder"]
        m, f = e["median_s"], e["facts"]
        lines.append(
            f"- encoder matrices f16 vs bf16 (patch 0012), {e['streams']} streams: "
            f"{m['f16']:.2f} s vs {m['bf16']:.2f} s (x{m['bf16'] / m['f16']:.2f}); encoder "
            f"{f['f16']['encode_ms_per_window']} vs {f['bf16']['encode_ms_per_window']} ms per "
            f"window ({f['f16']['windows']} vs {f['bf16']['windows']} windows); decoder "
            f"{f['f16']['decode_ms_per_call']} vs {f['bf16']['decode_ms_per_call']} ms per "
            f"call; WER {f['f16']['wer']} vs {f['bf16']['wer']}"
        )
        for file, w in e["short_media_wer"].items():
            lines.append(f"  - {file}: WER {w['f16']} vs {w['bf16']}; same text: {w['same_text']}")
    if "resume" in r:
        m = r["resume"]
        lines.append(
            f"- resume of a run interrupted at 2/3 of its transcription: {m['resume_s']:.2f} s "
            f"against {m['whole_s']:.2f} s for a whole run (x{m['ratio']:.2f})"
        )
    lines.append(
        f"- RSS: {r['rss_before_load_mb']} MB before the model, {r['rss_after_load_mb']} MB "
        f"after; peak {r['peak_rss_mb']} MB"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
