"""Inputs that are streams: standard input (``-``), ``http(s)://`` URLs, pipes and FIFOs.

Such an input is read once, to its end, by Python (``urllib`` for a URL), hashed
(sha256) while it is read, and spooled into the run directory as ``input.<ext>`` (the
extension from the container PyAV finds in it; ``bin`` if none). PyAV then decodes that
file like any local input. Why a spool and not a file object handed to PyAV: PyAV needs
to seek in MP4/M4A files whose ``moov`` index comes after the media data (what most
encoders write, ``speech_a_video.mp4`` and ``speech_a.m4a`` among the test media): read
as a non-seekable stream they fail with "Invalid data found when processing input". The
copy also lets ``resume`` (and ``resume --from-step``, extract_frames, caption) decode the
input again: its sha256 is checked; the source itself cannot be read again, which resume
says.

A stream that ends early (a URL whose connection drops before ``Content-Length`` bytes,
a chunked transfer cut inside a chunk, a reset, a timeout), an HTTP error (404, ...) or
an empty stream is a one-line error (:class:`InputReadError`, an ``OSError``), and the
run directory made for it is removed: nothing half-written remains. A connection closed
early by a server that sends no length cannot be told from the end of the stream.

A FIFO or pipe given by path (``<(cat talk.mp4)``) is refused when no data comes within
:data:`infomux.storage.PIPE_TIMEOUT` seconds (no writer); standard input is read as long
as it takes (``curl ... | infomux run -``), but a terminal is refused at once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from infomux.job import InputFile

STDIN = "-"
URL_SCHEMES = ("http://", "https://")
URL_TIMEOUT = 30.0
"""Seconds a URL may stay silent (connecting, or between reads) before it fails."""
CHUNK = 1 << 20
PART_NAME = ".input.part"
COPY_STEM = "input"

# PyAV's container names -> the extension of the spooled copy
_FORMAT_EXT = {
    "mov": "mp4",
    "mp4": "mp4",
    "matroska": "mkv",
    "webm": "webm",
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "ogg": "ogg",
    "aac": "aac",
    "avi": "avi",
    "mpegts": "ts",
    "asf": "wmv",
    "aiff": "aiff",
    "caf": "caf",
    "amr": "amr",
    "au": "au",
    "w64": "w64",
    "flv": "flv",
}


class InputReadError(OSError):
    """A stream input could not be read to its end (one line; ``strerror`` says why)."""


def is_url(raw: str) -> bool:
    """Whether ``raw`` is an ``http(s)://`` URL."""
    return raw[:8].lower().startswith(URL_SCHEMES)


def is_stream_name(raw: str) -> bool:
    """Whether a command-line INPUT names a stream rather than a path: ``-`` or a URL."""
    return raw == STDIN or is_url(raw)


@dataclass
class Stream:
    """An opened stream input, ready to be spooled."""

    reader: BinaryIO
    kind: str  # stdin, url, pipe
    source: str  # what the user gave
    expected: int | None = None  # Content-Length, when the server sent one
    content_type: str | None = None
    close_reader: bool = True

    def close(self) -> None:
        """Close the reader (never standard input itself)."""
        if self.close_reader:
            with contextlib.suppress(Exception):
                self.reader.close()


def open_stream(source: str | os.PathLike[str]) -> Stream | None:
    """Open a stream input; None for a path that is not a pipe (a local file).

    Raises:
        InputReadError: standard input is a terminal or closed; a URL cannot be
            opened (HTTP error, refused, timeout).
        InputKindError: a pipe or FIFO without data within the pipe timeout.
    """
    if isinstance(source, str) and source == STDIN:
        return _open_stdin()
    if isinstance(source, str) and is_url(source):
        return _open_url(source)
    try:
        mode = os.stat(source).st_mode
    except OSError:
        return None  # describe_input reports it
    if stat.S_ISFIFO(mode):
        from infomux import storage

        fd = storage.wait_for_pipe_data(source)
        return Stream(os.fdopen(fd, "rb"), "pipe", os.fspath(source))
    return None


