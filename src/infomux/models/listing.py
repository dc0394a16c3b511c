"""Listing models: cached files, and those that can be made from the bundled weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomux import ggml
from infomux.errors import ModelError
from infomux.models.names import (
    cache_path,
    cached_names,
    installed_packaged_models,
    packaged_names,
    packaged_variant,
)
from infomux.models.sidecar import known_sha256, read_sidecar


@dataclass(frozen=True)
class ModelInfo:
    """An entry of :func:`list_models`: a cached file, or one that can be made locally."""

    name: str
    format: str  # "ggml" (a cached file) or "ct2" (packaged weights, converted on first use)
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
    """Cached models, then those that can be made from installed packages (tiny.en, base)."""
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
    have = {i.name for i in infos}
    for model in installed_packaged_models():
        located = model.locate()
        assert located is not None
        src, parts = located
        where = parts.paths[0] if parts else src
        for name in packaged_names(model):
            if name not in have:
                found = packaged_variant(name)
                out_type = found[1] if found else "f16"
                source = f"{model.source} (converted on first use)"
                infos.append(ModelInfo(name, "ct2", out_type, None, None, where, source, False))
    return infos
