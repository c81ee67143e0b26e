#!/usr/bin/env bash
# The GPU checks in one go: fixture parity (f32 and bf16) and scoring throughput against
# transformers + PyTorch on the same card.
#
#   tools/gpu_bench.sh build   # here (no GPU needed): CUDA binaries into .cache/gpu (stripped)
#   tools/gpu_bench.sh run     # on the GPU machine, from the repository root; carry .cache/gpu
#
# `run` reads PARITY_TIMEOUT and BENCH_TIMEOUT (seconds), PARITY_ARGS (e.g. `--dtypes bf16,f32
# --fixtures llama3_tied`: each new shape costs NVRTC compilation on first use, ~2-3 min for the
# first fixture) and BENCH_SHAPE (default mistral-7b; qwen2.5-0.5b fits a short device budget).
#
# e.g. with the device tool: command `tools/gpu_bench.sh run`, carry [".cache/gpu"], timeout 600.
#
# The GPU machine has no Rust toolchain: binaries are built here against CUDA 13.0 (cudarc loads
# libcuda/libnvrtc at run time). Output goes to stdout and, when set, $OUT/*.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  build)
    export CUDARC_CUDA_VERSION=13000
    # `cpu` too: the parity example's long-batch check compares with the CPU's f32.
    cargo build --release --target-dir target/cuda -p cdr-models --example parity \
      --no-default-features --features cuda,cpu
    cargo build --release --target-dir target/cuda -p cdr-benches --bin score_workload \
      --no-default-features --features cuda
    mkdir -p .cache/gpu
    cp target/cuda/release/examples/parity .cache/gpu/parity-cuda
    cp target/cuda/release/score_workload .cache/gpu/score-workload-cuda
    strip .cache/gpu/parity-cuda .cache/gpu/score-workload-cuda
    # The device tool carries at most 64 MiB; the two binaries are ~70 MB stripped, ~10 MB as xz.
    tar -C .cache/gpu -cJf .cache/gpu/bins.tar.xz parity-cuda score-workload-cuda
    rm .cache/gpu/parity-cuda .cache/gpu/score-workload-cuda
    ls -la .cache/gpu
    ;;
  run)
    out=${OUT:-/tmp}
    tar -C .cache/gpu -xJf .cache/gpu/bins.tar.xz
    export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
    export LD_LIBRARY_PATH=${CUDA_PATH}/lib64:${LD_LIBRARY_PATH:-}
    # Full autotuning costs minutes of a 15-minute budget; the minimal level keeps the good kernels.
    export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
    export RUST_BACKTRACE=1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$out/gpu_mem.csv" &
    smi=$!
    trap 'kill $smi 2>/dev/null || true' EXIT
    echo "== parity (the head of stderr is kept: a first panic explains any later ones)"
    # cubecl's compilation/autotune log (kernel sources included, so it stays off $OUT): a first
    # run that seems stuck is usually compiling, and the count says how much.
    CUBECL_DEBUG_LOG=/tmp/cubecl-parity.log timeout "${PARITY_TIMEOUT:-150}" \
      .cache/gpu/parity-cuda cdr-models/tests/fixtures --f32-tol 1e-2 --long-batch ${PARITY_ARGS:-} \
      > "$out/parity.txt" 2> "$out/parity.err" || echo "parity exited with $?"
    cat "$out/parity.txt"; head -60 "$out/parity.err"
    echo "kernels compiled: $(grep -c START_KERNEL_COMPILATION /tmp/cubecl-parity.log || true)"
    shape=${BENCH_SHAPE:-mistral-7b}
    echo "== throughput: $shape shape, bf16, cdr vs transformers + PyTorch"
    timeout "${BENCH_TIMEOUT:-400}" .cache/gpu/score-workload-cuda --shape "$shape" --dtype bf16 \
      --workload pairwise:32 --workload best-of-32:2 --baseline python3 --device cuda \
      > "$out/throughput.txt" 2> "$out/throughput.err" || echo "throughput exited with $?"
    cat "$out/throughput.txt"; head -40 "$out/throughput.err"
    echo "peak GPU memory used (MiB, whole card, both engines): $(sort -n "$out/gpu_mem.csv" | tail -1)"
    ;;
  *) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
