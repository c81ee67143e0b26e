#!/usr/bin/env bash
# Fixture parity through the wgpu backend (autotune + fusion, as shipped) on Mesa's software Vulkan
# device (llvmpipe), in f32 and f16 (WGSL has no bf16). No GPU needed; about 5 min to build and
# 2 min to run on 2 cores. Installs mesa-vulkan-drivers from Debian when no Vulkan driver is there.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null; }
fi
# wgpu's Vulkan loader wants a runtime dir; CI shells often have none.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# `cpu` stays on: the long-batch check compares with the CPU's f32.
cargo build --release --target-dir target/wgpu -p cdr-models --example parity --features wgpu
# Few fixtures: the software device compiles every kernel on the CPU (~50 s per fixture and dtype
# with the long batch).
target/wgpu/release/examples/parity cdr-models/tests/fixtures --dtypes f32,f16 \
  --fixtures llama3_tied,mistral_sw,qwen2_sw --f32-tol 1e-4 --half-tol 0.1 --long-batch 2>&1 \
  | grep -v XDG_RUNTIME_DIR
