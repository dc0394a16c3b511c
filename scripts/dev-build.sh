#!/usr/bin/env bash
# Incremental developer build: compiles the extension into build/dev and copies it next
# to the Python sources, so `PYTHONPATH=src python ...` and an editable checkout use it.
# Extra arguments go to CMake, e.g. scripts/dev-build.sh -DGGML_NATIVE=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build build/dev -j "$(nproc)"
# the module and its package data (the VAD model), as a wheel would lay them out
rm -rf build/dev/stage
cmake --install build/dev --component infomux_python --prefix build/dev/stage >/dev/null
# Replace each file by a rename, never in place: a process that has the old module
# mapped (a test run) keeps its copy instead of crashing with SIGBUS.
(cd build/dev/stage/infomux && find . -type f) | while read -r file; do
  mkdir -p "src/infomux/$(dirname "$file")"
  cp "build/dev/stage/infomux/$file" "src/infomux/$file.tmp.$$"
  mv -f "src/infomux/$file.tmp.$$" "src/infomux/$file"
done
