"""New runs: :func:`create_run` (hash the input, make the run directory, write the
pending ``job.json``), and what says whether a recorded step is done."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from infomux import storage
from infomux.errors import InfomuxError
from infomux.job import JobEnvelope, StepRecord, StepStatus
from infomux.pipeline.registry import DEFAULT_PIPELINE, resolve_run_graph

log = logging.getLogger("infomux.pipeline")


class InputChangedError(InfomuxError):
    """The input of a run changed or vanished, and a step that still has to run needs it."""


def create_run(
    input_path: str | os.PathLike[str],
    *,
    pipeline: str = DEFAULT_PIPELINE,
    config: dict[str, Any] | None = None,
    runs_root: Path | None = None,
    explicit: Collection[str] | None = None,
    only: Collection[str] | None = None,
    pipeline_file: str | os.PathLike[str] | None = None,
    hash_beside: bool = False,
) -> tuple[JobEnvelope, Path]:
    """Hash the input, create a run directory and write its pending ``job.json``.

    ``hash_beside=True`` (a local file): the input is hashed in a background thread
    while the run goes on, and ``job.json`` is first written by :func:`execute` once its
    first steps have started (a long media file is not read in full before decoding
    starts). The caller must then execute the job (or save it) to get a ``job.json``.

    The pipeline's graph is resolved (every step option filled in, see
    :func:`graph.resolve`; ``explicit`` names the ``config`` keys given as flags,
    None = all; ``only`` keeps those step ids and what they need) and recorded in
    ``job.graph``; resume runs that graph.

    ``input_path`` ``"-"`` (standard input), an ``http(s)://`` URL (both as ``str``) or a
    pipe/FIFO is read to its end, hashed and spooled into the run directory
    (:mod:`infomux.inputs`); the copy is an artifact, and ``job.input`` records the source.

    Raises:
        PipelineError: unknown pipeline, bad graph or options.
        FileNotFoundError, IsADirectoryError, PermissionError: the input is not a readable file.
        InputReadError: a stream input failed or ended early (no run directory is left).
    """
    from infomux import inputs

    resolved = resolve_run_graph(
        pipeline, config, explicit=explicit, only=only, pipeline_file=pipeline_file
    )
    stream = inputs.open_stream(input_path)
    if stream is None:
        input_file = storage.describe_input(input_path, beside=hash_beside)
        run_id, run_dir = storage.create_run_dir(runs_root)
    else:
        try:
            run_id, run_dir = storage.create_run_dir(runs_root)
        except BaseException:
            stream.close()
            raise
        input_file = inputs.spool(stream, run_dir)  # removes run_dir when it fails
    config = {"pipeline": pipeline, **(config or {})}
    job = JobEnvelope.new(
        run_id,
        input_file,
        pipeline=pipeline,
        steps=list(resolved.steps),
        config=config,
        graph=resolved.to_record(),
    )
    if input_file.copy:
        job.add_artifacts([input_file.copy])
    if not input_file.hashing:
        storage.save_job(job, run_dir)
    log.debug("created %s for %s", run_dir, input_file.source or input_file.path)
    return job, run_dir


def step_is_done(record: StepRecord, run_dir: Path) -> bool:
    """Return whether a step completed and all its outputs are still there."""
    return record.status == StepStatus.COMPLETED and all(
        (run_dir / name).exists() for name in record.outputs
    )
