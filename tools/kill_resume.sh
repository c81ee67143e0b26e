#!/usr/bin/env bash
# Fault injection: kills `cdr score`, `cdr annotate` and `cdr generate` with SIGKILL at random
# points (half the time also cutting the partial output mid-row, as a kill inside a write would),
# resumes each (sometimes killing the resumed run too), and checks the finished output
# against an uninterrupted run: byte-identical (so the same rows in the same order, no duplicate),
# ending in a newline (no torn last line). Then fills the "disk" mid-run, with a file-size limit
# and, where a tmpfs can be mounted, a real full file system: the run must stop with a clear error,
# and the partial output must resume to the same file once there is space.
#
#   tools/kill_resume.sh [TRIALS]     (default 20 per command; CI runs 3)
#
# Uses the tiny fixture models; CDR_BIN picks the binary (default target/debug/cdr, built if
# missing). Exits non-zero on the first failed trial, printing what differed.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
bin=${CDR_BIN:-target/debug/cdr}
[[ -x $bin ]] || cargo build -p cdr-cli
fixtures=cdr-models/tests/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Inputs: the scoring fixture pairs repeated under new ids (enough rows that a run takes a while
# and writes many times), best-of-N rows from them, and prompts.
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rows = [json.loads(l) for l in open("cdr-core/tests/fixtures/pairs.jsonl")]
with open(f"{work}/pairs.jsonl", "w") as f, open(f"{work}/bon.jsonl", "w") as g, \
        open(f"{work}/prompts.jsonl", "w") as h:
    for k in range(8):
        for r in rows:
            rid = f"{r['id']}-{k}"
            f.write(json.dumps({**r, "id": rid}) + "\n")
            g.write(json.dumps({"id": rid, "prompt": r["prompt"],
                                "responses": [r["chosen"], r["rejected"], r["chosen"][::-1]]}) + "\n")
            if k < 3:
                h.write(json.dumps({"id": rid, "prompt": r["prompt"]}) + "\n")
PY

strong=$fixtures/llama_gqa
weak=$fixtures/llama_sharded
args_for() {
  case $1 in
    score) echo "score --strong $strong --weak $weak --no-cache --chunk-rows 4 --input $work/pairs.jsonl" ;;
    annotate) echo "annotate --strong $strong --weak $weak --no-cache --chunk-rows 4 --input $work/bon.jsonl" ;;
    generate) echo "generate --policy $strong --n 2 --temperature 1.0 --max-new-tokens 10 --input $work/prompts.jsonl" ;;
  esac
}

now_ms() { date +%s%3N; }
fail() { echo "FAIL: $*" >&2; exit 1; }

check_same() { # reference, output, what
  [[ -s $2 ]] || fail "$3: no output"
  [[ $(tail -c1 "$2" | od -An -c | tr -d ' ') == '\n' ]] || fail "$3: torn last line"
  local dups
  dups=$(python3 -c 'import json,sys,collections; c=collections.Counter(json.loads(l)["id"] for l in open(sys.argv[1])); print(sum(v>1 for v in c.values()))' "$2")
  [[ $dups == 0 ]] || fail "$3: $dups duplicated ids"
  cmp -s "$1" "$2" || { diff <(cut -c1-150 "$1") <(cut -c1-150 "$2") | head -20 >&2; fail "$3: differs from the uninterrupted run"; }
}

