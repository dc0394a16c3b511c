"""``<models_dir>/.sha256-cache.json``: concurrent updates never drop each other's entries."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from infomux import config, models


def test_concurrent_hashes_are_all_remembered(model_cache_dir: Path, tmp_path: Path) -> None:
    """Several threads hash different external model files at once; every hash is kept.

    Each hash of the 78 MB model takes long enough that, without a lock around the
    table's read-modify-write, the threads read the same table and the last write wins.
    """
    source = model_cache_dir / "ggml-tiny.en.bin"
    paths = []
    for i in range(4):
        path = tmp_path / f"dir{i}" / f"ggml-copy{i}.bin"
        path.parent.mkdir()
        os.link(source, path)  # distinct paths, one inode: four entries in the table
        paths.append(path)
    barrier = threading.Barrier(len(paths))
    results: dict[Path, str] = {}
    errors: list[BaseException] = []

    def resolve(path: Path) -> None:
        try:
            barrier.wait()
            results[path] = models.resolve_model(str(path)).sha256
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=resolve, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(set(results.values())) == 1
    table = json.loads((config.models_dir() / ".sha256-cache.json").read_text())
    assert sorted(table) == sorted(str(p.resolve()) for p in paths)
