"""The per-model lock that serialises making, importing and downloading a model."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from infomux import config, storage
from infomux.errors import ModelError

logger = logging.getLogger("infomux.models")


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the exclusive lock of model ``name`` (``<models_dir>/.locks/<name>.lock``), waiting."""
    from filelock import Timeout

    locks = config.models_dir() / ".locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        lock = storage.exclusive_lock(locks / f"{name}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            logger.info("waiting for another infomux process to finish preparing %s", name)
            lock.acquire()
    except OSError as exc:
        raise ModelError(f"{locks}: cannot create the model lock ({exc.strerror or exc})") from exc
    try:
        yield
    finally:
        lock.release()
