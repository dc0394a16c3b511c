"""Run one library backend on some files in this process; print a JSON summary as the last line.

Invoked by ``bench_backends.py`` (and ``profile_infomux.py``) as a child process, with the
interpreter that has the backend installed::

    python benchmarks/_child.py infomux-lib --model M.bin --threads 2 a.wav b.mp4
    python benchmarks/_child.py pywhispercpp-file --model M.bin a.wav
    python benchmarks/_child.py pywhispercpp-numpy --model M.bin a.wav
    python benchmarks/_child.py faster-whisper --ct2-dir DIR --compute-type int8 a.wav

Every backend decodes greedily (beam 1, best-of 1), English, timestamps on, with the
temperature fallback of +0.2 that all of them default to. The model is loaded once and
used for every file. Times are ``time.perf_counter`` intervals inside this process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

T0 = time.perf_counter()


def _pyav_decode(path: str) -> Any:
    """Decode ``path`` to 16 kHz mono float32 with PyAV (for pywhispercpp's numpy path)."""
    import av
    import numpy as np

    chunks = []
    with av.open(path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def run_infomux(args: argparse.Namespace) -> dict[str, Any]:
    """infomux library calls: decode_audio, Model(path), Model.transcribe on the buffer."""
    import infomux
    from infomux import audio, engine

    imported = time.perf_counter()
    started = time.perf_counter()
    model = engine.Model(args.model)
    load_s = time.perf_counter() - started
    options = engine.TranscribeOptions(language="en", n_threads=args.threads)
    files = []
    for path in args.files:
        started = time.perf_counter()
        samples = audio.load_audio(path)
        decode_s = time.perf_counter() - started
        started = time.perf_counter()
        transcript = model.transcribe(samples, options)
        transcribe_s = time.perf_counter() - started
        files.append(
            {
                "path": path,
                "audio_s": samples.size / 16000,
                "decode_s": decode_s,
                "transcribe_s": transcribe_s,
                "engine_timings": dict(transcript.timings),
                "segments": len(transcript.segments),
                "text": transcript.text,
            }
        )
    build = engine.build_info()
    model.close()
    return {
        "import_s": imported - T0,
        "load_s": load_s,
        "files": files,
        "versions": {
            "infomux": getattr(infomux, "__version__", None),
            "whisper.cpp": build.get("whisper_cpp_version") or build.get("whisper.cpp"),
        },
        "build_info": build,
        "options": options.to_dict(),
    }


def run_pywhispercpp(args: argparse.Namespace, numpy_path: bool) -> dict[str, Any]:
    """pywhispercpp: its own file loading (ffmpeg subprocess → wav) or a PyAV-decoded array."""
    from importlib.metadata import version

    from pywhispercpp.model import Model

    imported = time.perf_counter()
    started = time.perf_counter()
    model = Model(
        args.model,
        n_threads=args.threads,
        language="en",
        no_context=False,  # pywhispercpp defaults to True; whisper.cpp/infomux use False
        greedy={"best_of": 1},
        print_progress=False,
        print_realtime=False,
        context_params={"flash_attn": True, "use_gpu": False},
        redirect_whispercpp_logs_to=None,
    )
    load_s = time.perf_counter() - started
    files = []
    for path in args.files:
        decode_s = 0.0
        if numpy_path:
            started = time.perf_counter()
            media: Any = _pyav_decode(path)
            decode_s = time.perf_counter() - started
            audio_s = media.size / 16000
        else:
            media = path
            audio_s = None
        started = time.perf_counter()
        segments = model.transcribe(media)
        transcribe_s = time.perf_counter() - started
        files.append(
            {
                "path": path,
                "audio_s": audio_s,
                "decode_s": decode_s,
                "transcribe_s": transcribe_s,
                "segments": len(segments),
                "text": " ".join(s.text.strip() for s in segments),  # segments come stripped
            }
        )
    return {
        "import_s": imported - T0,
        "load_s": load_s,
        "files": files,
        "versions": {"pywhispercpp": version("pywhispercpp")},
        "system_info": _pywhispercpp_system_info(),
    }


def _pywhispercpp_system_info() -> str | None:
    try:
        import _pywhispercpp as pw

        return str(pw.whisper_print_system_info())
    except Exception:
        return None


def run_faster_whisper(args: argparse.Namespace) -> dict[str, Any]:
    """faster-whisper (CTranslate2) on the CT2 directory, decoding files with its own PyAV path."""
    from importlib.metadata import version

    from faster_whisper import WhisperModel

    imported = time.perf_counter()
    started = time.perf_counter()
    model = WhisperModel(
        args.ct2_dir,
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        num_workers=1,
    )
    load_s = time.perf_counter() - started
    files = []
    for path in args.files:
        started = time.perf_counter()
        if args.batch_size:
            # faster-whisper's fastest mode: VAD chunks decoded batch_size at a time, each
            # without the previous text as prompt
            from faster_whisper import BatchedInferencePipeline

            segments, info = BatchedInferencePipeline(model=model).transcribe(
                path,
                language="en",
                beam_size=1,
                batch_size=args.batch_size,
                without_timestamps=args.without_timestamps,
            )
        else:
            segments, info = model.transcribe(
                path,
                language="en",
                beam_size=1,
                best_of=1,
                without_timestamps=False,
                condition_on_previous_text=True,
                vad_filter=False,
            )
        text = "".join(s.text for s in segments).strip()  # the generator does the work
        transcribe_s = time.perf_counter() - started
        files.append(
            {
                "path": path,
                "audio_s": info.duration,
                "decode_s": 0.0,
                "transcribe_s": transcribe_s,
                "text": text,
            }
        )
    return {
        "import_s": imported - T0,
        "load_s": load_s,
        "files": files,
        "versions": {
            "faster-whisper": version("faster-whisper"),
            "ctranslate2": version("ctranslate2"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the backend, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "backend",
        choices=["infomux-lib", "pywhispercpp-file", "pywhispercpp-numpy", "faster-whisper"],
    )
    parser.add_argument("files", nargs="+")
    parser.add_argument("--model", help="ggml model (whisper.cpp backends)")
    parser.add_argument("--ct2-dir", help="CTranslate2 model directory (faster-whisper)")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--batch-size", type=int, default=0, help="BatchedInferencePipeline")
    parser.add_argument("--without-timestamps", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.backend == "infomux-lib":
        result = run_infomux(args)
    elif args.backend.startswith("pywhispercpp"):
        result = run_pywhispercpp(args, numpy_path=args.backend.endswith("numpy"))
    else:
        result = run_faster_whisper(args)
    result["backend"] = args.backend
    result["process_s"] = time.perf_counter() - T0
    sys.stdout.flush()
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
