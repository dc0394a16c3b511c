"""Resolving a model spec (name, path or the default) to a validated :class:`ModelRef`.

Names made from the bundled weights are converted on first use, under the model's
lock; :func:`import_model` converts any CTranslate2 Whisper directory into the cache.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomux import config, ggml
from infomux.errors import ModelError, ModelNotFoundError
from infomux.ggml import ProgressFn
from infomux.models.locking import locked
from infomux.models.names import (
    BUNDLED_MODEL,
    BUNDLED_PACKAGE,
    DEFAULT_MODEL,
    INSTALL_HINT,
    OFFICIAL_SHA1,
    bundled_model_dir,
    bundled_names,
    bundled_variant,
    cache_path,
    cached_names,
    check_name,
)
from infomux.models.sidecar import external_sha256, known_sha256, record

logger = logging.getLogger("infomux.models")


@dataclass(frozen=True)
class ModelRef:
    """A resolved, validated ggml model file."""

    name: str
    path: Path
    sha256: str
    size_bytes: int
    type: str  # weight type: f16, q8_0, ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (path as a string)."""
        return {**asdict(self), "path": str(self.path)}


def model_ref(name: str, path: Path, header: ggml.GgmlHeader, sha256: str) -> ModelRef:
    """A :class:`ModelRef` from a validated header and a known sha256."""
    return ModelRef(name, path, sha256, header.file_size, header.weight_type)


def log_progress(label: str) -> ProgressFn:
    """A progress callback that logs every 25 %."""
    state = {"next": 0}

    def report(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent >= state["next"]:
            logger.info("preparing model %s: %d%%", label, percent)
            state["next"] = percent // 25 * 25 + 25

    return report


def make_bundled(name: str, out_type: str, path: Path) -> None:
    """Convert the bundled weights into ``path`` (caller holds the lock)."""
    from infomux.convert import convert_ct2_to_ggml

    src = bundled_model_dir()
    if src is None:
        raise ModelNotFoundError(
            f"model '{name}' is made from the bundled tiny.en weights, which are not "
            f"installed: {INSTALL_HINT}, or pass --model with a ggml file or model name"
        )
    logger.info("converting the bundled %s weights to %s (once)", BUNDLED_MODEL, path)
    started = time.monotonic()
    convert_ct2_to_ggml(src, path, out_type=out_type, progress=log_progress(name))
    record(path, name, out_type, f"{BUNDLED_PACKAGE}:{src}")
    logger.info("model %s ready in %.1f s", name, time.monotonic() - started)


def cached_model(name: str) -> ModelRef:
    """The validated :class:`ModelRef` of cache entry ``name`` (raises if it is not valid)."""
    path = cache_path(name)
    header = ggml.validate_model_file(path)
    return model_ref(name, path, header, known_sha256(path, name, header.weight_type))


def _resolve_name(name: str) -> ModelRef:
    path = cache_path(name)
    out_type = bundled_variant(name)
    if path.is_file():
        try:
            return cached_model(name)
        except ModelError as exc:
            if out_type is None or isinstance(exc, ModelNotFoundError):
                raise
            logger.warning("%s; converting it again", exc)
    elif out_type is None:
        raise ModelNotFoundError(_unknown_name_message(name))
    with locked(name):
        try:  # another process may have made it while we waited
            return cached_model(name)
        except ModelError:
            pass
        make_bundled(name, out_type, path)
    return cached_model(name)


def _unknown_name_message(name: str) -> str:
    available = sorted({*cached_names(), *(bundled_names() if bundled_model_dir() else [])})
    message = f"no model named '{name}' in {config.models_dir()}"
    message += f"; available: {', '.join(available)}" if available else "; none available"
    if name in OFFICIAL_SHA1:
        message += f" (download it with 'infomux models pull {name}')"
    return message + "; or pass a path to a ggml model file"


def _name_from_path(path: Path) -> str:
    stem = path.name.removesuffix(".bin")
    return stem.removeprefix("ggml-") or stem


def _resolve_path(path: Path) -> ModelRef:
    path = path.expanduser().absolute()
    if path.is_dir():
        raise ModelNotFoundError(
            f"{path}: is a directory, not a ggml model file (to use a CTranslate2 model "
            f"directory, run 'infomux models import {path}')"
        )
    header = ggml.validate_model_file(path)
    name = _name_from_path(path)
    try:
        in_cache = path.resolve().parent == config.models_dir().resolve()
    except OSError:
        in_cache = False
    sha = known_sha256(path, name, header.weight_type) if in_cache else external_sha256(path)
    return model_ref(name, path, header, sha)


def resolve_model(spec: str | os.PathLike[str] | None) -> ModelRef:
    """Turn a model spec into a validated :class:`ModelRef`.

    ``None`` means :data:`DEFAULT_MODEL`. A path (anything with a ``/``, ending in
    ``.bin``, or an existing file: :func:`config.is_model_path`) is validated and
    recorded as an absolute path. Otherwise ``spec``
    is a name in the cache (``ggml-<name>.bin``); names made from the bundled
    weights (``tiny.en``, ``tiny.en-q8_0``, ...) are converted on first use.

    Raises:
        ModelNotFoundError: no such file or name (the message lists what exists),
            or the bundled weights are needed but not installed.
        ModelError: the file is not a valid whisper ggml model.
    """
    if spec is None:
        return _resolve_name(DEFAULT_MODEL)
    if isinstance(spec, os.PathLike):
        return _resolve_path(Path(spec))
    spec = spec.strip()
    if not spec:
        return _resolve_name(DEFAULT_MODEL)
    if config.is_model_path(spec):
        return _resolve_path(Path(spec))
    return _resolve_name(check_name(spec))


def model_path(name: str) -> Path:
    """Path of the ggml file for model ``name`` (made on first use if it can be)."""
    return resolve_model(name).path


def import_model(
    src_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    out_type: str = "f16",
    progress: ProgressFn | None = None,
) -> ModelRef:
    """Convert a CTranslate2 Whisper directory into the cache as ``ggml-<name>.bin``.

    ``name`` defaults to the directory's name (plus ``-<type>`` for quantized output).
    An existing model of that name is replaced.
    """
    from infomux.convert import convert_ct2_to_ggml

    src = Path(src_dir).expanduser()
    if name is None:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", src.resolve().name).strip("-.") or "model"
        name = base if out_type == "f16" else f"{base}-{out_type}"
    path = cache_path(name)
    with locked(name):
        convert_ct2_to_ggml(src, path, out_type=out_type, progress=progress or log_progress(name))
        record(path, name, out_type, str(src.resolve()))
    return cached_model(name)
