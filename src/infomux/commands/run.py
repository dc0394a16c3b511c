"""``infomux run INPUT...``: run a pipeline on media files.

stdout gets exactly one line per successful input, the run directory, in input
order; failed inputs print ``Error: ...`` on stderr and nothing on stdout.
The model is loaded once for all inputs (shared ``resources``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from infomux.commands import (
    ProgressReporter,
    UsageError,
    add_transcribe_options,
    one_line,
    print_line,
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
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="media file(s)")
    parser.add_argument(
        "--pipeline",
        metavar="NAME",
        default=None,
        help="pipeline to run (default: transcribe; see 'infomux pipelines')",
    )
    add_transcribe_options(parser)
    parser.set_defaults(func=run)


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The options a new run records: CLI flags over the config file over defaults."""
    from infomux import config, writers

    try:
        cfg = config.load_config()
    except ValueError as exc:
        from infomux.errors import InfomuxError

        raise InfomuxError(str(exc)) from None  # a broken config file is a failure, exit 1
    language = args.language if args.language is not None else cfg.language
    return {
        "model": config.model_spec(args.model, cfg),
        "language": None if language in (None, "", "auto") else language,
        "threads": args.threads if args.threads is not None else cfg.threads,
        "formats": list(args.formats or writers.DEFAULT_FORMATS),
        "vad": bool(args.vad),
        "vad_model": str(Path(args.vad_model).absolute()) if args.vad_model else None,
        "word_timestamps": bool(args.word_timestamps),
    }


def run(args: argparse.Namespace) -> int:
    """Run the pipeline on every input; 0 if all succeeded, 1 otherwise."""
    from infomux import pipeline, storage

    name = args.pipeline or pipeline.DEFAULT_PIPELINE
    try:
        pipeline.get_pipeline(name)
    except pipeline.PipelineError as exc:
        raise UsageError(str(exc)) from None
    run_options = run_config(args)
    verbose = verbosity(args) > 0
    progress = ProgressReporter(enabled=verbosity(args) >= 0)
    resources: dict[str, Any] = {}
    failures = 0
    try:
        for raw in args.inputs:
            path = Path(raw)
            try:
                job, run_dir = pipeline.create_run(path, pipeline=name, config=run_options)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                print_error_line(f"cannot read input {raw}: {reason}")
                failures += 1
                continue
            log.info("%s: %s (pipeline %s)", job.id, path.name, name)
            try:
                with storage.RunLock(run_dir):
                    pipeline.execute(job, run_dir, resources=resources, on_progress=progress)
            except KeyboardInterrupt:
                progress.close()
                log.warning("interrupted; to finish it: infomux resume %s", job.id)
                raise
            except Exception as exc:  # recorded in job.json; go on with the next input
                progress.close()
                report_error(exc, verbose=verbose)
                log.info("run kept in %s; to retry: infomux resume %s", run_dir, job.id)
                failures += 1
                continue
            progress.close()
            print_line(str(run_dir))
    finally:
        pipeline.close_resources(resources)
    return 1 if failures else 0


def print_error_line(message: str) -> None:
    """Print ``Error: message`` on stderr."""
    print(f"Error: {one_line(message)}", file=sys.stderr, flush=True)
