"""The library API in infomux/__init__.py: cheap import, lazy names, transcribe/load_audio."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import infomux
from tests.wer import wer


def test_import_is_cheap() -> None:
    code = textwrap.dedent(
        """
        import sys, infomux
        print([m for m in ("numpy", "av", "infomux._whisper", "infomux.engine", "infomux.audio")
               if m in sys.modules])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_all_and_version() -> None:
    from infomux._version import __version__

    assert infomux.__version__ == __version__
    for name in (
        "__version__",
        "transcribe",
        "load_audio",
        "Model",
        "TranscribeOptions",
        "Transcript",
        "Segment",
        "Word",
        "InfomuxError",
    ):
        assert name in infomux.__all__
    for name in infomux.__all__:
        assert getattr(infomux, name) is not None
    assert set(infomux.__all__) <= set(dir(infomux))


def test_lazy_names_are_the_engine_classes() -> None:
    from infomux import engine

    assert infomux.Model is engine.Model
    assert infomux.TranscribeOptions is engine.TranscribeOptions
    assert infomux.Transcript is engine.Transcript
    assert infomux.Segment is engine.Segment
    assert infomux.Word is engine.Word
    with pytest.raises(AttributeError):
        infomux.no_such_thing  # noqa: B018


def test_errors_are_exported() -> None:
    from infomux import errors

    assert infomux.InfomuxError is errors.InfomuxError
    assert issubclass(infomux.AudioDecodeError, infomux.InfomuxError)


def test_load_audio(media_dir: Path) -> None:
    import numpy as np

    samples = infomux.load_audio(media_dir / "speech_a.wav")
    assert samples.dtype == np.float32 and samples.ndim == 1 and samples.size > 16000
    with pytest.raises(infomux.AudioDecodeError):
        infomux.load_audio(media_dir / "not_media.mp3")
    with pytest.raises(FileNotFoundError):
        infomux.load_audio(media_dir / "missing.wav")


def test_transcribe_rejects_unknown_options_and_models(media_dir: Path) -> None:
    with pytest.raises(TypeError):
        infomux.transcribe(media_dir / "speech_a.wav", bogus_option=1)
    with pytest.raises(TypeError):
        infomux.transcribe(media_dir / "speech_a.wav", model=42)


@pytest.mark.model
def test_transcribe_path_array_and_model_forms(
    real_model: Any, media_dir: Path, references: dict[str, Any]
) -> None:
    result = infomux.transcribe(media_dir / "speech_a.wav", n_threads=2)
    assert isinstance(result, infomux.Transcript)
    assert wer(references["speech_a.wav"], result.text) < 0.25
    samples = infomux.load_audio(media_dir / "speech_a.wav")
    again = infomux.transcribe(samples, model=str(real_model.path), language="en")
    assert again.text == result.text
    with infomux.Model(real_model.path) as model:
        third = infomux.transcribe(samples, model=model, word_timestamps=True)
    assert any(s.words for s in third.segments)
    with pytest.raises(infomux.ModelError):
        infomux.transcribe(samples, model="/nonexistent/model.bin")
