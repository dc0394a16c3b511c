#!/usr/bin/env bash
# Configure and compile the extension with CUDA on, so the GGML_CUDA option cannot rot
# silently. Needs nvcc (CUDA toolkit), not a GPU. Not part of every CI run (it takes a
# while: ggml-cuda has ~180 kernels files); README.md records what it last printed.
#   CUDA_ARCHS="90" scripts/check_cuda_build.sh        # H100/H200 only (default)
#   CUDA_ARCHS="80;86;89;90" scripts/check_cuda_build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
BUILD="${BUILD_DIR:-build/cuda}"
start=$(date +%s)
extra=()
# Some CUDA toolkits (e.g. a bare nvcc install) ship without cuBLAS, which ggml-cuda
# links. Take it from PyPI's nvidia-cublas wheel for the same CUDA major version.
cuda_root="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
if ! ls "$cuda_root"/lib64/libcublas.so* "$cuda_root"/targets/*/lib/libcublas.so* >/dev/null 2>&1; then
  major="$(nvcc --version | grep -o 'release [0-9]*' | grep -o '[0-9]*')"
  cublas="$PWD/$BUILD/cublas"
  if [ ! -d "$cublas/nvidia" ]; then
    "$PYTHON" -m pip install -q --no-deps --target "$cublas" "nvidia-cublas==${major}.*"
  fi
  lib="$(dirname "$(ls "$cublas"/nvidia/*/lib/libcublas.so.*)")"
  ln -sf "$lib/libcublas.so.$major" "$lib/libcublas.so"
  ln -sf "$lib/libcublasLt.so.$major" "$lib/libcublasLt.so"
  inc="$(dirname "$lib")/include"
  extra+=(-DCUDA_cublas_LIBRARY="$lib/libcublas.so" -DCUDA_cublasLt_LIBRARY="$lib/libcublasLt.so"
          -DCMAKE_CUDA_FLAGS="-I$inc" -DCMAKE_CXX_FLAGS="-I$inc")
  echo "cuBLAS from PyPI nvidia-cublas==${major}.* at $lib"
fi
# Without the driver library (libcuda.so, or the toolkit's stubs/) ggml must not use the
# virtual memory management API, which links it directly.
if ! ls "$cuda_root"/lib64/stubs/libcuda.so >/dev/null 2>&1 && ! ldconfig -p | grep -q 'libcuda\.so'; then
  extra+=(-DGGML_CUDA_NO_VMM=ON)
  echo "no libcuda.so here: building with GGML_CUDA_NO_VMM=ON"
fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}" \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" -DGGML_NATIVE=OFF \
  -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" | grep -E "CUDA|infomux" || true
cmake --build "$BUILD" --target _whisper -j "$(nproc)"
so=$(ls "$BUILD"/_whisper*.so)
echo "built $so ($(du -h "$so" | cut -f1)) in $(( $(date +%s) - start )) s with nvcc $(nvcc --version | grep -o 'release [0-9.]*')"
echo "CUDA libraries it links:"
ldd "$so" | grep -E "cuda|cublas" || { echo "error: no CUDA library linked"; exit 1; }
nm -D --defined-only "$so" | grep PyInit__whisper >/dev/null && echo "exports PyInit__whisper: ok"
