"""Chat models for the steps that need one (``summarize``): providers behind one interface.

A provider turns a list of chat messages into one reply. Three exist:

* ``ollama`` — an Ollama server (``POST /api/chat``, ``stream: false``);
* ``openai`` — any OpenAI-compatible server (``POST {base}/chat/completions``):
  llama.cpp's server, vLLM, LM Studio, ...;
* ``llama-cpp`` — a GGUF model run inside the process (llama-cpp-python or cyllama;
  the ``infomux[llm]`` extra).

The HTTP providers use the standard library only, send nothing to a host that is not
loopback unless :attr:`Settings.allow_remote` says so, and turn every failure into an
:class:`LLMError` whose message is one line naming the endpoint and the cause.
Nothing here prints; nothing is imported or contacted until a provider is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from infomux.errors import InfomuxError

PROVIDERS = ("ollama", "openai", "llama-cpp")
DEFAULT_PROVIDER = "ollama"
DEFAULT_MODELS = {"ollama": "llama3.2", "openai": "default", "llama-cpp": None}
"""``llama3.2`` is what Ollama's own quick start pulls; an OpenAI-compatible server
that serves one model ignores the name; ``llama-cpp`` needs a GGUF path."""
DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OPENAI_BASE_URL = "http://localhost:8080/v1"
"""llama.cpp's ``llama-server`` default; vLLM listens on :8000, LM Studio on :1234."""


class LLMError(InfomuxError):
    """A chat request failed: one line naming the endpoint and the cause."""


@dataclass(frozen=True)
class GenerationOptions:
    """What a reply is generated with; every field is recorded in job.json.

    Attributes:
        temperature: 0 = greedy (the default: the same input gives the same text).
        top_p: nucleus sampling.
        seed: the sampler's seed.
        context: the context window in tokens (Ollama's ``num_ctx``, llama.cpp's
            ``n_ctx``); also what long inputs are split by.
        max_tokens: the longest reply (Ollama's ``num_predict``).
        timeout: seconds to wait for one reply.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    context: int = 8192
    max_tokens: int = 1024
    timeout: float = 600.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "context": self.context,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
        }


@dataclass(frozen=True)
class Reply:
    """One reply: its text and the token counts the provider reported (None: not told)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """The interface every provider has."""

    name: str
    model: str
    endpoint: str
    """A URL, or ``in-process:<path>``; what the step records (never a secret)."""

    def chat(self, messages: list[dict[str, str]], options: GenerationOptions) -> Reply:
        """Return the model's reply to ``messages`` (``{"role", "content"}`` dicts).

        Raises:
            LLMError: the request failed (one line: endpoint and cause).
        """
        ...

    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` for this model, or None when the provider cannot tell."""
        ...

    def close(self) -> None:
        """Free what the provider holds (a loaded model)."""
        ...


@dataclass(frozen=True)
class Settings:
    """Which provider and model, and where; see :func:`make_provider`.

    Attributes:
        provider: one of :data:`PROVIDERS`.
        model: the model's name (a GGUF path for ``llama-cpp``).
        base_url: the server's base URL (None: the provider's default).
        api_key: sent as ``Authorization: Bearer`` (``openai`` only); never recorded.
        allow_remote: allow a host that is not loopback (the config file says so).
        threads: CPU threads for ``llama-cpp`` (None: its default).
    """

    provider: str = DEFAULT_PROVIDER
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    allow_remote: bool = False
    threads: int | None = None


def make_provider(settings: Settings, resources: dict[str, Any] | None = None) -> Provider:
    """Make the provider ``settings`` name (nothing is contacted yet).

    ``resources`` (shared by the runs of one process) keeps a loaded in-process model.

    Raises:
        LLMError: unknown provider, no model for ``llama-cpp``, a remote host not allowed,
            a malformed URL, the in-process binding not installed.
    """
    if settings.provider == "ollama":
        from infomux.llm.ollama import OllamaProvider

        return OllamaProvider(settings)
    if settings.provider == "openai":
        from infomux.llm.openai import OpenAIProvider

        return OpenAIProvider(settings)
    if settings.provider == "llama-cpp":
        from infomux.llm.llamacpp import LlamaCppProvider

        return LlamaCppProvider.shared(settings, resources)
    raise LLMError(
        f"unknown summarize provider {settings.provider!r} (choose from {', '.join(PROVIDERS)})"
    )


__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_OLLAMA_URL",
    "DEFAULT_OPENAI_BASE_URL",
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "GenerationOptions",
    "LLMError",
    "Provider",
    "Reply",
    "Settings",
    "make_provider",
]
