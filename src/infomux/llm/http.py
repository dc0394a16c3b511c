"""JSON over HTTP with the standard library, and the loopback rule.

Every failure becomes an :class:`~infomux.llm.LLMError` with one line that names the
endpoint and the cause: the server is not running, it answered with an error status,
no reply came in time, or the reply was not the JSON expected.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from infomux.llm import LLMError


class HTTPStatusError(LLMError):
    """The server answered with an error status (``status``; its message in ``detail``)."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: ``localhost``,
    ``*.localhost``, 127.0.0.0/8 or ``::1``. Names are not looked up."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_remote: bool, what: str) -> str:
    """Return ``url`` without a trailing slash, checked.

    Raises:
        LLMError: not an http(s) URL, or a host that is not loopback while
            ``allow_remote`` is false.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LLMError(f"{what} {url!r} is not an http:// or https:// URL")
    if not allow_remote and not is_loopback(parts.hostname):
        raise LLMError(
            f"{what} {url} is not on this machine; infomux sends transcripts only to "
            "loopback addresses unless the config file's [summarize] section says "
            "allow_remote = true"
        )
    return url.strip().rstrip("/")


def host_of(url: str) -> str:
    """The host (and port) of ``url``: what job.json records as the endpoint host."""
    return urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1]


def post_json(
    url: str, body: dict[str, Any], *, timeout: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST ``body`` as JSON to ``url``; return the JSON object it answers with.

    Raises:
        HTTPStatusError: an error status (4xx/5xx).
        LLMError: no connection, a timeout, a reply that is not a JSON object.
    """
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            detail = _error_detail(exc.read())
        raise HTTPStatusError(
            f"{url}: HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else ""),
            exc.code,
            detail,
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise LLMError(f"{url}: no reply within {timeout:g} s (timeout)") from None
        if isinstance(reason, ConnectionRefusedError):
            raise LLMError(f"{url}: connection refused (is the server running?)") from None
        text = getattr(reason, "strerror", None) or str(reason)
        raise LLMError(f"{url}: cannot connect: {text}") from None
    except TimeoutError:
        raise LLMError(f"{url}: no reply within {timeout:g} s (timeout)") from None
    except (ConnectionError, OSError) as exc:
        text = exc.strerror or str(exc) or type(exc).__name__
        raise LLMError(f"{url}: connection failed: {text}") from None
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LLMError(f"{url}: malformed reply (not JSON): {_excerpt(raw)}") from None
    if not isinstance(reply, dict):
        raise LLMError(f"{url}: malformed reply (not a JSON object): {_excerpt(raw)}")
    return reply


def _error_detail(raw: bytes) -> str:
    """The message of an error reply: ``{"error": "..."}`` (Ollama), ``{"error":
    {"message": ...}}`` (OpenAI), else the start of the body."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _excerpt(raw)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str):
            return " ".join(error.split())
    return _excerpt(raw)


def _excerpt(raw: bytes, limit: int = 120) -> str:
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
