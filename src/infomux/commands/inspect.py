"""``infomux inspect RUN``: show a run (human summary, or ``--json`` for job.json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from infomux.commands import verbosity_parent


def add_parser(subparsers: Any) -> None:
    """Add the ``inspect`` sub-command."""
    parser = subparsers.add_parser(
        "inspect",
        parents=[verbosity_parent()],
        help="show a run",
        description="Show a run: status, input, model, steps, artifacts.",
    )
    parser.add_argument(
        "run",
        metavar="RUN",
        nargs="?",
        default="latest",
        help="run id, unique id prefix, 'latest' (default), or run directory",
    )
    parser.add_argument("--json", action="store_true", help="print job.json as it is on disk")
    parser.set_defaults(func=run)


def human_size(size: int | None) -> str:
    """Format a byte count (``1.2 MB``)."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def human_seconds(seconds: float | None) -> str:
    """Format a duration (``0.42 s``, ``3m 05s``)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s"


def summary(job: Any, run_dir: Path) -> str:
    """The human-readable description of a run."""
    lines = [
        f"run:       {job.id}",
        f"directory: {run_dir}",
        f"status:    {job.status}",
        f"created:   {job.created_at}",
        f"updated:   {job.updated_at}",
        f"pipeline:  {job.pipeline or job.config.get('pipeline', '?')}",
        f"input:     {job.input.path} ({human_size(job.input.size_bytes)}, "
        f"sha256 {job.input.sha256[:12]}…)",
    ]
    if job.input.is_stream:  # stdin, a URL or a pipe, spooled into the run dir
        lines.append(f"source:    {job.input.source} ({job.input.kind}, read once)")
    if job.audio:
        a = job.audio
        duration = a.get("decoded_duration") or a.get("duration")
        lines.append(
            f"audio:     {a.get('container_format')}/{a.get('codec')}, {a.get('sample_rate')} Hz, "
            f"{a.get('channels')} ch, {human_seconds(duration)}"
        )
    if job.model:
        m = job.model
        lines.append(
            f"model:     {m.get('name')} ({m.get('path')}, sha256 {str(m.get('sha256'))[:12]}…)"
        )
    elif job.config.get("model"):
        lines.append(f"model:     {job.config['model']} (requested)")
    opts = {k: v for k, v in job.config.items() if k not in ("pipeline", "model") and v is not None}
    if opts:
        lines.append("options:   " + ", ".join(f"{k}={_fmt(v)}" for k, v in opts.items()))
    lines.append("steps:")
    width = max((len(s.name) for s in job.steps), default=4)
    for step in job.steps:
        took = human_seconds(step.duration_seconds)
        line = f"  {step.name:<{width}}  {step.status!s:<11}  {took:>8}"
        if step.outputs:
            line += "  " + ", ".join(step.outputs)
        if step.attempts:
            line += (
                f"  ({len(step.attempts)} earlier attempt{'s' if len(step.attempts) > 1 else ''})"
            )
        lines.append(line)
        if step.error:
            lines.append(f"  {'':<{width}}  error: {step.error}")
    lines.append("artifacts: " + (", ".join(job.artifacts) if job.artifacts else "none"))
    if job.error:
        lines.append(f"error:     {job.error}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def run(args: argparse.Namespace) -> int:
    """Print the run's summary (or its job.json)."""
    from infomux import storage

    run_dir = storage.resolve_run(args.run)
    if args.json:
        text = storage.job_path(run_dir).read_text(encoding="utf-8")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    job = storage.load_job(run_dir)
    print(summary(job, run_dir))
    return 0
