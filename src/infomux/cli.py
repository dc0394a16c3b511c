"""The ``infomux`` command line.

Builds the argparse parser from the command modules (``infomux.commands.*``),
sets up logging, and turns outcomes into exit codes: 0 success, 1 failure
(``Error: ...`` on stderr, a traceback only with ``-v``), 2 usage error,
130 interrupted (Ctrl-C or SIGTERM).

Start-up stays fast: nothing here imports numpy, PyAV or the native engine;
commands import them inside their ``run``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from infomux._version import __version__
from infomux.commands import UsageError, report_error, verbosity
from infomux.log import setup_logging

COMMANDS = (
    "run",
    "batch",
    "inspect",
    "resume",
    "runs",
    "models",
    "doctor",
    "pipelines",
    "search",
    "reindex",
)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("infomux.cli")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="infomux",
        description="Local-first, auditable media pipeline: media in, transcripts + job.json out.",
    )
    parser.add_argument("--version", action="version", version=f"infomux {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", default=False, help="errors only")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # Every command ships with infomux: a missing one is a packaging error, not skipped.
        module = importlib.import_module(f"infomux.commands.{name}")
        module.add_parser(subparsers)
    return parser


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run() -> None:
    """The ``infomux`` command: :func:`main`, then exit with its status.

    After an interruption, a step's background preparation (a model load, which
    whisper.cpp cannot abort) may still be running; job.json is already saved, so the
    process exits at once instead of waiting for it.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        from infomux import pipeline

        if pipeline.background_work_pending():
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    try:
        parser = build_parser()
    except ImportError as exc:  # a broken installation: say so in one line, exit 1
        print(f"Error: infomux is not installed correctly: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    func: Any = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        print("infomux: error: a command is required", file=sys.stderr)
        return EXIT_USAGE
    level = verbosity(args)
    setup_logging(level)
    previous = signal.getsignal(signal.SIGTERM)
    in_main_thread = _is_main_thread()
    if in_main_thread:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"infomux {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILURE
    except Exception as exc:
        from infomux.errors import TranscriptionCancelled

        report_error(exc, verbose=level > 0)
        return EXIT_INTERRUPTED if isinstance(exc, TranscriptionCancelled) else EXIT_FAILURE
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _silence_stdout()


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the final flush can't fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