for cmd in score annotate generate; do
  read -r -a args <<<"$(args_for $cmd)"
  ref=$work/$cmd.ref.jsonl
  start=$(now_ms)
  "$bin" "${args[@]}" --output "$ref" --quiet 2>"$work/log" || { cat "$work/log"; fail "$cmd: reference run"; }
  took=$(( $(now_ms) - start ))
  ref_rows=$(wc -l <"$ref")
  echo "== $cmd: uninterrupted run ${took} ms, $ref_rows rows; $trials kill/resume trials"
  interrupted=0 torn=0 kills=0
  for ((t = 1; t <= trials; t++)); do
    out=$work/$cmd.out.jsonl
    rm -f "$out"*
    # One or two kills at random points of the run, then a resume that runs to the end.
    rounds=$(( 1 + RANDOM % 2 ))
    for ((k = 0; k < rounds; k++)); do
      "$bin" "${args[@]}" --output "$out" --quiet 2>"$work/log" &
      pid=$!
      delay=$(( RANDOM * took / 32768 ))
      sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
      if kill -KILL "$pid" 2>/dev/null; then
        kills=$((kills + 1))
        wait "$pid" 2>/dev/null || true
        if [[ -s $out ]] && (( RANDOM % 2 )); then
          # A kill inside a write leaves part of a row. cdr writes a row in one call, so a kill
          # rarely lands there; cut the file mid-row to stand for it (as a power loss would).
          size=$(wc -c <"$out")
          cut=$(( 1 + RANDOM % 60 ))
          (( cut < size )) && truncate -s $(( size - cut )) "$out"
        fi
        if [[ -s $out ]]; then
          rows=$(wc -l <"$out")
          (( rows < ref_rows )) && interrupted=$((interrupted + 1))
          [[ $(tail -c1 "$out" | od -An -c | tr -d ' ') != '\n' ]] && torn=$((torn + 1))
        fi
      else
        wait "$pid" || { cat "$work/log"; fail "$cmd trial $t: run failed"; }
      fi
    done
    "$bin" "${args[@]}" --output "$out" --quiet 2>"$work/log" || { cat "$work/log"; fail "$cmd trial $t: resume failed"; }
    check_same "$ref" "$out" "$cmd trial $t"
  done
  echo "   $trials/$trials trials identical to the uninterrupted run ($kills kills, $interrupted left a partial output, $torn ended mid-row before the resume)"

  # A full disk: a file-size limit at half the output. SIGXFSZ is ignored so the write fails
  # with EFBIG (what ENOSPC looks like to cdr: a failed write) instead of killing the process.
  out=$work/$cmd.full.jsonl
  rm -f "$out"*
  limit_kb=$(( $(wc -c <"$ref") / 2048 + 1 ))
  set +e
  (trap '' XFSZ; ulimit -f "$limit_kb"; exec "$bin" "${args[@]}" --output "$out" --quiet) 2>"$work/log"
  rc=$?
  set -e
  [[ $rc == 1 ]] || { cat "$work/log"; fail "$cmd: full disk: exit $rc, expected 1"; }
  grep -q "cannot write $out: File too large" "$work/log" || { cat "$work/log"; fail "$cmd: full disk: unclear error"; }
  [[ $(tail -c1 "$out" | od -An -c | tr -d ' ') == '\n' ]] || fail "$cmd: full disk left a torn row"
  partial=$(wc -l <"$out")
  message=$(grep -m1 -o 'error: .*' "$work/log")
  "$bin" "${args[@]}" --output "$out" --quiet 2>"$work/log" || { cat "$work/log"; fail "$cmd: resume after full disk"; }
  check_same "$ref" "$out" "$cmd after a full disk"
  echo "   full disk (limit ${limit_kb} KiB): exit 1 after $partial rows, '$message'; resumed to the same file"

  # A real full file system (ENOSPC), where this machine lets us mount a small tmpfs (root in
  # most containers); then space comes back (remount larger) and the same command resumes.
  mnt=$work/tmpfs
  mkdir -p "$mnt"
  size_kb=$(( $(wc -c <"$ref") / 2048 + 4 ))
  if mount -t tmpfs -o size=${size_kb}k tmpfs "$mnt" 2>/dev/null; then
    out=$mnt/$cmd.jsonl
    set +e
    "$bin" "${args[@]}" --output "$out" --quiet 2>"$work/log"
    rc=$?
    set -e
    message=$(grep -m1 -o 'error: .*' "$work/log" || true)
    partial=$(wc -l <"$out" 2>/dev/null || echo 0)
    if [[ $rc != 1 ]] || ! grep -q "cannot write $out: No space left on device" "$work/log"; then
      cat "$work/log"; umount "$mnt"; fail "$cmd: ENOSPC: exit $rc, unclear error"
    fi
    [[ $(tail -c1 "$out" | od -An -c | tr -d ' ') == '\n' ]] || { umount "$mnt"; fail "$cmd: ENOSPC left a torn row"; }
    mount -o remount,size=$(( size_kb * 4 ))k "$mnt"
    "$bin" "${args[@]}" --output "$out" --quiet 2>"$work/log" || { cat "$work/log"; umount "$mnt"; fail "$cmd: resume after ENOSPC"; }
    cp "$out" "$work/$cmd.enospc.jsonl"
    umount "$mnt"
    check_same "$ref" "$work/$cmd.enospc.jsonl" "$cmd after ENOSPC"
    echo "   full tmpfs (${size_kb} KiB): exit 1 after $partial rows, '$message'; space given back, resumed to the same file"
  else
    echo "   full tmpfs: skipped (cannot mount a tmpfs here; the file-size limit above stands in)"
  fi
done
echo "kill/resume: all passed"
