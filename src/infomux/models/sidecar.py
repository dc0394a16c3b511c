"""Sidecars (``ggml-<name>.bin.json``) and remembered hashes: hash a model file once.

A cached model's sidecar records name, type, sha256, size, mtime and source; while
size and mtime match, the recorded sha256 is trusted. Files outside the cache are
remembered in ``<models_dir>/.sha256-cache.json`` (updated under a lock).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from infomux import config, storage
from infomux.errors import ModelError
from infomux.models.locking import locked

logger = logging.getLogger("infomux.models")


def sidecar_path(path: Path) -> Path:
    """The sidecar of a model file: ``<file>.json``."""
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar's data, or None when it is missing or unreadable."""
    try:
        data = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record(
    path: Path, name: str, type_: str, source: str, sha256: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Write the sidecar of ``path`` (hashing it unless ``sha256`` is given); return its data."""
    st = path.stat()
    data = {
        "name": name,
        "format": "ggml",
        "type": type_,
        "sha256": sha256 or storage.sha256_file(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "source": source,
        **extra,
    }
    try:
        storage.atomic_write_json(sidecar_path(path), data)
    except OSError as exc:
        logger.warning("cannot write %s: %s", sidecar_path(path), exc)
    return data


def known_sha256(path: Path, name: str, type_: str) -> str:
    """sha256 of a file in the cache: from its sidecar while size+mtime match, else hashed."""
    st = path.stat()
    side = read_sidecar(path)
    if (
        side is not None
        and side.get("size") == st.st_size
        and side.get("mtime_ns") == st.st_mtime_ns
        and isinstance(side.get("sha256"), str)
    ):
        return str(side["sha256"])
    logger.info("hashing %s", path)
    source = str(side.get("source", "unknown")) if side else "unknown"
    return str(record(path, name, type_, source)["sha256"])


_HASH_CACHE = ".sha256-cache.json"


def _read_hash_table(store: Path) -> dict[str, Any]:
    try:
        table = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def external_sha256(path: Path) -> str:
    """sha256 of a file outside the cache, remembered in ``<models_dir>/.sha256-cache.json``.

    The file is hashed without any lock; the table is then re-read, updated and
    written under a lock, so concurrent processes never drop each other's entries.
    """
    st = path.stat()
    key = str(path.resolve())
    store = config.models_dir() / _HASH_CACHE
    entry = _read_hash_table(store).get(key)
    if (
        isinstance(entry, dict)
        and entry.get("size") == st.st_size
        and entry.get("mtime_ns") == st.st_mtime_ns
    ):
        return str(entry["sha256"])
    logger.info("hashing %s", path)
    digest = storage.sha256_file(path)
    try:
        with locked(_HASH_CACHE):
            table = _read_hash_table(store)
            table[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            storage.atomic_write_json(store, table)
    except (OSError, ModelError) as exc:
        logger.debug("cannot remember the hash of %s: %s", path, exc)
    return digest
