"""``infomux batch INPUTS...``: one pipeline over many files, the model loaded once per worker.

INPUTS are media files and directories (walked recursively; media found by probing, the
rest listed as skipped), and/or ``--manifest FILE``. Each file gets a run directory and
``job.json`` exactly as ``infomux run`` makes them; the batch is recorded in
``batches/<batch-id>/batch.json``. stdout: one run directory per line as each file
completes, nothing else. stderr: progress across files (done/total, audio hours, ETA),
``Error: FILE: ...`` for each failed file, and a last line naming the batch. Exit 1 when
any file failed; ``--resume BATCH`` processes again only what did not complete.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from infomux.commands import (
    OUTPUT_LOCK,
    UsageError,
    positive_int,
    print_line,
    verbosity,
    verbosity_parent,
)

log = logging.getLogger("infomux.commands.batch")


def add_parser(subparsers: Any) -> None:
    """Add the ``batch`` sub-command."""
    from infomux.commands.run import add_pipeline_options, add_run_options

    parser = subparsers.add_parser(
        "batch",
        parents=[verbosity_parent()],
        help="run a pipeline on many files (directories, manifests), model loaded once",
        description="Run a pipeline on every media file of INPUTS; print each run "
        "directory on stdout as it completes.",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="media files and directories (searched recursively; media found by probing)",
    )
    parser.add_argument(
        "--manifest",
        metavar="FILE",
        default=None,
        help="file listing inputs: one path per line, or JSON lines "
        '{"path": ..., "language": ..., ...} with options for that file',
    )
    parser.add_argument(
        "--resume",
        metavar="BATCH",
        default=None,
        help="process again the files of BATCH (id, prefix, 'latest' or directory) "
        "that did not complete",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=positive_int,
        default=None,
        help="worker processes (Ray: actors), each with the model loaded once "
        "(default: from the cores, see --threads)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="where runs, batches and the search store go (default: $INFOMUX_DATA_DIR, "
        "else the user data dir); with Ray on several machines, a directory every node "
        "mounts at the same path",
    )
    ray = parser.add_argument_group("Ray (pip install 'infomux[ray]')")
    ray.add_argument(
        "--ray",
        action="store_true",
        help="process the files on a Ray cluster (RAY_ADDRESS, else a local one)",
    )
    ray.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        default=None,
        help="join the Ray cluster at ADDRESS (implies --ray)",
    )
    add_pipeline_options(parser)
    add_run_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run (or resume) a batch; 0 when every file completed, 1 otherwise."""
    from infomux.batch import record as records
    from infomux.batch import runner

    if args.data_dir is not None:  # for this process and every worker it starts
        from infomux.config import ENV_DATA_DIR

        os.environ[ENV_DATA_DIR] = str(Path(args.data_dir).expanduser().absolute())

    if args.ray or args.ray_address:
        _ray_module()  # a missing engine or Ray is an error before anything is recorded
    if args.resume is not None:
        if args.inputs or args.manifest:
            raise UsageError("--resume BATCH takes no INPUT or --manifest")
        record = records.load_batch(args.resume)
        todo = runner.files_to_do(record)
        from infomux.batch.local import plan_workers

        recorded = record.engine if record.engine.get("name") == "local" else {}
        plan = plan_workers(  # as the batch was set up, unless told otherwise
            len(todo),
            workers=args.workers or recorded.get("workers"),
            threads=args.threads or record.options.get("threads"),
            threads_source="--threads" if args.threads else "threads recorded in the batch",
            workers_source="--workers" if args.workers else "workers recorded in the batch",
        )
        record.event("resumed", files=[f.index for f in todo])
        log.info("batch %s: resuming %d file(s)", record.id, len(todo))
    else:
        if not args.inputs and not args.manifest:
            raise UsageError("give INPUT files or directories, --manifest FILE, or --resume BATCH")
        record, plan = _new_batch(args)
    try:
        engine = _engine(args, record, plan)
    except BaseException:
        if args.resume is None:  # nothing ran: leave no batch behind
            import shutil

            shutil.rmtree(record.directory, ignore_errors=True)
        raise
    quiet_steps = verbosity(args) == 0  # the progress line says it all; -v shows the steps
    steps_log = logging.getLogger("infomux.steps")
    level = steps_log.level
    if quiet_steps:
        steps_log.setLevel(logging.WARNING)
    reporter = _Reporter(enabled=verbosity(args) >= 0)
    try:
        runner.run_batch(
            record,
            engine,
            on_done=lambda item: print_line(str(item.run_dir)),
            on_failed=_print_failure,
            on_progress=reporter,
        )
    except KeyboardInterrupt:
        log.warning(
            "batch %s interrupted; to finish it: infomux batch --resume %s", record.id, record.id
        )
        raise
    finally:
        if quiet_steps:
            steps_log.setLevel(level)
    totals = record.count()
    log.info(
        "batch %s: %d completed, %d failed, %d skipped (%s)",
        record.id,
        totals["completed"],
        totals["failed"] + totals["interrupted"] + totals["pending"],
        totals["skipped"],
        record.path,
    )
    if record.status != records.COMPLETED:
        log.info("to process the rest again: infomux batch --resume %s", record.id)
        return 1
    return 0


