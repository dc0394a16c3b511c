"""infomux: local-first, auditable media pipeline.

Library use::

    import infomux
    transcript = infomux.transcribe("talk.mp4", language="en")
    print(transcript.text)
    samples = infomux.load_audio("talk.mp4")   # float32, 16 kHz mono

``import infomux`` is cheap: numpy, PyAV and the native engine are imported the
first time something needs them (module-level ``__getattr__``).
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import TYPE_CHECKING, Any

from infomux._version import __version__
from infomux.errors import (
    AudioDecodeError,
    EngineError,
    InfomuxError,
    ModelError,
    ModelNotFoundError,
    TranscriptionCancelled,
)

if TYPE_CHECKING:
    import numpy as np

    from infomux.engine import Model, Segment, TranscribeOptions, Transcript, Word

__all__ = [
    "AudioDecodeError",
    "EngineError",
    "InfomuxError",
    "Model",
    "ModelError",
    "ModelNotFoundError",
    "Segment",
    "TranscribeOptions",
    "Transcript",
    "TranscriptionCancelled",
    "Word",
    "__version__",
    "load_audio",
    "transcribe",
]

_LAZY = {
    "Model": "infomux.engine",
    "TranscribeOptions": "infomux.engine",
    "Transcript": "infomux.engine",
    "Segment": "infomux.engine",
    "Word": "infomux.engine",
}

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'infomux' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode any media file's (first) audio stream to float32 16 kHz mono samples.

    Raises:
        AudioFileNotFoundError: the file does not exist.
        AudioDecodeError: it cannot be decoded or has no audio stream.
    """
    from infomux import audio

    return audio.load_audio(path)


def _model(model: Any) -> Any:
    """A loaded engine Model from None (default), a name, a path, or a Model."""
    from infomux import engine

    if isinstance(model, engine.Model):
        return model
    if model is not None and not isinstance(model, str | os.PathLike):
        raise TypeError(f"model must be None, a name, a path or an infomux.Model, not {model!r}")
    from infomux import models

    ref = models.resolve_model(model)
    key = str(ref.path)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            loaded = engine.Model(ref.path)
            _models[key] = loaded
    return loaded


def transcribe(path_or_array: Any, *, model: Any = None, **options: Any) -> Transcript:
    """Transcribe a media file or a float32 16 kHz mono array.

    Args:
        path_or_array: a media file path, or samples (1-D float32, 16 kHz mono).
        model: ``None`` (the default model), a model name or ggml path, or a loaded
            :class:`infomux.Model`. Models loaded from a name/path are cached.
        **options: fields of :class:`infomux.TranscribeOptions` (``language``,
            ``n_threads``, ``word_timestamps``, ...).

    Raises:
        TypeError: an unknown option.
        AudioDecodeError, ModelError, EngineError: the audio, model or engine failed.
    """
    from infomux import engine

    opts = engine.TranscribeOptions(**options)
    if isinstance(path_or_array, str | os.PathLike):
        samples = load_audio(path_or_array)
    else:
        samples = path_or_array
    return _model(model).transcribe(samples, opts)
