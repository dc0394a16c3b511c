"""The ``--summarize-*`` flags of ``infomux run``: the summarize step's options.

Each flag's dest is the step's option name, so a flag given is an explicit run option
(it wins over a pipeline file's ``options:``); a flag not given records nothing and the
step falls back to the environment, the config file's ``[summarize]`` table, then its
defaults (see :mod:`infomux.steps.summarize`).
"""

from __future__ import annotations

import argparse
from typing import Any

FLAGS: tuple[tuple[str, Any, str, str], ...] = (
    ("provider", str, "NAME", "ollama (default), openai or llama-cpp"),
    ("model", str, "NAME", "model name (llama-cpp: a GGUF file; default for ollama: llama3.2)"),
    (
        "url",
        str,
        "URL",
        "server base URL (default: $INFOMUX_OLLAMA_URL or http://localhost:11434; "
        "openai: $INFOMUX_OPENAI_BASE_URL or http://localhost:8080/v1)",
    ),
    ("temperature", float, "T", "sampling temperature (default 0: the same text every time)"),
    ("top-p", float, "P", "nucleus sampling (default 1)"),
    ("seed", int, "N", "sampler seed (default: one is chosen and recorded)"),
    (
        "context",
        int,
        "TOKENS",
        "context window; longer transcripts are summarized in pieces (default 8192)",
    ),
    ("max-tokens", int, "N", "longest reply (default 1024)"),
    ("timeout", float, "SECONDS", "wait for one reply at most (default 600)"),
)


def add_summarize_options(parser: argparse.ArgumentParser) -> None:
    """Add the ``--summarize-*`` flags (used by pipelines with a summarize step)."""
    group = parser.add_argument_group(
        "summarize (pipelines summarize, report; nothing is sent anywhere otherwise)"
    )
    for name, kind, metavar, help_text in FLAGS:
        group.add_argument(
            f"--summarize-{name}",
            dest=f"summarize_{name.replace('-', '_')}",
            type=kind,
            metavar=metavar,
            default=None,
            help=help_text,
        )


def summarize_run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--summarize-*`` flags given (only those: the step resolves the rest)."""
    result = {}
    for name, *_ in FLAGS:
        key = f"summarize_{name.replace('-', '_')}"
        value = getattr(args, key, None)
        if value is not None:
            result[key] = value
    return result
