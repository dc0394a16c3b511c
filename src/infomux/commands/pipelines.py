"""``infomux pipelines`` and ``infomux steps``: what can be run."""

from __future__ import annotations

import argparse
import json
from typing import Any

from infomux.commands import verbosity_parent


def add_parser(subparsers: Any) -> None:
    """Add the ``pipelines`` and ``steps`` sub-commands."""
    parser = subparsers.add_parser(
        "pipelines",
        parents=[verbosity_parent()],
        help="list pipelines",
        description="List the pipelines 'infomux run --pipeline' accepts.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)
    parser = subparsers.add_parser(
        "steps",
        parents=[verbosity_parent()],
        help="list pipeline steps",
        description="List the registered pipeline steps.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run_steps)


def run(args: argparse.Namespace) -> int:
    """Print the pipelines."""
    from infomux import pipeline

    pipelines = pipeline.registered_pipelines()
    if args.json:
        print(json.dumps([p.to_dict() for p in pipelines.values()], indent=2))
        return 0
    width = max((len(n) for n in pipelines), default=0)
    for name, spec in pipelines.items():
        default = " (default)" if name == pipeline.DEFAULT_PIPELINE else ""
        print(f"{name:<{width}}  {' -> '.join(spec.steps)}{default}")
        if spec.description:
            print(f"{'':<{width}}  {spec.description}")
    return 0


def run_steps(args: argparse.Namespace) -> int:
    """Print the steps."""
    from infomux.steps import registered_steps

    steps = registered_steps()
    if args.json:
        data = [
            {
                "name": s.name,
                "requires": list(s.requires),
                "needs_input": s.needs_input,
                "description": s.description,
            }
            for s in steps.values()
        ]
        print(json.dumps(data, indent=2))
        return 0
    width = max((len(n) for n in steps), default=0)
    for name, spec in sorted(steps.items()):
        requires = f" (after {', '.join(spec.requires)})" if spec.requires else ""
        print(f"{name:<{width}}  {spec.description}{requires}")
    return 0
