"""``infomux runs``: list runs, newest first."""

from __future__ import annotations

import argparse
import json
from typing import Any

from infomux.commands import verbosity_parent
from infomux.job import JobStatus

STATUSES = tuple(status.value for status in JobStatus)


def add_parser(subparsers: Any) -> None:
    """Add the ``runs`` sub-command."""
    parser = subparsers.add_parser(
        "runs",
        parents=[verbosity_parent()],
        help="list runs, newest first",
        description="List the runs in the runs directory, newest first.",
    )
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    parser.add_argument(
        "--json", action="store_true", help="print a JSON array of job.json objects"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the runs."""
    from pathlib import Path

    from infomux import storage

    entries = storage.list_runs(status=args.status)
    if args.limit is not None:
        entries = entries[: max(args.limit, 0)]
    if args.json:
        data = [{**e.job.to_dict(), "path": str(e.path)} for e in entries]
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    for entry in entries:
        job = entry.job
        total = sum(s.duration_seconds or 0.0 for s in job.steps)
        print(
            f"{job.id}  {job.status!s:<11}  {job.created_at[:19].replace('T', ' ')}  "
            f"{total:7.2f} s  {Path(job.input.path).name}"
        )
    return 0
