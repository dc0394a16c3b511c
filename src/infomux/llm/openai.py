"""The ``openai`` provider: ``POST {base}/chat/completions`` on any OpenAI-compatible server.

Base URL: ``INFOMUX_OPENAI_BASE_URL`` (with the ``/v1``), default
``http://localhost:8080/v1`` (llama.cpp's ``llama-server``). Request::

    {"model": NAME, "messages": [...], "stream": false,
     "seed", "temperature", "top_p", "max_tokens"}

Reply: ``choices[0].message.content``, ``usage.prompt_tokens``,
``usage.completion_tokens``. An API key, when set, goes in ``Authorization: Bearer``.
"""

from __future__ import annotations

from typing import Any

from infomux.llm import DEFAULT_MODELS, DEFAULT_OPENAI_BASE_URL, GenerationOptions, LLMError, Reply
from infomux.llm import Settings as _Settings
from infomux.llm.http import check_url, post_json


class OpenAIProvider:
    """Chat with a model on an OpenAI-compatible server."""

    name = "openai"

    def __init__(self, settings: _Settings) -> None:
        self.model = settings.model or str(DEFAULT_MODELS["openai"])
        base = check_url(
            settings.base_url or DEFAULT_OPENAI_BASE_URL,
            allow_remote=settings.allow_remote,
            what="OpenAI-compatible base URL",
        )
        self.endpoint = f"{base}/chat/completions"
        self._api_key = settings.api_key

    def request_body(
        self, messages: list[dict[str, str]], options: GenerationOptions
    ) -> dict[str, Any]:
        """The JSON body sent for ``messages``."""
        return {
            "model": self.model,
            "messages": messages,
            "stream": False,
            "seed": options.seed,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "max_tokens": options.max_tokens,
        }

    def chat(self, messages: list[dict[str, str]], options: GenerationOptions) -> Reply:
        """One reply from the server (see the module's doc)."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        data = post_json(
            self.endpoint,
            self.request_body(messages, options),
            timeout=options.timeout,
            headers=headers,
        )
        choices = data.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise LLMError(f"{self.endpoint}: malformed reply (no choices[0].message.content)")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        return Reply(
            text=content,
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            raw={k: v for k, v in data.items() if k not in ("choices",)},
        )

    def count_tokens(self, text: str) -> int | None:
        """No portable tokenizer endpoint: None (the caller estimates)."""
        del text
        return None

    def close(self) -> None:
        """Nothing to free."""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
