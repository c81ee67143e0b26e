#!/usr/bin/env bash
# Builds llama.cpp from source (the copy vendored in the llama-cpp-python sdist, fetched with pip)
# into a virtual environment, for benches/llama_cpp_baseline.py. About 5 minutes on 2 cores.
#
#   tools/llama_cpp.sh [VENV]        (default .cache/llama-cpp-venv)
#
# GGML_NATIVE=OFF with the x86 extensions named: a native build died with SIGILL on the build
# machine (its compiler's -march=native detection and the CPU disagreed). Reuses an existing build.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.cache/llama-cpp-venv}
version=0.3.36
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp, numpy" 2>/dev/null; then
  echo "llama.cpp bindings already in $venv"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip numpy
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
if grep -q avx512f /proc/cpuinfo; then
  flags="$flags -DGGML_AVX512=ON"
  grep -q avx512_vbmi /proc/cpuinfo && flags="$flags -DGGML_AVX512_VBMI=ON"
  grep -q avx512_vnni /proc/cpuinfo && flags="$flags -DGGML_AVX512_VNNI=ON"
  grep -q avx512_bf16 /proc/cpuinfo && flags="$flags -DGGML_AVX512_BF16=ON"
fi
grep -q avx_vnni /proc/cpuinfo && flags="$flags -DGGML_AVX_VNNI=ON"
echo "building llama-cpp-python $version from source with: $flags"
CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
  "$venv/bin/pip" install -q --no-binary llama-cpp-python "llama-cpp-python==$version"
"$venv/bin/python" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
