"""``infomux reindex``: rebuild the search database from the run directories."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from infomux.commands import verbosity_parent

log = logging.getLogger("infomux.commands.reindex")


def add_parser(subparsers: Any) -> None:
    """Add the ``reindex`` sub-command."""
    parser = subparsers.add_parser(
        "reindex",
        parents=[verbosity_parent()],
        help="rebuild the search database from the run directories",
        description=(
            "Rebuild the search database (infomux.db in the data directory) from every "
            "run directory; a damaged database is moved aside first."
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Rebuild; print one summary line."""
    from infomux import store

    report = store.reindex()
    if report.moved_aside:
        log.warning("the damaged database was moved to %s", report.moved_aside)
    print(
        f"{report.runs} runs, {report.segments} segments indexed"
        f" ({report.removed} stale runs removed) in {report.seconds:.2f} s"
    )
    return 0
