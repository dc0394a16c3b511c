"""``infomux search QUERY``: find words in every stored run's transcript."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from infomux.commands import UsageError, verbosity_parent


def add_parser(subparsers: Any) -> None:
    """Add the ``search`` sub-command."""
    parser = subparsers.add_parser(
        "search",
        parents=[verbosity_parent()],
        help="search the transcripts of all runs (newest first)",
        description=(
            "Search the stored transcripts (SQLite FTS5, English stemming: 'drift' finds "
            "'drifted'). QUERY is FTS5 syntax: words, \"a phrase\", OR, NOT, prefix*. "
            "Prints run id, time range and a snippet per match, newest run first."
        ),
    )
    parser.add_argument("query", metavar="QUERY", help="what to look for")
    parser.add_argument("--json", action="store_true", help="print a JSON array of matches")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (20)")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="only runs created since WHEN: an age (7d, 12h, 2w) or a date (2025-01-31)",
    )
    parser.add_argument("--pipeline", metavar="NAME", help="only runs of this pipeline")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the matches (none: no output, status 0)."""
    from infomux import store

    since = None
    if args.since:
        try:
            since = store.parse_since(args.since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    bold = not args.json and sys.stdout.isatty()
    marks = ("\033[1m", "\033[0m") if bold else ("[", "]")
    with store.Store.open() as db:
        hits = db.search(
            args.query, limit=args.limit, since=since, pipeline=args.pipeline, marks=marks
        )
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    for hit in hits:
        where = (
            f"{store.hms(hit.start_ms)}-{store.hms(hit.end_ms)}"
            if hit.start_ms is not None
            else "summary"
        )
        snippet = " ".join(hit.snippet.split())
        print(f"{hit.run_id}  {where}  {snippet}")
    return 0
