#!/usr/bin/env bash
# Builds the Python package (cdr-py) into a virtual environment and runs its tests (pytest), on a
# machine with only Rust, python3 (3.9+, with venv) and the default Python package index.
#
#   tools/python_tests.sh [pytest args...]
#
# 1. venv: .cache/py-venv (kept between runs; a re-run only checks the installs).
# 2. pip: maturin, pytest and TRL (which brings torch, transformers, accelerate, datasets) from
#    cdr-py/tests/requirements.txt. torch from the default index is the CUDA build with its
#    nvidia-* wheels, ~5.9 GB installed; there is no CPU-only torch wheel there, and torch
#    without those libraries does not import.
# 3. the `cdr` binary (dev profile): the tests compare the package with it.
# 4. `maturin build` of the abi3 wheel (dev profile, the workspace's target dir: after `cargo test
#    --workspace` or step 3 every dependency is already compiled there, so only pyo3 and cdr-py
#    build, ~20 s; a release build would compile all of burn and cdr again, minutes, for tests on
#    tiny models), then `pip install` of that wheel: the tests import what a user installs.
# 5. pytest cdr-py/tests.
# Each step prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.cache/py-venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

timed() {
  local name=$1
  shift
  local start=$SECONDS
  echo "=== $name"
  "$@"
  echo "=== $name: $((SECONDS - start)) s"
}

if [ ! -x "$venv/bin/python" ]; then
  timed "venv" python3 -m venv "$venv"
fi
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
timed "pip: upgrade pip" python -m pip install --quiet --upgrade pip
timed "pip: maturin, pytest, trl (+ torch)" python -m pip install --quiet -r cdr-py/tests/requirements.txt
# --workspace: the features the test build unified, so after `cargo test --workspace` this is a
# no-op (with `-p cdr-cli` alone cargo would rebuild dependencies with cdr-cli's features).
timed "cargo build --bin cdr" cargo build --quiet --workspace --bin cdr
wheels="$CARGO_TARGET_DIR/wheels-test"
rm -rf "$wheels"
timed "maturin build (wheel)" maturin build --quiet --profile dev -m cdr-py/Cargo.toml -o "$wheels"
timed "pip install the wheel" python -m pip install --quiet --force-reinstall --no-deps "$wheels"/cdr-*.whl
echo "=== wheel: $(basename "$wheels"/cdr-*.whl)"
export CDR_BIN="$CARGO_TARGET_DIR/debug/cdr"
echo "=== venv size: $(du -sh "$venv" | cut -f1)"
timed "pytest" python -m pytest cdr-py/tests "$@"
