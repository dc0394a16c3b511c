"""``infomux doctor``: check the installation (versions, engine, model)."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from typing import Any

from infomux.commands import error_message, verbosity_parent


def add_parser(subparsers: Any) -> None:
    """Add the ``doctor`` sub-command."""
    parser = subparsers.add_parser(
        "doctor",
        parents=[verbosity_parent()],
        help="check versions, the native engine and the model",
        description="Print versions and check that the engine and the model load (exit 1 if not).",
    )
    parser.add_argument("--model", metavar="M", help="model to check (default: the configured one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the checks; 0 if everything needed works, 1 otherwise."""
    from infomux import _version, config

    ok = True

    def line(name: str, value: object) -> None:
        print(f"{name + ':':<16}{value}")

    def fail(name: str, exc: BaseException) -> None:
        nonlocal ok
        ok = False
        line(name, f"FAILED: {error_message(exc)}")

    line("infomux", _version.__version__)
    line("python", f"{platform.python_version()} ({sys.executable})")
    line("platform", f"{platform.system()} {platform.release()} {platform.machine()}")
    try:
        import numpy

        line("numpy", numpy.__version__)
    except ImportError as exc:
        fail("numpy", exc)
    try:
        import av

        line("PyAV", av.__version__)
        line("FFmpeg", getattr(av, "ffmpeg_version_info", "?"))
    except ImportError as exc:
        fail("PyAV", exc)
    try:
        from infomux import engine

        info = engine.build_info()
        for key, value in info.items():
            if isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            line(f"engine.{key}", value)
    except Exception as exc:
        fail("engine", exc)
    line("data dir", config.data_dir())
    line("runs dir", config.runs_dir())
    line("models dir", config.models_dir())
    cfg_path = config.config_path()
    line("config file", f"{cfg_path} ({'found' if cfg_path.is_file() else 'not found'})")
    try:
        cfg = config.load_config()
    except ValueError as exc:
        fail("config", exc)
        cfg = config.Config()
    spec = config.model_spec(args.model, cfg)
    try:
        from infomux import engine, models

        ref = models.resolve_model(spec)
        line("model", f"{ref.name} ({ref.path}, {ref.size_bytes} bytes, sha256 {ref.sha256})")
        started = time.perf_counter()
        with engine.Model(ref.path) as model:
            multilingual = getattr(model, "is_multilingual", None)
            encoder_type = getattr(model, "encoder_type", None)
        line(
            "model load",
            f"ok in {time.perf_counter() - started:.2f} s"
            + ("" if multilingual is None else f" (multilingual: {multilingual})")
            + ("" if encoder_type is None else f" (encoder matrices: {encoder_type})"),
        )
    except Exception as exc:
        fail("model", exc)
    print("status:         " + ("ok" if ok else "problems found"))
    return 0 if ok else 1
