"""Where infomux keeps things, and how a model is chosen.

Data directory, in order: ``INFOMUX_DATA_DIR``; ``$XDG_DATA_HOME/infomux``;
``~/.local/share/infomux``. Runs live in ``<data>/runs/<run-id>/``, models in
``<data>/models/``.

Config file, in order: ``INFOMUX_CONFIG``; ``$XDG_CONFIG_HOME/infomux/config.toml``;
``~/.config/infomux/config.toml``. Keys (all optional)::

    model = "tiny.en"        # name in the model cache, or a path to a ggml file
    threads = 4
    language = "en"

Model choice, first that is set wins: ``--model`` on the command line,
``INFOMUX_WHISPER_MODEL``, ``model`` in the config file, the default model.
A model given as a path is made absolute (a relative path in the config file is
relative to the config file's directory; elsewhere, to the current directory),
so what a run records still names the same file from any directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_DATA_DIR = "INFOMUX_DATA_DIR"
ENV_CONFIG = "INFOMUX_CONFIG"
ENV_MODEL = "INFOMUX_WHISPER_MODEL"


def data_dir() -> Path:
    """Return the data directory (not created)."""
    explicit = os.environ.get(ENV_DATA_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "infomux"


def runs_dir() -> Path:
    """Return the directory holding one sub-directory per run (not created)."""
    return data_dir() / "runs"


def models_dir() -> Path:
    """Return the model cache directory (not created)."""
    return data_dir() / "models"


def config_path() -> Path:
    """Return the path of the config file (which may not exist)."""
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "infomux" / "config.toml"


@dataclass(frozen=True)
class Config:
    """Settings read from the config file; ``None`` means not set."""

    model: str | None = None
    threads: int | None = None
    language: str | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_config(path: Path | None = None) -> Config:
    """Read the config file; a missing file gives an empty :class:`Config`.

    Raises:
        ValueError: the file exists but is not valid TOML or has wrong types.
    """
    path = path or config_path()
    if not path.is_file():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path}: {exc}") from exc
    model = raw.pop("model", None)
    threads = raw.pop("threads", None)
    language = raw.pop("language", None)
    if model is not None and not isinstance(model, str):
        raise ValueError(f"config file {path}: 'model' must be a string")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"config file {path}: 'threads' must be a positive integer")
    if language is not None and not isinstance(language, str):
        raise ValueError(f"config file {path}: 'language' must be a string")
    return Config(model=model, threads=threads, language=language, path=path, extra=raw)


def looks_like_path(value: str) -> bool:
    """Whether a user's value names a file-system path rather than a name.

    True when it contains a path separator or starts with ``.`` or ``~``.
    """
    separators = {os.sep, "/", *([os.altsep] if os.altsep else [])}
    return any(sep in value for sep in separators) or value.startswith((".", "~"))


def is_model_path(spec: str, base: Path | None = None) -> bool:
    """Whether a model spec is a path to a file rather than a name in the model cache.

    A path has a separator or starts with ``.``/``~`` (:func:`looks_like_path`), ends in
    ``.bin``, or names an existing file (relative to ``base``, else the current directory).
    """
    if looks_like_path(spec) or spec.endswith(".bin"):
        return True
    return ((base / spec) if base is not None else Path(spec)).is_file()


def absolute_model_spec(spec: str | None, base: Path | None = None) -> str | None:
    """Return ``spec`` with a model path made absolute; names (and ``None``) unchanged.

    A relative path is taken relative to ``base`` (default: the current directory);
    ``~`` is expanded.
    """
    if spec is None or not spec.strip():
        return spec
    text = spec.strip()
    if not is_model_path(text, base):
        return spec
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return str(path.absolute())


def model_spec(cli_value: str | None = None, config: Config | None = None) -> str | None:
    """Return the model the user asked for (name or absolute path), or ``None`` for the default.

    A relative path from the command line or ``INFOMUX_WHISPER_MODEL`` is made
    absolute against the current directory; one from the config file against the
    config file's directory.
    """
    if cli_value:
        return absolute_model_spec(cli_value)
    env = os.environ.get(ENV_MODEL)
    if env:
        return absolute_model_spec(env)
    config = config if config is not None else load_config()
    base = config.path.parent if config.path is not None else None
    return absolute_model_spec(config.model, base)
