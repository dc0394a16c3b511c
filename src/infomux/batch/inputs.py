"""A batch's inputs: files, directories (walked, media found by probing) and manifests.

:func:`collect` turns what the user named into :class:`BatchItem` s, in order: a file is
taken as it is (it fails its own run if it is not media); a directory is walked
recursively in sorted order, hidden entries left out, and each file in it is probed with
PyAV (:func:`probe`): one with an audio stream is taken, one that is clearly not media
(empty, text, no audio stream, or a file FFmpeg cannot open whose name is not a media
type) is skipped with the reason; a file with a media name that FFmpeg cannot open is
damaged media and is taken, so that its run fails and says why. A manifest (``--manifest``)
lists one path per line (``#`` comments and blank lines ignored) or, on lines starting
with ``{``, JSON objects ``{"path": ..., <run option>: ...}`` with options for that file
(:data:`MANIFEST_OPTIONS`); relative paths are relative to the manifest. The same file
named twice is taken once.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infomux.errors import InfomuxError

log = logging.getLogger("infomux.batch.inputs")

MANIFEST_OPTIONS = frozenset(
    {
        "language",
        "prompt",
        "translate",
        "beam_size",
        "best_of",
        "temperature",
        "audio_stream",
        "vad",
        "vad_model",
        "word_timestamps",
        "formats",
    }
)
"""Run options a manifest line may set for its file (the rest are the batch's own)."""

TEXT_SNIFF_BYTES = 4096


class ManifestError(InfomuxError):
    """A manifest cannot be read, or a line of it is wrong (file and line named)."""


@dataclass
class BatchItem:
    """One input of a batch.

    Attributes:
        path: the input (absolute).
        options: run options for this file only (from a manifest line).
        skipped: why the file is not processed (None: it is).
        audio_seconds: its duration as probed (None when unknown).
        origin: where it came from: ``argument``, ``directory DIR``, ``manifest FILE:LINE``.
    """

    path: str
    options: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    audio_seconds: float | None = None
    origin: str = "argument"


@dataclass(frozen=True)
class Probe:
    """What probing a file found: whether it has audio, its duration, or why not media."""

    audio: bool
    duration: float | None = None
    problem: str | None = None  # why it cannot be opened or has no audio
    damaged: bool = False  # a media name that FFmpeg cannot open: process it, let it fail


def probe(path: Path) -> Probe:
    """Open ``path`` with PyAV (headers only) and say whether it is media with audio."""
    import av

    try:
        size = path.stat().st_size
    except OSError as exc:
        return Probe(False, problem=f"cannot read: {exc.strerror or exc}")
    if size == 0:
        return Probe(False, problem="empty file")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            audio = [s for s in container.streams if s.type == "audio"]
            duration = container.duration / 1_000_000 if container.duration else None
            if not audio:
                return Probe(False, duration, problem="no audio stream")
            return Probe(True, duration)
    except Exception as exc:  # PyAV/FFmpeg: not media, or damaged media
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if _looks_like_text(path):
            return Probe(False, problem="a text file, not media")
        if _media_name(path):
            return Probe(False, problem=f"damaged media: {reason}", damaged=True)
        return Probe(False, problem=f"not media ({reason})")


def _looks_like_text(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(TEXT_SNIFF_BYTES)
    except OSError:
        return False
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the end of the sniff
    return True


def _media_name(path: Path) -> bool:
    kind, _ = mimetypes.guess_type(path.name)
    return bool(kind) and kind.split("/")[0] in ("audio", "video")  # type: ignore[union-attr]


def _walk(directory: Path) -> Iterator[Path]:
    """Files under ``directory``, recursively, sorted, hidden entries left out."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def read_manifest(path: str | os.PathLike[str]) -> list[BatchItem]:
    """The items a manifest lists (paths made absolute against its directory).

    Raises:
        ManifestError: unreadable file, bad JSON, no ``path``, an unknown option.
    """
    manifest = Path(path)
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ManifestError(f"cannot read manifest {manifest}: {reason}") from None
    base = manifest.absolute().parent
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{manifest}:{number}"
        options: dict[str, Any] = {}
        if entry.startswith("{"):
            try:
                data = json.loads(entry)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not valid JSON: {exc.msg}") from None
            raw = data.pop("path", None) if isinstance(data, dict) else None
            if not isinstance(raw, str) or not raw:
                raise ManifestError(f'{where}: a JSON line needs "path" (a string)')
            unknown = sorted(set(data) - MANIFEST_OPTIONS)
            if unknown:
                allowed = ", ".join(sorted(MANIFEST_OPTIONS))
                raise ManifestError(f"{where}: unknown option {unknown[0]!r} (allowed: {allowed})")
            options, entry = data, raw
        file = Path(entry).expanduser()
        items.append(
            BatchItem(str(base / file if not file.is_absolute() else file), options, origin=where)
        )
    return items


def collect(
    paths: Iterable[str | os.PathLike[str]],
    manifest: str | os.PathLike[str] | None = None,
) -> list[BatchItem]:
    """Every input of a batch, in order: ``paths`` (files and directories), then the
    manifest's lines. A path that does not exist is an error, not a skipped item.

    Raises:
        FileNotFoundError: a named path does not exist.
        ManifestError: see :func:`read_manifest`.
    """
    items: list[BatchItem] = []
    for raw in paths:
        path = Path(raw).expanduser().absolute()
        if path.is_dir():
            found = 0
            for file in _walk(path):
                items.append(_probed(file, origin=f"directory {path}"))
                found += 1
            if not found:
                log.warning("%s: no files in this directory", path)
        elif path.exists():
            items.append(_probed(path, origin="argument", take=True))
        else:
            raise FileNotFoundError(2, "no such file or directory", str(raw))
    if manifest is not None:
        for item in read_manifest(manifest):
            probed = _probed(Path(item.path), origin=item.origin, take=True)
            probed.options = item.options
            items.append(probed)
    return _unique(items)


def _probed(path: Path, *, origin: str, take: bool = False) -> BatchItem:
    """An item for ``path``, probed; ``take``: a file named by the user is processed
    whatever the probe says (its run fails if it is not media)."""
    found = probe(path)
    skipped = None if take or found.audio or found.damaged else found.problem
    if skipped:
        log.debug("skipping %s: %s", path, skipped)
    return BatchItem(str(path), skipped=skipped, audio_seconds=found.duration, origin=origin)


def _unique(items: list[BatchItem]) -> list[BatchItem]:
    seen: set[str] = set()
    result = []
    for item in items:
        key = os.path.realpath(item.path)
        if key in seen:
            log.info("%s is listed more than once; processing it once", item.path)
            continue
        seen.add(key)
        result.append(item)
    return result
