"""The ``ollama`` provider: ``POST {INFOMUX_OLLAMA_URL}/api/chat`` with ``stream: false``.

Request (Ollama's documented shape)::

    {"model": NAME, "messages": [...], "stream": false,
     "options": {"seed", "temperature", "top_p", "num_ctx", "num_predict"}}

Reply: ``message.content``, ``prompt_eval_count``, ``eval_count``. A 404 means the model
is not pulled: the error says ``ollama pull NAME``.
"""

from __future__ import annotations

from typing import Any

from infomux.llm import DEFAULT_MODELS, DEFAULT_OLLAMA_URL, GenerationOptions, LLMError, Reply
from infomux.llm import Settings as _Settings
from infomux.llm.http import HTTPStatusError, check_url, post_json


class OllamaProvider:
    """Chat with a model on an Ollama server."""

    name = "ollama"

    def __init__(self, settings: _Settings) -> None:
        self.model = settings.model or str(DEFAULT_MODELS["ollama"])
        base = check_url(
            settings.base_url or DEFAULT_OLLAMA_URL,
            allow_remote=settings.allow_remote,
            what="Ollama URL",
        )
        self.endpoint = f"{base}/api/chat"

    def request_body(
        self, messages: list[dict[str, str]], options: GenerationOptions
    ) -> dict[str, Any]:
        """The JSON body sent for ``messages``."""
        return {
            "model": self.model,
            "messages": messages,
            "stream": False,
            "options": {
                "seed": options.seed,
                "temperature": options.temperature,
                "top_p": options.top_p,
                "num_ctx": options.context,
                "num_predict": options.max_tokens,
            },
        }

    def chat(self, messages: list[dict[str, str]], options: GenerationOptions) -> Reply:
        """One reply from the server (see the module's doc)."""
        try:
            data = post_json(
                self.endpoint, self.request_body(messages, options), timeout=options.timeout
            )
        except HTTPStatusError as exc:
            if exc.status == 404:
                raise LLMError(
                    f"{self.endpoint}: model {self.model!r} not found on the Ollama server "
                    f"(run: ollama pull {self.model})"
                ) from None
            raise
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise LLMError(f"{self.endpoint}: malformed reply (no message.content)")
        return Reply(
            text=content,
            prompt_tokens=_int(data.get("prompt_eval_count")),
            completion_tokens=_int(data.get("eval_count")),
            raw={k: v for k, v in data.items() if k != "message"},
        )

    def count_tokens(self, text: str) -> int | None:
        """Ollama has no tokenizer endpoint: None (the caller estimates)."""
        del text
        return None

    def close(self) -> None:
        """Nothing to free."""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
