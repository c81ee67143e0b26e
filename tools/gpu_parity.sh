#!/usr/bin/env bash
# Fixture parity on an NVIDIA GPU.
#
#   tools/gpu_parity.sh build   # here (no GPU needed): builds the CUDA parity binary
#   tools/gpu_parity.sh run     # on the GPU machine, from the repository root
#
# The GPU machine has no Rust toolchain, so the binary is built on the CPU machine against CUDA 13.0
# (cudarc loads libcuda/libnvrtc at run time; nothing CUDA is linked at build time) and copied over
# with the fixtures. Prints the max |log-prob - transformers f32| per fixture in f32 and bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/cuda/release/examples/parity
case "${1:-}" in
  build)
    CUDARC_CUDA_VERSION=13000 cargo build --release --target-dir target/cuda \
      -p cdr-models --example parity --no-default-features --features cuda
    mkdir -p .cache/gpu && cp "$BIN" .cache/gpu/parity-cuda && strip .cache/gpu/parity-cuda
    echo "built .cache/gpu/parity-cuda"
    ;;
  run)
    export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
    export LD_LIBRARY_PATH=${CUDA_PATH}/lib64:${LD_LIBRARY_PATH:-}
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
    # tf32 matmuls make f32 on CUDA differ around 1e-3; report, with a loose bound for gross errors.
    .cache/gpu/parity-cuda cdr-models/tests/fixtures --f32-tol 1e-2
    ;;
  *) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
