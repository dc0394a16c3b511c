"""``infomux run INPUT...``: run a pipeline on media files, standard input or URLs.

stdout gets exactly one line per successful input, the run directory, in input
order; failed inputs print ``Error: ...`` on stderr and nothing on stdout. With
``--print FMT`` each run directory line is followed by that run's transcript (the
whole of ``transcript.<FMT>``, ending with a newline), still in input order, one run's
block at a time. ``--dry-run`` prints the graph instead. Nothing else changes stdout.
An INPUT of ``-`` (standard input), ``http(s)://...`` or a pipe is read to its end,
hashed and spooled into the run directory (see :mod:`infomux.inputs`).
The model is loaded once for all inputs (shared ``resources``). Several inputs run
``K`` at a time on that one model (``--streams``; see :mod:`infomux.streams`), each
with its share of the threads; a failure of one input fails only its own run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from infomux.commands import (
    OUTPUT_LOCK,
    ProgressReporter,
    UsageError,
    add_transcribe_options,
    one_line,
    report_error,
    verbosity,
    verbosity_parent,
)

log = logging.getLogger("infomux.commands.run")


def add_parser(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    parser = subparsers.add_parser(
        "run",
        parents=[verbosity_parent()],
        help="run a pipeline on media files (default: transcribe)",
        description="Run a pipeline on each INPUT; print each run directory on stdout.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="media file(s); '-' reads standard input; http(s):// URLs are downloaded",
    )
    add_pipeline_options(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved step graph on stdout and exit (nothing is run)",
    )
    add_run_options(parser)
    parser.add_argument(
        "--print",
        dest="print_format",
        metavar="FMT",
        choices=PRINT_FORMATS,
        default=None,
        help="after each run directory line, print the transcript in FMT "
        "(txt, srt, vtt, json) on stdout (FMT is added to --formats)",
    )
    parser.set_defaults(func=run)


PRINT_FORMATS = ("txt", "srt", "vtt", "json")


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """``--pipeline``, ``--pipeline-file`` and ``--steps`` (run and batch)."""
    parser.add_argument(
        "--pipeline",
        metavar="NAME",
        default=None,
        help="pipeline to run (default: transcribe; see 'infomux pipelines')",
    )
    parser.add_argument(
        "--pipeline-file",
        metavar="PATH",
        default=None,
        help="pipeline file to use instead of ./infomux.yaml and "
        "$XDG_CONFIG_HOME/infomux/pipelines.yaml",
    )
    parser.add_argument(
        "--steps",
        metavar="IDS",
        type=lambda v: [s.strip() for s in v.split(",") if s.strip()],
        default=None,
        help="run only these steps of the pipeline (comma-separated ids) and what they need",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options a new run records (run and batch): transcription, ``--translate``,
    subtitles and what a run keeps, summaries, ``--output-dir``; see :func:`run_config`."""
    add_transcribe_options(parser)
    parser.add_argument(
        "--translate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="translate the speech into English text (needs a multilingual model: --model base)",
    )
    add_output_options(parser)
    from infomux.commands._summarize import add_summarize_options

    add_summarize_options(parser)
    parser.add_argument(
        "--output-dir",
        dest="output_dir",
        metavar="DIR",
        default=None,
        help="also put each run's outputs (transcripts, captioned video) into DIR as "
        "<input-stem>.<ext>: hard-linked on the same file system, else copied; "
        "never overwriting (recorded in job.json: exports)",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Subtitle layout and what a run keeps (issue 14); the dests are the run options."""
    from infomux.commands import positive_int

    group = parser.add_argument_group("subtitles (.srt, .vtt, caption tracks)")
    group.add_argument(
        "--subtitle-layout",
        dest="subtitle_layout",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lay cues out for reading (default); --no-subtitle-layout: one cue per segment",
    )
    group.add_argument(
        "--max-line-chars",
        dest="max_line_chars",
        type=positive_int,
        metavar="N",
        help="characters per line (default 42)",
    )
    group.add_argument(
        "--max-lines",
        dest="max_lines",
        type=positive_int,
        metavar="N",
        help="lines per cue (default 2)",
    )
    group.add_argument(
        "--min-cue-seconds",
        dest="min_cue_seconds",
        type=float,
        metavar="S",
        help="shortest cue (default 0.7)",
    )
    group.add_argument(
        "--max-cue-seconds",
        dest="max_cue_seconds",
        type=float,
        metavar="S",
        help="longest cue (default 7)",
    )
    group.add_argument(
        "--max-cps",
        dest="max_cps",
        type=float,
        metavar="N",
        help="warn about cues read faster than N characters per second (default 20)",
    )
    parser.add_argument(
        "--keep-audio",
        dest="keep_audio",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep audio.wav after a successful run (default); --no-keep-audio deletes it "
        "(job.json records that; resume decodes the input again if it needs the audio)",
    )


def explicit_options(args: argparse.Namespace, run_options: dict[str, Any]) -> set[str]:
    """The run options given as flags: they win over a pipeline file's step options."""
    return {key for key in run_options if getattr(args, key, None) is not None}


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The options a new run records: CLI flags over the config file over defaults."""
    from infomux import config, writers
    from infomux.commands._summarize import summarize_run_options
    from infomux.errors import InfomuxError

    try:
        cfg = config.load_config()
    except ValueError as exc:
        raise InfomuxError(str(exc)) from None  # a broken config file is a failure, exit 1
    language = args.language if args.language is not None else cfg.language

    def flag_or_config(key: str, default: Any = None) -> Any:
        value = getattr(args, key, None)
        return value if value is not None else cfg.extra.get(key, default)

    streams = flag_or_config("streams")
    vad_model = (
        str(Path(args.vad_model).expanduser().absolute())
        if args.vad_model
        else cfg.extra.get("vad_model")  # made absolute against the config file's directory
    )
    formats = list(flag_or_config("formats") or writers.DEFAULT_FORMATS)
    try:
        formats = writers.parse_formats(",".join(formats))
    except ValueError as exc:
        raise InfomuxError(f"config file {cfg.path}: 'formats': {exc}") from None
    printed = getattr(args, "print_format", None)
    if printed is not None and printed not in formats:
        formats.append(printed)  # --print FMT writes FMT
    output_dir = getattr(args, "output_dir", None)
    output_dir = (
        str(Path(output_dir).expanduser().absolute()) if output_dir else cfg.extra.get("output_dir")
    )
    result = {
        "model": config.model_spec(args.model, cfg),
        "language": None if language in (None, "", "auto") else language,
        "threads": args.threads if args.threads is not None else cfg.threads,
        "formats": formats,
        "vad": bool(flag_or_config("vad")),
        "vad_model": vad_model,
        "word_timestamps": bool(flag_or_config("word_timestamps")),
        "translate": bool(flag_or_config("translate")),
        "streams": 0 if streams is None else streams,  # 0: automatic
        "batch_decoder": bool(flag_or_config("batch_decoder")),
        "encoder_bf16": flag_or_config("encoder_bf16"),  # None: decided from the CPU
        **_decoding_options(args, cfg),
        **_output_options(args, cfg),
        **summarize_run_options(args),
    }
    if output_dir is not None:
        result["output_dir"] = output_dir
    if printed is not None:
        result["print"] = printed
    return result


def pipeline_choice(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The pipeline name and pipeline file: flags over the config file (None: default)."""
    from infomux import config

    try:
        cfg = config.load_config()
    except ValueError:
        return args.pipeline, getattr(args, "pipeline_file", None)  # run_config reports it
    name = args.pipeline or cfg.extra.get("pipeline")
    return name, getattr(args, "pipeline_file", None) or cfg.extra.get("pipeline_file")


DECODING_KEYS = ("beam_size", "best_of", "temperature", "prompt", "audio_stream")
"""Run options a flag or the config file sets; recorded only when set (the steps'
declared defaults fill the rest into job.json's graph)."""


def _decoding_options(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """Decoding options and the audio stream: flags over the config file."""
    result = {}
    for key in DECODING_KEYS:
        value = getattr(args, key, None)
        if value is None:
            value = cfg.extra.get(key)
        if value is not None:
            result[key] = value
    return result


def _output_options(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """Subtitle layout and keep_audio: flags over the config file over the defaults."""
    from infomux import subtitles
    from infomux.errors import InfomuxError

    cli = {k: getattr(args, k, None) for k in (subtitles.LAYOUT_KEY, *subtitles.OPTION_KEYS)}
    try:
        options = subtitles.run_options(cfg.extra.get("subtitles"), cli)
    except ValueError as exc:
        where = f"config file {cfg.path}: " if cfg.path else ""
        raise InfomuxError(f"{where}{exc}") from None
    keep = getattr(args, "keep_audio", None)
    if keep is None:
        keep = cfg.extra.get("keep_audio", True)
        if not isinstance(keep, bool):
            raise InfomuxError(f"config file {cfg.path}: 'keep_audio' must be true or false")
    options["keep_audio"] = keep
    return options


class _BatchProgress:
    """One progress line for several runs going on at once: the mean of their percentages."""

    def __init__(self, reporter: ProgressReporter, count: int) -> None:
        self._reporter = reporter
        self._percent = [0] * count
        self._lock = threading.Lock()
        self._label = f"transcribe ({count} files)"

    def for_input(self, index: int) -> Any:
        """The progress callback of input ``index``."""

        def report(step: str, percent: int) -> None:
            with self._lock:
                self._percent[index] = percent if step == "transcribe" else 0
                total = sum(self._percent) // len(self._percent)
            self._reporter(self._label, total)

        return report

    def finished(self, index: int) -> None:
        """Count input ``index`` as done (also when it failed)."""
        with self._lock:
            self._percent[index] = 100
            total = sum(self._percent) // len(self._percent)
        self._reporter(self._label, total)


def run(args: argparse.Namespace) -> int:
    """Run the pipeline on every input; 0 if all succeeded, 1 otherwise."""
    from infomux import inputs, pipeline

    run_options = run_config(args)
    chosen, pipeline_file = pipeline_choice(args)
    name = chosen or pipeline.DEFAULT_PIPELINE
    graph_args: dict[str, Any] = {
        "explicit": explicit_options(args, run_options),
        "only": getattr(args, "steps", None),
        "pipeline_file": pipeline_file,
    }
    if sum(raw == inputs.STDIN for raw in args.inputs) > 1:
        raise UsageError("'-' (standard input) can be given only once")
    try:
        resolved = pipeline.resolve_run_graph(name, run_options, **graph_args)
    except pipeline.PipelineFileError:
        raise  # a broken file: a failure (exit 1) naming the file and line
    except pipeline.PipelineError as exc:
        raise UsageError(str(exc)) from None
    if getattr(args, "dry_run", False):
        from infomux.commands.pipelines import print_graph

        print_graph(resolved)
        return 0
    if run_options.get("print") and not any(n.step == "transcribe" for n in resolved.nodes):
        raise UsageError(f"--print needs a transcript: pipeline {name!r} has no transcribe step")
    if run_options.get("output_dir"):
        from infomux.exports import ExportError

        try:
            Path(run_options["output_dir"]).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ExportError(
                f"cannot create output dir {run_options['output_dir']}: {reason}"
            ) from None
    verbose = verbosity(args) > 0
    progress = ProgressReporter(enabled=verbosity(args) >= 0)
    resources: dict[str, Any] = {}
    parallel = _parallel_inputs(run_options, len(args.inputs))
    try:
        if parallel is None:
            failures = sum(
                not _run_one(raw, name, run_options, resources, progress, verbose, None, graph_args)
                for raw in args.inputs
            )
        else:
            failures = _run_parallel(
                args.inputs, name, run_options, resources, progress, verbose, parallel, graph_args
            )
    finally:
        pipeline.close_resources(resources)
    return 1 if failures else 0


def _parallel_inputs(run_options: dict[str, Any], count: int) -> Any:
    """The stream plan for ``count`` inputs, or None to run them one after the other."""
    from infomux.engine import default_threads
    from infomux.streams import MAX_STREAMS, plan_streams

    streams = run_options.get("streams", 0)
    if count < 2 or streams == 1:
        return None
    total = run_options.get("threads") or default_threads()
    plan = plan_streams(total, count, max_streams=streams or MAX_STREAMS)
    return plan if plan.streams > 1 else None


def _run_one(
    raw: str,
    name: str,
    run_options: dict[str, Any],
    resources: dict[str, Any],
    progress: Any,
    verbose: bool,
    cancel: threading.Event | None,
    graph_args: dict[str, Any] | None = None,
    *,
    print_dir: bool = True,
) -> Path | None:
    """Create and execute one run; its run dir (printed unless told not to), or None."""
    from infomux import inputs, pipeline, storage

    source: str | Path = raw if inputs.is_stream_name(raw) else Path(raw)
    try:
        job, run_dir = pipeline.create_run(
            source, pipeline=name, config=run_options, hash_beside=True, **(graph_args or {})
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print_error_line(f"cannot read input {raw}: {reason}")
        return None
    log.info("%s: %s (pipeline %s)", job.id, Path(raw).name or raw, name)
    try:
        with storage.RunLock(run_dir):
            pipeline.execute(job, run_dir, resources=resources, on_progress=progress, cancel=cancel)
            finish_run(job, run_dir)
    except KeyboardInterrupt:
        _close(progress)
        _ensure_recorded(job, run_dir)
        log.warning("interrupted; to finish it: infomux resume %s", job.id)
        raise
    except Exception as exc:  # recorded in job.json; go on with the next input
        _close(progress)
        _ensure_recorded(job, run_dir)
        if cancel is not None and cancel.is_set():
            log.warning("%s interrupted; to finish it: infomux resume %s", raw, job.id)
            return None
        report_error(exc, verbose=verbose)
        log.info("run kept in %s; to retry: infomux resume %s", run_dir, job.id)
        return None
    _close(progress)
    if print_dir:
        emit(run_dir, run_options.get("print"))
    return run_dir


def _ensure_recorded(job: Any, run_dir: Path) -> None:
    """Write job.json if the run stopped before its first write (which waits for the
    input's sha256, computed beside the first steps); a failure to hash stays unwritten."""
    from infomux import storage

    if not storage.job_path(run_dir).exists():
        with contextlib.suppress(Exception):
            storage.save_job(job, run_dir)


def finish_run(job: Any, run_dir: Path) -> None:
    """After a successful run: ``--output-dir`` (recorded in job.json, saved)."""
    from infomux import exports, storage

    dest = job.config.get(exports.OUTPUT_DIR_KEY)
    if dest:
        records = exports.export_outputs(job, run_dir, dest)
        storage.save_job(job, run_dir)
        for record in records:
            log.info("%s: %s -> %s (%s)", job.id, record["file"], record["path"], record["method"])


def emit(run_dir: Path, print_format: str | None) -> None:
    """Print a successful run on stdout: its directory, then (``--print``) its transcript,
    as one block (runs going on side by side never interleave)."""
    text = f"{run_dir}\n"
    if print_format:
        transcript = (run_dir / f"transcript.{print_format}").read_text(encoding="utf-8")
        text += transcript if transcript.endswith("\n") or not transcript else transcript + "\n"
    with OUTPUT_LOCK:
        sys.stdout.write(text)
        sys.stdout.flush()


def _close(progress: Any) -> None:
    close = getattr(progress, "close", None)
    if callable(close):
        close()


def _run_parallel(
    inputs: list[str],
    name: str,
    run_options: dict[str, Any],
    resources: dict[str, Any],
    progress: ProgressReporter,
    verbose: bool,
    plan: Any,
    graph_args: dict[str, Any] | None = None,
) -> int:
    """Run ``inputs`` ``plan.streams`` at a time; print run dirs in input order."""
    options = {**run_options, "threads": plan.threads_per_stream, "streams": 1}
    if graph_args is not None:  # the share of threads is set here, over any pipeline file
        explicit = set(graph_args.get("explicit") or ()) | {"threads", "streams"}
        graph_args = {**graph_args, "explicit": explicit}
    log.info(
        "%d inputs, %d at a time with %d thread(s) each",
        len(inputs),
        plan.streams,
        plan.threads_per_stream,
    )
    batch = _BatchProgress(progress, len(inputs))
    cancel = threading.Event()
    results: list[Path | None] = [None] * len(inputs)
    finished = [False] * len(inputs)
    printed = 0

    def work(index: int) -> Path | None:
        if cancel.is_set():
            return None
        try:
            return _run_one(
                inputs[index],
                name,
                options,
                resources,
                batch.for_input(index),
                verbose,
                cancel,
                graph_args,
                print_dir=False,
            )
        finally:
            batch.finished(index)

    with ThreadPoolExecutor(plan.streams, thread_name_prefix="infomux-run") as pool:
        futures: dict[Future[Path | None], int] = {
            pool.submit(work, i): i for i in range(len(inputs))
        }
        pending = set(futures)
        try:
            while pending:
                # short waits keep Ctrl-C (delivered to this thread) responsive
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    index = futures[future]
                    results[index] = future.result()
                    finished[index] = True
                while printed < len(inputs) and finished[printed]:
                    done_dir = results[printed]
                    if done_dir is not None:
                        emit(done_dir, run_options.get("print"))
                    printed += 1
        except BaseException:
            cancel.set()  # the workers' transcriptions stop at their next check
            for future in pending:
                future.cancel()
            progress.close()
            log.warning("interrupted; unfinished runs can be finished with: infomux resume RUN")
            raise
    progress.close()
    return sum(r is None for r in results)


def print_error_line(message: str) -> None:
    """Print ``Error: message`` on stderr (one whole line, whichever thread prints)."""
    with OUTPUT_LOCK:
        sys.stderr.write(f"Error: {one_line(message)}\n")
        sys.stderr.flush()
