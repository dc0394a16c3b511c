"""Where infomux keeps things, and how a model is chosen.

Data directory, in order: ``INFOMUX_DATA_DIR``; ``$XDG_DATA_HOME/infomux``;
``~/.local/share/infomux``. Runs live in ``<data>/runs/<run-id>/``, models in
``<data>/models/``.

Config file, in order: ``INFOMUX_CONFIG``; ``$XDG_CONFIG_HOME/infomux/config.toml``;
``~/.config/infomux/config.toml``. Keys (all optional; any other key is an error
naming it, see :data:`RUN_KEYS` and :data:`TABLES`)::

    model = "tiny.en"        # name in the model cache, or a path to a ggml file
    threads = 4
    language = "en"
    # every other option of ``infomux run`` that a run records, e.g.
    formats = ["txt", "srt"]  # or "txt,srt"
    beam_size = 5
    output_dir = "~/transcripts"
    [subtitles]
    max_line_chars = 37

``--print``, ``--steps`` and ``--dry-run`` are per invocation, not settable here: without
them stdout stays exactly the run directory, whatever the config file says.

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
    """Settings read from the config file; ``None`` means not set.

    ``extra`` holds the other known keys (:data:`RUN_KEYS` and :data:`TABLES`), checked;
    a path (``vad_model``, ``output_dir``, ``pipeline_file``) made absolute against the
    config file's directory.
    """

    model: str | None = None
    threads: int | None = None
    language: str | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_formats(value: Any) -> bool:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return isinstance(value, list) and all(isinstance(v, str) for v in value) and bool(value)


RUN_KEYS: dict[str, tuple[str, Any]] = {
    # key: (what it must be, check)
    "model": ("a string", lambda v: isinstance(v, str)),
    "threads": ("a positive integer", lambda v: _is_int(v, 1)),
    "language": ("a string", lambda v: isinstance(v, str)),
    "streams": ("a positive integer or 'auto'", lambda v: v == "auto" or _is_int(v, 1)),
    "formats": ("a list of formats (or 'txt,srt')", _is_formats),
    "vad": ("true or false", lambda v: isinstance(v, bool)),
    "vad_model": ("a string (a path)", lambda v: isinstance(v, str)),
    "word_timestamps": ("true or false", lambda v: isinstance(v, bool)),
    "translate": ("true or false", lambda v: isinstance(v, bool)),
    "beam_size": ("a positive integer", lambda v: _is_int(v, 1)),
    "best_of": ("a positive integer", lambda v: _is_int(v, 1)),
    "temperature": ("a number", _is_number),
    "prompt": ("a string", lambda v: isinstance(v, str)),
    "audio_stream": ("an integer >= 0", lambda v: _is_int(v, 0)),
    "keep_audio": ("true or false", lambda v: isinstance(v, bool)),
    "encoder_bf16": ("true or false", lambda v: isinstance(v, bool)),
    "output_dir": ("a string (a directory)", lambda v: isinstance(v, str) and bool(v.strip())),
    "pipeline": ("a string (a pipeline name)", lambda v: isinstance(v, str) and bool(v)),
    "pipeline_file": ("a string (a path)", lambda v: isinstance(v, str) and bool(v.strip())),
}
"""The config file's top-level keys: the options ``infomux run`` records. A new run
option settable in the config file is added here (and read in ``commands/run.py``)."""

TABLES: dict[str, str] = {
    "subtitles": "subtitle layout: layout, max_line_chars, max_lines, ... (checked by the run)",
    "summarize": "the summarize step: provider, model, ollama_url, openai_base_url, api_key, "
    "allow_remote, temperature, top_p, seed, context, max_tokens, timeout (checked by the step)",
}
"""The config file's tables (``[name]``); their keys are checked by their users."""

CLI_ONLY_KEYS: dict[str, str] = {
    "print": "stdout stays the run directory unless --print is given on the command line",
    "dry_run": "it is a per-invocation flag (--dry-run)",
    "steps": "it is a per-invocation flag (--steps)",
}
"""Run flags deliberately not settable in the config file, and why."""

_PATH_KEYS = ("vad_model", "output_dir", "pipeline_file")


def check_keys(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check every key of a parsed config file; return them with paths made absolute.

    Raises:
        ValueError: an unknown key (named), a per-invocation flag, or a wrong type.
    """
    for key, value in raw.items():
        if key in CLI_ONLY_KEYS:
            raise ValueError(
                f"config file {path}: {key!r} cannot be set in the config file "
                f"({CLI_ONLY_KEYS[key]})"
            )
        if key in TABLES:
            if not isinstance(value, dict):
                raise ValueError(f"config file {path}: {key!r} must be a table ([{key}])")
            continue
        if key not in RUN_KEYS:
            known = ", ".join(sorted([*RUN_KEYS, *(f"[{t}]" for t in TABLES)]))
            raise ValueError(f"config file {path}: unknown key {key!r} (known: {known})")
        what, check = RUN_KEYS[key]
        if not check(value):
            raise ValueError(f"config file {path}: {key!r} must be {what}")
    checked = dict(raw)
    for key in _PATH_KEYS:
        if key in checked:
            target = Path(checked[key].strip()).expanduser()
            checked[key] = str(target if target.is_absolute() else (path.parent / target))
    if isinstance(checked.get("formats"), str):
        checked["formats"] = [v.strip() for v in checked["formats"].split(",") if v.strip()]
    if checked.get("streams") == "auto":
        checked["streams"] = 0
    if "temperature" in checked:
        checked["temperature"] = float(checked["temperature"])
    return checked


def load_config(path: Path | None = None) -> Config:
    """Read the config file; a missing file gives an empty :class:`Config`.

    Raises:
        ValueError: the file exists but is not valid TOML, has a key that is not
            known (the message names it) or a value of the wrong type.
    """
    path = path or config_path()
    if not path.is_file():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path}: {exc}") from exc
    raw = check_keys(raw, path)
    model = raw.pop("model", None)
    threads = raw.pop("threads", None)
    language = raw.pop("language", None)
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
