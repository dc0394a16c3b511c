"""Downloading official whisper.cpp models: resumable, checked against pinned checksums."""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from infomux import ggml, storage
from infomux.errors import ModelError
from infomux.ggml import ProgressFn
from infomux.models.locking import locked
from infomux.models.names import OFFICIAL_SHA1, cache_path, check_name, model_url
from infomux.models.resolve import ModelRef, cached_model, log_progress, model_ref
from infomux.models.sidecar import record

logger = logging.getLogger("infomux.models")

_CHUNK = 1 << 20


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
    with locked(name):
        if path.is_file() and not force:
            logger.info("model %s is already in the cache", name)
            return cached_model(name)
        part = path.with_name(path.name + ".part")
        logger.info("downloading %s", url)
        _download(url, part, progress or log_progress(name))
        sha256 = _verify(part, name, expected_sha256, pinned)
        os.replace(part, path)
        header = ggml.validate_model_file(path)
        extra = {"sha1": pinned} if expected_sha256 is None else {}
        record(path, name, header.weight_type, url, sha256, **extra)
    logger.info("model %s saved to %s", name, path)
    return model_ref(name, path, header, sha256)
