"""Exception hierarchy of infomux.

Every error infomux raises on purpose derives from :class:`InfomuxError`. Where a
built-in exception is the natural reading, the infomux error is also that
built-in (PyAV's habit), so ``except ValueError`` keeps working for callers
that do not know infomux.
"""

from __future__ import annotations


class InfomuxError(Exception):
    """Base class of all infomux errors."""


class AudioDecodeError(InfomuxError, ValueError):
    """A media file could not be decoded to audio (not media, no audio stream, corrupt, ...)."""


class AudioFileNotFoundError(AudioDecodeError, FileNotFoundError):
    """The media file does not exist (or is not a regular file)."""


class ModelError(InfomuxError, ValueError):
    """A model file or directory is missing, malformed or not usable."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model name or path could not be resolved to an existing file."""


class EngineError(InfomuxError, RuntimeError):
    """whisper.cpp failed while transcribing."""


class TranscriptionCancelled(InfomuxError):
    """Inference was stopped by a cancel request before it finished."""


class StepError(InfomuxError):
    """A pipeline step failed; carries the step's name for the audit trail."""

    def __init__(self, step_name: str, message: str) -> None:
        super().__init__(f"{step_name}: {message}")
        self.step_name = step_name
        self.message = message


class RunNotFoundError(InfomuxError, LookupError):
    """A run id, prefix or path does not name a run in the runs directory."""
