"""Listing models: cached files, and those that can be made from the bundled weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomux import ggml
from infomux.errors import ModelError
from infomux.models.names import (
    BUNDLED_PACKAGE,
    bundled_model_dir,
    bundled_names,
    bundled_variant,
    cache_path,
    cached_names,
)
from infomux.models.sidecar import known_sha256, read_sidecar


@dataclass(frozen=True)
class ModelInfo:
    """An entry of :func:`list_models`: a cached file, or one that can be made locally."""

    name: str
    format: str  # "ggml" (a cached file) or "ct2" (bundled weights, converted on first use)
    type: str
    size_bytes: int | None
    sha256: str | None
    path: Path | None
    source: str
    cached: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {**asdict(self), "path": str(self.path) if self.path else None}


def list_models() -> list[ModelInfo]:
    """Cached models, then those that can be made from the bundled weights."""
    infos: list[ModelInfo] = []
    for name in cached_names():
        path = cache_path(name)
        side = read_sidecar(path) or {}
        try:
            header = ggml.validate_model_file(path)
            sha = known_sha256(path, name, header.weight_type)
        except ModelError as exc:
            size = path.stat().st_size if path.exists() else None
            infos.append(
                ModelInfo(name, "ggml", "invalid", size, None, path, "", True, error=str(exc))
            )
            continue
        source = str(side.get("source", "unknown"))
        infos.append(
            ModelInfo(name, "ggml", header.weight_type, header.file_size, sha, path, source, True)
        )
    src = bundled_model_dir()
    if src is not None:
        have = {i.name for i in infos}
        for name in bundled_names():
            if name not in have:
                out_type = bundled_variant(name) or "f16"
                source = f"{BUNDLED_PACKAGE} (converted on first use)"
                infos.append(ModelInfo(name, "ct2", out_type, None, None, src, source, False))
    return infos
