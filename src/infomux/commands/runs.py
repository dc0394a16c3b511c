"""``infomux runs``: list runs, newest first; ``infomux runs rm``: delete runs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from infomux.commands import UsageError, verbosity_parent
from infomux.job import JobStatus

STATUSES = tuple(status.value for status in JobStatus)

log = logging.getLogger("infomux.commands.runs")


def add_parser(subparsers: Any) -> None:
    """Add the ``runs`` sub-command (and ``runs rm``)."""
    parser = subparsers.add_parser(
        "runs",
        parents=[verbosity_parent()],
        help="list runs, newest first ('runs rm' deletes runs)",
        description="List the runs in the runs directory, newest first.",
    )
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    parser.add_argument(
        "--json", action="store_true", help="print a JSON array of job.json objects"
    )
    parser.set_defaults(func=run)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    rm = actions.add_parser(
        "rm",
        parents=[verbosity_parent()],
        help="delete runs (their directories and search rows)",
        description=(
            "Delete runs: RUNs given by id, prefix, 'latest' or path, and/or every run "
            "matching --older-than and --status. Asks first unless --yes. Runs another "
            "process is working on are left alone."
        ),
    )
    rm.add_argument("runs", nargs="*", metavar="RUN", help="runs to delete")
    rm.add_argument(
        "--older-than", metavar="AGE", help="runs created more than AGE ago (30d, 12h, 2w)"
    )
    rm.add_argument("--status", dest="rm_status", choices=STATUSES, help="runs with this status")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask")
    rm.set_defaults(func=run_rm)


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


def run_rm(args: argparse.Namespace) -> int:
    """Delete the selected runs; print each deleted run directory."""
    from infomux import retention, store

    if not args.runs and not args.older_than and not args.rm_status:
        raise UsageError("name the runs to delete, or select them with --older-than/--status")
    before = None
    if args.older_than:
        try:
            before = store.parse_since(args.older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
    selected = retention.select_runs(args.runs, older_than=before, status=args.rm_status)
    if not selected:
        log.info("no runs match")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"{len(selected)} run(s) would be deleted; add --yes (stdin is not a terminal)"
            )
        sys.stderr.write(
            "".join(f"  {e.job.id}  {e.job.status!s:<11}  {e.job.input.path}\n" for e in selected)
        )
        sys.stderr.write(f"Delete these {len(selected)} run(s)? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            log.warning("nothing deleted")
            return 1
    result = retention.delete_runs(selected)
    for path in result.deleted:
        print(path)
    for run_id, reason in result.skipped:
        log.warning("%s not deleted: %s", run_id, reason)
    return 1 if result.skipped else 0
