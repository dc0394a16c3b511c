"""``infomux resume RUN``: finish a failed or interrupted run.

Completed steps whose outputs still exist are skipped (``--from-step ID`` redoes ID
and every step after it, keeping the earlier outputs under ``attempts/``); the recorded options are
reused unless overridden on the command line; the input is re-verified when a
step that reads it still has to run. Whether another process is working on the
run is decided by the run lock alone: a run left ``running`` by a process that
died (on this host, in another container, anywhere) is resumable, and a run
whose lock is held is refused.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from infomux.commands import (
    ProgressReporter,
    UsageError,
    add_transcribe_options,
    verbosity,
    verbosity_parent,
)

log = logging.getLogger("infomux.commands.resume")


def add_parser(subparsers: Any) -> None:
    """Add the ``resume`` sub-command."""
    parser = subparsers.add_parser(
        "resume",
        parents=[verbosity_parent()],
        help="finish a failed or interrupted run",
        description="Run the steps of RUN that are not done; print the run directory on stdout.",
    )
    parser.add_argument(
        "run", metavar="RUN", help="run id, unique id prefix, 'latest', or run directory"
    )
    parser.add_argument(
        "--from-step",
        metavar="ID",
        default=None,
        help="redo step ID and every step after it (earlier outputs are kept under "
        "attempts/, their records in the steps' attempts)",
    )
    add_transcribe_options(parser, resume=True)
    parser.add_argument(
        "--force",
        action="store_true",
        help=argparse.SUPPRESS,  # accepted for old scripts; the run lock decides (see run())
    )
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Options given explicitly on the command line (None = keep the recorded value).

    Paths (a model file, the VAD model) are made absolute, so that the run can be
    resumed again from any directory.
    """
    from infomux import config

    result: dict[str, Any] = {
        "model": config.absolute_model_spec(args.model),
        "language": args.language,  # "auto" is kept as is: it means auto-detect
        "threads": args.threads,
        "formats": list(args.formats) if args.formats else None,
        "vad": args.vad,
        "vad_model": str(Path(args.vad_model).expanduser().absolute()) if args.vad_model else None,
        "word_timestamps": args.word_timestamps,
        "batch_decoder": getattr(args, "batch_decoder", None),
        "encoder_bf16": getattr(args, "encoder_bf16", None),
        "beam_size": getattr(args, "beam_size", None),
        "best_of": getattr(args, "best_of", None),
        "temperature": getattr(args, "temperature", None),
        "prompt": getattr(args, "prompt", None),
        "audio_stream": getattr(args, "audio_stream", None),
    }
    return result


def run(args: argparse.Namespace) -> int:
    """Resume one run; 0 when it completes."""
    from infomux import pipeline, storage
    from infomux.job import JobStatus

    run_dir = storage.resolve_run(args.run)
    progress = ProgressReporter(enabled=verbosity(args) >= 0)
    resources: dict[str, Any] = {}
    try:
        with storage.RunLock(run_dir):
            job = storage.load_job(run_dir)
            from_step = getattr(args, "from_step", None)
            if (
                from_step is None
                and job.status == JobStatus.COMPLETED
                and not pipeline.steps_to_run(job, run_dir)
            ):
                log.info("%s: already completed, nothing to do", job.id)
                _emit(run_dir, job.config.get("print"))
                return 0
            changes = overrides(args)
            # Holding the run lock proves that no live process works on the run, whatever
            # its recorded status, host or pid say (the kernel releases the lock of a
            # process that dies), so the recorded host/pid are not compared.
            try:
                todo = pipeline.prepare_resume(
                    job, run_dir, overrides=changes, force=True, from_step=from_step
                )
            except pipeline.PipelineError as exc:
                if from_step is not None and "has no step" in str(exc):
                    raise UsageError(str(exc)) from None
                raise
            log.info(
                "%s: resuming (%s)",
                job.id,
                ", ".join(r.name for r in todo) or "nothing left to run",
            )
            try:
                pipeline.execute(job, run_dir, resources=resources, on_progress=progress)
                from infomux.commands.run import finish_run

                finish_run(job, run_dir)  # the recorded --output-dir
            except KeyboardInterrupt:
                progress.close()
                log.warning("interrupted; to finish it: infomux resume %s", job.id)
                raise
            except Exception:
                progress.close()
                log.info("run kept in %s; to retry: infomux resume %s", run_dir, job.id)
                raise
    finally:
        progress.close()
        pipeline.close_resources(resources)
    _emit(run_dir, job.config.get("print"))
    return 0


def _emit(run_dir: Path, print_format: str | None) -> None:
    """What the run would have printed: its directory, then the transcript it was asked to
    ``--print`` (recorded in its config)."""
    from infomux.commands.run import emit

    emit(run_dir, print_format)