def _open_stdin() -> Stream:
    stdin = sys.stdin
    buffer = getattr(stdin, "buffer", None) if stdin is not None else None
    if buffer is None or stdin.closed:
        raise InputReadError(errno.EBADF, "standard input is closed", STDIN)
    with contextlib.suppress(ValueError, OSError):
        if stdin.isatty():
            raise InputReadError(
                errno.EINVAL,
                "standard input is a terminal; pipe the media into it "
                "(cat talk.mp4 | infomux run -)",
                STDIN,
            )
    return Stream(buffer, "stdin", STDIN, close_reader=False)


def _open_url(url: str) -> Stream:
    # imported here: urllib/http.client/ssl cost every local-file run ~20 ms
    import http.client
    import urllib.error
    import urllib.request

    from infomux._version import __version__

    request = urllib.request.Request(
        url, headers={"User-Agent": f"infomux/{__version__}", "Accept-Encoding": "identity"}
    )
    try:
        response = urllib.request.urlopen(request, timeout=URL_TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise InputReadError(errno.EIO, f"HTTP {exc.code} {exc.reason}", url) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "strerror", None) or str(reason)
        raise InputReadError(errno.EIO, f"cannot open the URL: {text}", url) from None
    except TimeoutError:
        raise InputReadError(errno.ETIMEDOUT, f"no answer within {URL_TIMEOUT:g} s", url) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise InputReadError(errno.EIO, f"cannot open the URL: {exc}", url) from None
    length = response.headers.get("Content-Length")
    chunked = "chunked" in (response.headers.get("Transfer-Encoding") or "").lower()
    expected = int(length) if length and length.isdigit() and not chunked else None
    return Stream(
        response,
        "url",
        url,
        expected=expected,
        content_type=response.headers.get("Content-Type"),
    )


def spool(stream: Stream, run_dir: Path) -> InputFile:
    """Read ``stream`` to its end into ``run_dir/input.<ext>``, hashing it as it is read.

    On any failure (and on Ctrl-C) the partial file and ``run_dir`` (if nothing else is
    in it) are removed, and the error goes on.

    Raises:
        InputReadError: the stream failed or ended early, or was empty.
    """
    import http.client

    part = run_dir / PART_NAME
    try:
        digest = hashlib.sha256()
        size = 0
        try:
            with open(part, "wb") as out:
                while chunk := stream.reader.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except TimeoutError:
            raise InputReadError(
                errno.ETIMEDOUT,
                f"nothing came for {URL_TIMEOUT:g} s after {size} bytes",
                stream.source,
            ) from None
        except http.client.IncompleteRead as exc:
            raise InputReadError(
                errno.EIO,
                f"the connection closed after {size + len(exc.partial)} bytes, "
                "in the middle of a chunk",
                stream.source,
            ) from None
        except http.client.HTTPException as exc:
            raise InputReadError(errno.EIO, f"read failed: {exc!r}", stream.source) from None
        except InputReadError:
            raise
        except OSError as exc:
            if exc.filename == str(part):
                raise  # the run directory cannot be written: not the input's fault
            reason = exc.strerror or str(exc)
            raise InputReadError(
                exc.errno or errno.EIO, f"read failed after {size} bytes: {reason}", stream.source
            ) from None
        if stream.expected is not None and size != stream.expected:
            raise InputReadError(
                errno.EIO,
                f"the connection closed after {size} of {stream.expected} bytes",
                stream.source,
            )
        if size == 0:
            what = "standard input" if stream.kind == "stdin" else "the stream"
            raise InputReadError(errno.ENODATA, f"{what} was empty (0 bytes)", stream.source)
        name = f"{COPY_STEM}.{_extension(part)}"
        os.replace(part, run_dir / name)
        from infomux.storage import fsync_dir

        fsync_dir(run_dir)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only if empty: a run dir that holds anything else stays
        raise
    finally:
        stream.close()
    return InputFile(
        path=str((run_dir / name).absolute()),
        sha256=digest.hexdigest(),
        size_bytes=size,
        kind=stream.kind,
        source=stream.source,
        copy=name,
        content_type=stream.content_type,
    )


def _extension(path: Path) -> str:
    """The extension of the container PyAV finds in ``path`` (``bin`` if none)."""
    try:
        import av

        with av.open(str(path), mode="r") as container:
            names = str(container.format.name).split(",")
    except Exception:
        return "bin"
    for name in names:
        if name in _FORMAT_EXT:
            return _FORMAT_EXT[name]
    return "bin"
