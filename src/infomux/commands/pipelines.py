"""``infomux pipelines`` and ``infomux steps``: what can be run, and with which options."""

from __future__ import annotations

import argparse
import json
from typing import Any

from infomux.commands import print_line, verbosity_parent


def add_parser(subparsers: Any) -> None:
    """Add the ``pipelines`` and ``steps`` sub-commands."""
    parser = subparsers.add_parser(
        "pipelines",
        parents=[verbosity_parent()],
        help="list pipelines and their step graphs",
        description="List the pipelines 'infomux run --pipeline' accepts: built-in, "
        "registered, and those of ./infomux.yaml and $XDG_CONFIG_HOME/infomux/pipelines.yaml.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (each pipeline's graph)")
    parser.add_argument(
        "--pipeline-file", metavar="PATH", default=None, help="read this pipeline file instead"
    )
    parser.set_defaults(func=run)
    parser = subparsers.add_parser(
        "steps",
        parents=[verbosity_parent()],
        help="list pipeline steps and their options",
        description="List the registered pipeline steps with their options and defaults.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run_steps)


def graph_lines(pipeline: Any, indent: str = "  ") -> list[str]:
    """A pipeline's graph as text: one line per step (id, step, what it needs, options)."""
    lines = []
    width = max((len(n.id) for n in pipeline.nodes), default=0)
    for node in pipeline.nodes:
        step = f" ({node.step})" if node.step != node.id else ""
        needs = f"  <- {', '.join(node.needs)}" if node.needs else ""
        lines.append(f"{indent}{node.id:<{width}}{step}{needs}")
        options = {k: v for k, v in node.options.items() if v is not None}
        if options:
            text = ", ".join(f"{k}={json.dumps(v)}" for k, v in options.items())
            lines.append(f"{indent}{'':<{width}}  options: {text}")
    return lines


def print_graph(pipeline: Any) -> None:
    """Print a resolved pipeline (``infomux run --dry-run``) on stdout."""
    print_line(f"{pipeline.name}: {pipeline.description}".rstrip(": "))
    for line in graph_lines(pipeline):
        print_line(line)


def run(args: argparse.Namespace) -> int:
    """Print the pipelines."""
    from infomux import pipeline

    pipelines = pipeline.available_pipelines(getattr(args, "pipeline_file", None))
    if args.json:
        print(json.dumps([p.to_dict() for p in pipelines.values()], indent=2))
        return 0
    for name, spec in pipelines.items():
        default = " (default)" if name == pipeline.DEFAULT_PIPELINE else ""
        source = "" if spec.source in ("builtin", "") else f" [{spec.source}]"
        print(f"{name}{default}{source}: {spec.description}".rstrip(": "))
        for line in graph_lines(spec):
            print(line)
    return 0


def run_steps(args: argparse.Namespace) -> int:
    """Print the steps and their options."""
    from infomux.steps import registered_steps

    steps = registered_steps()
    if args.json:
        data = [
            {
                "name": s.name,
                "requires": list(s.requires),
                "needs_input": s.needs_input,
                "description": s.description,
                "options": [o.to_dict() for o in s.options],
            }
            for s in steps.values()
        ]
        print(json.dumps(data, indent=2))
        return 0
    for name, spec in sorted(steps.items()):
        requires = f" (after {', '.join(spec.requires)})" if spec.requires else ""
        print(f"{name}: {spec.description}{requires}")
        width = max((len(o.name) for o in spec.options), default=0)
        for option in spec.options:
            choices = f" [{'|'.join(str(c) for c in option.choices)}]" if option.choices else ""
            default = json.dumps(option.default)
            print(f"  {option.name:<{width}}  {option.type}{choices} = {default}  {option.help}")
    return 0
