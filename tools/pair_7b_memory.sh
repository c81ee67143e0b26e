#!/usr/bin/env bash
# A Mistral-7B-shape pair in bf16 scored on a machine that cannot hold both models (two 14.5 GB
# bf16 models on 24 GB): cdr sees they do not fit, scores one model at a time, and reports its
# peak RSS. Random weights (written once, 14.5 GB under .cache/bench/mistral-7b) with a fixture's
# tokenizer and template; the 12 example rows. About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cdr-cli -p cdr-benches --bin cdr --bin write_checkpoint
dir=$(target/release/write_checkpoint mistral-7b --tokenizer-from cdr-models/tests/fixtures/llama_gqa)
out=$(mktemp -d)
/usr/bin/env time -v target/release/cdr -v score --strong "$dir" --weak "$dir" --dtype bf16 \
  --input examples/code-pairs.jsonl --output "$out/scores.jsonl" --no-cache 2>&1 |
  grep -E "do not fit|weights (loaded|released)|rows scored|Maximum resident|Elapsed" || true
test -s "$out/scores.jsonl" && echo "scored $(wc -l < "$out/scores.jsonl") rows"
