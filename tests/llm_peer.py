"""A loopback chat server for the summarize tests: Ollama's ``/api/chat`` and OpenAI's
``/v1/chat/completions``, answering with a real model run in this process.

It listens on 127.0.0.1 (an ephemeral port unless told), serves each request in its own
thread, records every request (path, headers, JSON body) and checks nothing itself: the
tests check the bodies against the APIs' documented shapes. Model names it knows:

* ``smollm2``: the real model (``generate``);
* ``slow``: answers after ``SLOW_SECONDS`` (client timeouts);
* ``garbled``: answers 200 with a body that is not JSON;
* anything else: 404, as Ollama does for a model that is not pulled.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "smollm2"
SLOW_SECONDS = 3.0

Generate = Callable[[list[dict[str, str]], dict[str, Any]], tuple[str, int | None, int | None]]
"""``(messages, options) -> (text, prompt_tokens, completion_tokens)``; options use the
:class:`infomux.llm.GenerationOptions` names."""


class ChatServer:
    """The server; ``url`` is its base URL, ``requests`` what it received."""

    def __init__(self, generate: Generate, port: int = 0) -> None:
        self.generate = generate
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # quiet

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, {"error": "invalid JSON"})
                    return
                with server._lock:
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                if self.path == "/api/chat":
                    self._ollama(body)
                elif self.path == "/v1/chat/completions":
                    self._openai(body)
                else:
                    self._send(404, {"error": f"no route {self.path}"})

            def _special(self, model: str, not_found: dict[str, Any]) -> bool:
                if model == "slow":
                    time.sleep(SLOW_SECONDS)
                    self._send(200, {"message": {"role": "assistant", "content": "late"}})
                    return True
                if model == "garbled":
                    self._send_raw(200, b"<html>proxy error</html>", "text/html")
                    return True
                if model != MODEL:
                    self._send(404, not_found)
                    return True
                return False

            def _ollama(self, body: dict[str, Any]) -> None:
                model = body.get("model", "")
                if self._special(
                    model, {"error": f'model "{model}" not found, try pulling it first'}
                ):
                    return
                opts = body.get("options", {})
                text, p, c = server.generate(
                    body["messages"],
                    {
                        "temperature": opts.get("temperature", 0.8),
                        "top_p": opts.get("top_p", 0.9),
                        "seed": opts.get("seed", 0),
                        "context": opts.get("num_ctx", 2048),
                        "max_tokens": opts.get("num_predict", 128),
                    },
                )
                self._send(
                    200,
                    {
                        "model": model,
                        "created_at": "2026-11-29T00:00:00Z",
                        "message": {"role": "assistant", "content": text},
                        "done": True,
                        "done_reason": "stop",
                        "prompt_eval_count": p,
                        "eval_count": c,
                    },
                )

            def _openai(self, body: dict[str, Any]) -> None:
                model = body.get("model", "")
                error = {"error": {"message": f"model {model} not found", "type": "not_found"}}
                if self._special(model, error):
                    return
                text, p, c = server.generate(
                    body["messages"],
                    {
                        "temperature": body.get("temperature", 1.0),
                        "top_p": body.get("top_p", 1.0),
                        "seed": body.get("seed", 0),
                        "context": 4096,
                        "max_tokens": body.get("max_tokens", 128),
                    },
                )
                self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": p,
                            "completion_tokens": c,
                            "total_tokens": (p or 0) + (c or 0),
                        },
                    },
                )

            def _send(self, status: int, data: dict[str, Any]) -> None:
                self._send_raw(status, json.dumps(data).encode(), "application/json")

            def _send_raw(self, status: int, data: bytes, kind: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ChatServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()
