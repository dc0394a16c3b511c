"""Sub-commands of the ``infomux`` CLI, and what they share.

Each ``commands/<name>.py`` exposes ``add_parser(subparsers) -> None`` (which
sets ``func=run`` on its parser) and ``run(args) -> int``. Command modules are
imported when the parser is built, so they import nothing heavy at module level.
Commands (and ``cli.py``) are the only code that prints.
"""

from __future__ import annotations

import argparse
import sys
import threading
import traceback
from typing import TextIO

from infomux.errors import InfomuxError


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


def verbosity_parent() -> argparse.ArgumentParser:
    """A parent parser adding ``-q``/``-v`` to a sub-command.

    Defaults are suppressed so that flags given before the sub-command
    (``infomux -v run ...``) are not overwritten by the sub-parser.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print errors only on stderr",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="print debug logs (with whisper.cpp's) and tracebacks",
    )
    return parent


def verbosity(args: argparse.Namespace) -> int:
    """-1 for ``-q``, 0 by default, the number of ``-v`` otherwise (``-q`` wins)."""
    if getattr(args, "quiet", False):
        return -1
    return int(getattr(args, "verbose", 0) or 0)


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return number


def formats_arg(value: str) -> list[str]:
    """argparse type: a comma-separated list of transcript formats."""
    from infomux.writers import parse_formats

    try:
        return parse_formats(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_transcribe_options(parser: argparse.ArgumentParser, *, resume: bool = False) -> None:
    """Add the options a run records (model, language, threads, formats, vad, words)."""
    what = "override the recorded " if resume else ""
    parser.add_argument(
        "--model",
        metavar="M",
        help=f"{what}model: a name in the model cache or a path to a ggml file",
    )
    parser.add_argument(
        "--language",
        metavar="L",
        help=f"{what}spoken language (e.g. en, de; 'auto' to detect)",
    )
    parser.add_argument(
        "--threads", metavar="N", type=positive_int, help=f"{what}CPU threads for inference"
    )
    parser.add_argument(
        "--streams",
        metavar="K",
        type=streams_arg,
        help=f"{what}transcriptions run in parallel on one model, sharing --threads: "
        "inputs K at a time, and one long input cut at silences into K parts "
        "(default: auto, from the thread count; 1: one at a time, in one pass)",
    )
    parser.add_argument(
        "--batch-decoder",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{what}compute the decoder steps of the parallel streams in one graph "
        "(off by default: on 2 CPU cores it is slower than one stream per core; see README)",
    )
    parser.add_argument(
        "--encoder-bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{what}choice of bf16 for the encoder's f16 matrices (default: bf16 for "
        "English-only models where the CPU has AVX512-BF16, measured faster there; "
        "--no-encoder-bf16 keeps whisper.cpp's f16 math)",
    )
    parser.add_argument(
        "--formats",
        metavar="LIST",
        type=formats_arg,
        help=f"{what}transcript formats, comma-separated (txt,srt,vtt,json; default: all)",
    )
    parser.add_argument(
        "--vad",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{what}transcribe only the speech found by Silero VAD",
    )
    parser.add_argument(
        "--vad-model",
        metavar="PATH",
        help=f"{what}Silero VAD model (ggml) for --vad (default: the bundled Silero v6.2)",
    )
    parser.add_argument(
        "--beam-size", metavar="N", type=positive_int, help=f"{what}beam search width (1: greedy)"
    )
    parser.add_argument(
        "--best-of", metavar="N", type=positive_int, help=f"{what}candidates when sampling"
    )
    parser.add_argument(
        "--temperature", metavar="T", type=float, help=f"{what}sampling temperature (0: greedy)"
    )
    parser.add_argument(
        "--prompt", metavar="TEXT", help=f"{what}initial prompt (names, spelling, style)"
    )
    parser.add_argument(
        "--audio-stream",
        metavar="N",
        type=int,
        help=f"{what}audio stream to decode (0 = the first; default: the best)",
    )
    parser.add_argument(
        "--word-timestamps",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{what}word-level timings in transcript.json",
    )


def streams_arg(value: str) -> int:
    """``--streams``: a positive integer, or ``auto`` (0)."""
    if value == "auto":
        return 0
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {value!r}")
    return number


def one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(str(text).split())


def error_message(exc: BaseException) -> str:
    """A user-facing one-line message for an exception."""
    if isinstance(exc, InfomuxError):
        return one_line(str(exc))
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return one_line(f"{exc.strerror}{where}")
    return one_line(f"internal error: {type(exc).__name__}: {exc}")


# Runs going on side by side print from several threads: one whole line at a time.
OUTPUT_LOCK = threading.Lock()


def report_error(exc: BaseException, *, verbose: bool, stream: TextIO | None = None) -> None:
    """Print ``Error: <message>`` on stderr (after the traceback with ``-v``)."""
    stream = stream or sys.stderr
    with OUTPUT_LOCK:
        if verbose:
            traceback.print_exception(exc, file=stream)
        stream.write(f"Error: {error_message(exc)}\n")
        stream.flush()


def print_line(text: str) -> None:
    """Print one line on stdout and flush it (the stdout contract of run/resume)."""
    with OUTPUT_LOCK:
        sys.stdout.write(f"{text}\n")
        sys.stdout.flush()


class ProgressReporter:
    """Show a step's progress on stderr: a bar on a TTY, plain lines otherwise.

    Called as ``reporter(step, percent)`` from the engine's progress callback.
    Plain mode prints a line every 10 percent.
    """

    WIDTH = 30

    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream
        self._lock = threading.Lock()
        self._step: str | None = None
        self._last = -1
        self._bar_open = False

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def _is_tty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __call__(self, step: str, percent: int) -> None:
        if not self.enabled:
            return
        try:
            self._report(step, max(0, min(100, int(percent))))
        except (OSError, ValueError):  # stderr closed or broken: never fail the run for it
            self.enabled = False

    def _report(self, step: str, percent: int) -> None:
        with self._lock:
            if step != self._step or percent < self._last:
                self._end_bar()
                self._step, self._last = step, -1
            if percent == self._last:
                return
            if self._is_tty():
                filled = self.WIDTH * percent // 100
                bar = "#" * filled + "-" * (self.WIDTH - filled)
                self.stream.write(f"\rinfomux: {step} [{bar}] {percent:3d}%")
                self._bar_open = True
                if percent == 100:
                    self._end_bar()
                self.stream.flush()
            elif percent // 10 > max(self._last, 0) // 10 or (percent == 100 and self._last < 100):
                self.stream.write(f"infomux: {step}: {percent}%\n")
                self.stream.flush()
            self._last = percent

    def _end_bar(self) -> None:
        if self._bar_open:
            self._bar_open = False
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                self.enabled = False

    def close(self) -> None:
        """End an unfinished bar line and forget the current step."""
        with self._lock:
            self._end_bar()
            self._step, self._last = None, -1