def _new_batch(args: argparse.Namespace) -> tuple[Any, Any]:
    """Collect the inputs, check the pipeline and options, record a new batch."""
    from infomux import pipeline
    from infomux.batch import inputs, runner
    from infomux.commands.run import explicit_options, pipeline_choice, run_config

    run_options = run_config(args)
    chosen, pipeline_file = pipeline_choice(args)
    name = chosen or pipeline.DEFAULT_PIPELINE
    explicit = explicit_options(args, run_options)
    try:
        pipeline.resolve_run_graph(
            name, run_options, explicit=explicit, only=args.steps, pipeline_file=pipeline_file
        )
    except pipeline.PipelineFileError:
        raise  # a broken file: a failure (exit 1) naming the file and line
    except pipeline.PipelineError as exc:
        raise UsageError(str(exc)) from None
    items = inputs.collect(args.inputs, args.manifest)
    for item in items:
        if item.skipped:
            log.warning("skipping %s: %s", item.path, item.skipped)
    plan = _plan(args, sum(not i.skipped for i in items), args.threads, "--threads")
    run_options["threads"] = plan.threads  # threads per worker, over any pipeline file
    explicit |= {"threads"}
    if args.streams is None:
        run_options["streams"] = 0  # automatic: parts of a long file when threads allow
    runner.check_file_options(
        items,
        pipeline=name,
        pipeline_file=str(pipeline_file) if pipeline_file else None,
        options=run_options,
        explicit=explicit,
        steps=args.steps,
    )
    record = runner.start_batch(
        items,
        inputs=[str(p) for p in args.inputs],
        manifest=str(args.manifest) if args.manifest else None,
        pipeline=name,
        pipeline_file=str(pipeline_file) if pipeline_file else None,
        options=run_options,
        explicit=explicit,
        steps=args.steps,
    )
    log.info(
        "batch %s: %d file(s), %d skipped; %d worker(s) x %d thread(s)",
        record.id,
        sum(not i.skipped for i in items),
        sum(bool(i.skipped) for i in items),
        plan.workers,
        plan.threads,
    )
    return record, plan


def _plan(args: argparse.Namespace, files: int, threads: int | None, source: str) -> Any:
    from infomux.batch.local import plan_workers

    return plan_workers(files, workers=args.workers, threads=threads, threads_source=source)


def _engine(args: argparse.Namespace, record: Any, plan: Any) -> Any:
    """The engine: local worker processes, or Ray with ``--ray``/``--ray-address``."""
    from infomux.batch.worker import WorkerSettings

    settings = WorkerSettings(
        threads=plan.threads,
        model=record.options.get("model"),
        pipeline=record.pipeline,
        pipeline_file=record.pipeline_file,
        run_options=dict(record.options),
        data_dir=_data_dir(),
        verbosity=verbosity(args),
    )
    if args.ray or args.ray_address:
        return _ray_engine(settings, args)
    from infomux.batch.local import LocalEngine

    return LocalEngine(settings, plan)


def _data_dir() -> str:
    from infomux import config

    return str(config.data_dir().absolute())


def _ray_module() -> Any:
    """``infomux.batch.ray_engine``, or an error naming what is missing."""
    import importlib

    from infomux.errors import InfomuxError

    try:
        module = importlib.import_module("infomux.batch.ray_engine")
    except ImportError as exc:
        raise InfomuxError(f"--ray: cannot load infomux's Ray engine: {exc}") from None
    module.import_ray()  # Ray itself is imported lazily: a missing Ray is said here, first
    return module


def _ray_engine(settings: Any, args: argparse.Namespace) -> Any:
    engine: Any = _ray_module().RayEngine(settings, workers=args.workers, address=args.ray_address)
    return engine


def _print_failure(item: Any) -> None:
    with OUTPUT_LOCK:
        sys.stderr.write(f"Error: {item.path}: {' '.join(str(item.error).split())}\n")
        sys.stderr.flush()


class _Reporter:
    """The progress line on stderr after each file: files, audio hours, ETA."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, progress: Any) -> None:
        if not self.enabled:
            return
        failed = f" ({progress.failed} failed)" if progress.failed else ""
        audio = f", {progress.audio_done / 3600:.2f} h"
        if progress.audio_total:
            audio += f" of {progress.audio_total / 3600:.2f} h"
        eta = f", ETA {_clock(progress.eta)}" if progress.eta is not None else ""
        line = f"infomux: batch: {progress.done}/{progress.total} files{failed}{audio} audio{eta}"
        try:
            with OUTPUT_LOCK:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
        except (OSError, ValueError):
            self.enabled = False


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
