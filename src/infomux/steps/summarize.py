"""Step ``summarize``: a summary of the transcript by a chat model (summary.md, summary.json).

Provider, model and generation options come from, first that is set: the step's
options (``infomux run --summarize-*`` flags, then the pipeline file's ``options:``,
then run options), the environment (``INFOMUX_SUMMARIZE_PROVIDER``,
``INFOMUX_SUMMARIZE_MODEL``, ``INFOMUX_OLLAMA_URL``, ``INFOMUX_OPENAI_BASE_URL``,
``INFOMUX_OPENAI_API_KEY``), the config file's ``[summarize]`` table, the defaults
(Ollama at ``http://localhost:11434`` with ``llama3.2``, temperature 0). A host that is
not loopback is refused unless the config file says ``allow_remote = true``.

Only this step talks to a model: runs of pipelines without it make no network call.
When the model cannot be reached the step fails with one line naming the endpoint and
the cause; the transcript and everything before it stay, and ``infomux resume`` runs
only this step (and the ones after it) again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomux.errors import StepError, TranscriptionCancelled
from infomux.steps import OptionSpec, StepContext, StepResult, register_step

log = logging.getLogger("infomux.steps.summarize")

SUMMARY_MD = "summary.md"
SUMMARY_JSON = "summary.json"
TRANSCRIPT_FILES = ("transcript.txt", "transcript.json")

ENV_PROVIDER = "INFOMUX_SUMMARIZE_PROVIDER"
ENV_MODEL = "INFOMUX_SUMMARIZE_MODEL"
ENV_OLLAMA_URL = "INFOMUX_OLLAMA_URL"
ENV_OPENAI_BASE_URL = "INFOMUX_OPENAI_BASE_URL"
ENV_OPENAI_API_KEY = "INFOMUX_OPENAI_API_KEY"
CONFIG_TABLE = "summarize"

DEFAULTS: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "context": 8192,
    "max_tokens": 1024,
    "timeout": 600.0,
}

_OPTIONS = (
    OptionSpec(
        "summarize_provider",
        "str",
        None,
        "ollama, openai or llama-cpp (None: $INFOMUX_SUMMARIZE_PROVIDER, config, ollama)",
        choices=("ollama", "openai", "llama-cpp"),
    ),
    OptionSpec(
        "summarize_model",
        "str",
        None,
        "model name (llama-cpp: GGUF path; None: $INFOMUX_SUMMARIZE_MODEL, config, llama3.2)",
    ),
    OptionSpec(
        "summarize_url",
        "str",
        None,
        "server base URL (None: $INFOMUX_OLLAMA_URL / $INFOMUX_OPENAI_BASE_URL, config)",
    ),
    OptionSpec("summarize_temperature", "float", None, "sampling temperature (None: 0)", minimum=0),
    OptionSpec(
        "summarize_top_p", "float", None, "nucleus sampling (None: 1)", minimum=0, maximum=1
    ),
    OptionSpec("summarize_seed", "int", None, "sampler seed (None: chosen, recorded)", minimum=0),
    OptionSpec(
        "summarize_context",
        "int",
        None,
        "context window in tokens; longer transcripts are split (None: 8192)",
        minimum=256,
    ),
    OptionSpec(
        "summarize_max_tokens", "int", None, "longest reply in tokens (None: 1024)", minimum=16
    ),
    OptionSpec(
        "summarize_timeout", "duration", None, "wait for one reply at most (None: 600s)", minimum=1
    ),
)


@dataclass(frozen=True)
class Resolved:
    """What the step runs with, and where each value came from."""

    settings: Any  # infomux.llm.Settings
    options: Any  # infomux.llm.GenerationOptions
    seed_source: str
    sources: dict[str, str]


def _config_table() -> tuple[dict[str, Any], str]:
    """The config file's ``[summarize]`` table and the file's path (for messages)."""
    from infomux import config

    try:
        cfg = config.load_config()
    except ValueError as exc:
        raise StepError("summarize", str(exc)) from None
    table = cfg.extra.get(CONFIG_TABLE) or {}
    where = f"config file {cfg.path}" if cfg.path else "config file"
    if not isinstance(table, dict):
        raise StepError("summarize", f"{where}: [{CONFIG_TABLE}] must be a table")
    return table, where


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "provider": (str,),
    "model": (str,),
    "ollama_url": (str,),
    "openai_base_url": (str,),
    "api_key": (str,),
    "allow_remote": (bool,),
    "temperature": (int, float),
    "top_p": (int, float),
    "seed": (int,),
    "context": (int,),
    "max_tokens": (int,),
    "timeout": (int, float),
    "threads": (int,),
}


def resolve(options: dict[str, Any], environ: dict[str, str] | None = None) -> Resolved:
    """Settings and generation options from step options > environment > config > defaults.

    Raises:
        StepError: a bad ``[summarize]`` table in the config file.
    """
    from infomux import llm

    env = os.environ if environ is None else environ
    table, where = _config_table()
    for key, value in table.items():
        types = _CONFIG_TYPES.get(key)
        if types is None:
            known = ", ".join(sorted(_CONFIG_TYPES))
            raise StepError("summarize", f"{where}: unknown [summarize] key {key!r} ({known})")
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise StepError("summarize", f"{where}: [summarize] {key} has the wrong type")
    sources: dict[str, str] = {}

    def pick(name: str, option: str, env_name: str | None, default: Any) -> Any:
        value = options.get(option)
        if value is not None:
            sources[name] = "option"
            return value
        if env_name and env.get(env_name):
            sources[name] = f"${env_name}"
            return env[env_name]
        if table.get(name) is not None:
            sources[name] = "config"
            return table[name]
        sources[name] = "default"
        return default

    provider = pick("provider", "summarize_provider", ENV_PROVIDER, llm.DEFAULT_PROVIDER)
    if provider not in llm.PROVIDERS:
        raise StepError(
            "summarize",
            f"unknown summarize provider {provider!r} (choose from {', '.join(llm.PROVIDERS)})",
        )
    model = pick("model", "summarize_model", ENV_MODEL, llm.DEFAULT_MODELS[provider])
    if provider == "ollama":
        url = pick("ollama_url", "summarize_url", ENV_OLLAMA_URL, llm.DEFAULT_OLLAMA_URL)
    elif provider == "openai":
        url = pick(
            "openai_base_url", "summarize_url", ENV_OPENAI_BASE_URL, llm.DEFAULT_OPENAI_BASE_URL
        )
    else:
        url = None
    api_key = env.get(ENV_OPENAI_API_KEY) or table.get("api_key")
    settings = llm.Settings(
        provider=provider,
        model=model,
        base_url=url,
        api_key=api_key if provider == "openai" else None,
        allow_remote=bool(table.get("allow_remote", False)),
        threads=table.get("threads") or options.get("threads"),
    )
    seed = pick("seed", "summarize_seed", None, None)
    seed_source = "given"
    if seed is None:
        seed = secrets.randbelow(2**31)
        seed_source = "chosen"
    generation = llm.GenerationOptions(
        temperature=float(
            pick("temperature", "summarize_temperature", None, DEFAULTS["temperature"])
        ),
        top_p=float(pick("top_p", "summarize_top_p", None, DEFAULTS["top_p"])),
        seed=int(seed),
        context=int(pick("context", "summarize_context", None, DEFAULTS["context"])),
        max_tokens=int(pick("max_tokens", "summarize_max_tokens", None, DEFAULTS["max_tokens"])),
        timeout=float(pick("timeout", "summarize_timeout", None, DEFAULTS["timeout"])),
    )
    return Resolved(settings, generation, seed_source, sources)


def read_transcript(run_dir: Path) -> tuple[str, str]:
    """The transcript's text and the file it came from (transcript.txt, else .json).

    Raises:
        StepError: neither file is there (``--formats`` left both out).
    """
    txt = run_dir / TRANSCRIPT_FILES[0]
    if txt.is_file():
        return txt.read_text(encoding="utf-8"), txt.name
    js = run_dir / TRANSCRIPT_FILES[1]
    if js.is_file():
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
            lines = [str(s.get("text", "")).strip() for s in data.get("segments", [])]
        except (ValueError, AttributeError, TypeError) as exc:
            raise StepError("summarize", f"{js} cannot be read: {exc}") from None
        return "\n".join(line for line in lines if line) + "\n", js.name
    raise StepError(
        "summarize",
        "no transcript.txt or transcript.json in the run (--formats must include txt or json)",
    )


@register_step("summarize", requires=("transcribe",), options=_OPTIONS)
class Summarize:
    """Summarize the transcript with a chat model (summary.md, summary.json)."""

    def run(self, ctx: StepContext) -> StepResult:
        """Ask the model (in pieces for a long transcript); write and record the summary."""
        from infomux import llm, storage, summary
        from infomux.llm.http import host_of

        step = ctx.step_id or "summarize"
        started = time.perf_counter()
        resolved = resolve(ctx.options)
        text, source = read_transcript(ctx.run_dir)
        transcript_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        try:
            provider = llm.make_provider(resolved.settings, ctx.resources)
        except llm.LLMError as exc:
            raise StepError(step, str(exc)) from None
        endpoint = provider.endpoint
        log.info(
            "%s: %s model %s at %s (seed %d%s)",
            step,
            provider.name,
            provider.model,
            endpoint,
            resolved.options.seed,
            ", chosen" if resolved.seed_source == "chosen" else "",
        )

        def progress(line: str) -> None:
            log.info("%s: %s", step, line)

        try:
            if not text.strip():
                result, counting = summary.Summary(), "none (empty transcript)"
            else:
                result, counting = summary.summarize(
                    provider,
                    text,
                    resolved.options,
                    progress=progress,
                    cancelled=(lambda: ctx.cancel is not None and ctx.cancel.is_set()),
                )
        except llm.LLMError as exc:
            raise StepError(
                step,
                f"{exc}; the transcript is kept: 'infomux resume {ctx.job.id}' "
                "finishes the run once the model answers",
            ) from None
        except InterruptedError:
            raise TranscriptionCancelled("summarize cancelled") from None
        seconds = time.perf_counter() - started
        totals = result.token_totals()
        produced_by: dict[str, Any] = {
            "provider": provider.name,
            "model": provider.model,
            "endpoint": endpoint,
            "endpoint_host": host_of(endpoint) if "://" in endpoint else "in-process",
            "options": resolved.options.to_dict(),
            "seed": resolved.options.seed,
            "seed_source": resolved.seed_source,
            "sources": resolved.sources,
            "prompt_version": summary.PROMPT_VERSION,
            "prompt_sha256": summary.PROMPT_SHA256,
            "transcript_file": source,
            "transcript_sha256": transcript_sha256,
            "transcript_chars": len(text),
            "token_counting": counting,
            "pieces": result.pieces,
            "map_reduce": result.pieces > 1,
            "reduce_rounds": result.reduce_rounds,
            "calls": result.calls,
            "prompt_tokens": totals["prompt_tokens"],
            "completion_tokens": totals["completion_tokens"],
        }
        binding = getattr(provider, "binding", None)
        if binding:
            produced_by["binding"] = binding
            produced_by["load_seconds"] = round(getattr(provider, "load_seconds", 0.0), 3)
        title = f"Summary of {Path(ctx.job.input.path).name}"
        storage.atomic_write_text(ctx.run_dir / SUMMARY_MD, result.to_markdown(title))
        storage.atomic_write_json(
            ctx.run_dir / SUMMARY_JSON,
            {**result.sections(), "produced_by": produced_by},
        )
        if result.is_empty():
            log.warning("%s: the model's reply had none of the summary's sections", step)
        log.info(
            "%s: %s in %.1f s (%d call%s)",
            step,
            SUMMARY_MD,
            seconds,
            len(result.calls),
            "" if len(result.calls) == 1 else "s",
        )
        return StepResult(
            outputs=[SUMMARY_MD, SUMMARY_JSON],
            metadata={**produced_by, "seconds": round(seconds, 3)},
        )
