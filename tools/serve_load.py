#!/usr/bin/env python3
"""Load test of `cdr serve`: many concurrent clients on loopback, against offline `cdr score`.

    tools/serve_load.py --cdr target/debug/cdr --strong S --weak W --input rows.jsonl \
        [--clients 64] [--requests 128] [--out DIR] [-- extra cdr flags...]

Two phases, each `--requests` requests (the input's rows, cycled, each request one row:
its prompt and its responses), sent by `--clients` threads that retry on connection errors and
503s with backoff:

1. throughput: p50/p99 latency and rows/s, against `cdr score` on the same rows in one process
   (its model loading subtracted: a one-row run is timed too). Fails below --min-ratio (0.8).
2. kill -9: the server is killed with SIGKILL when a third of the requests are answered, and
   restarted on the same port; the clients retry. Every request must be answered exactly once in
   the client log, with the rewards `cdr score` wrote for its row (to 1e-6).

Only the standard library; prints a table, exits non-zero when a check fails.
"""

import argparse
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args, port, extra):
        self.cmd = [args.cdr, "serve", "--strong", args.strong, "--weak", args.weak,
                    "--port", str(port), "--max-wait-ms", str(args.max_wait_ms),
                    "--no-cache"] + extra
        self.port = port
        self.proc = None

    def start(self):
        start = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        for line in self.proc.stderr:
            if "listening on" in line:
                break
        else:
            sys.exit(f"cdr serve exited before listening ({self.proc.wait()})")
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        return time.monotonic() - start

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)


def post(port, body, timeout=600):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/score", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def run_clients(port, requests, clients, log_path, on_answer=None):
    """Sends every request (id, body) until it gets a 200; returns latencies and retries."""
    todo = queue.Queue()
    for r in requests:
        todo.put(r)
    latencies, retries = [], [0]
    lock = threading.Lock()
    log = open(log_path, "a")

    def client():
        while True:
            try:
                rid, body = todo.get_nowait()
            except queue.Empty:
                return
            start = time.monotonic()
            backoff = 0.05
            while True:
                try:
                    status, data = post(port, body)
                except (OSError, http.client.HTTPException):
                    status, data = None, b""
                if status == 200:
                    break
                if status is not None and status not in (429, 503):
                    sys.exit(f"request {rid}: HTTP {status}: {data[:300]!r}")
                with lock:
                    retries[0] += 1
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            elapsed = time.monotonic() - start
            answer = json.loads(data)
            with lock:
                latencies.append(elapsed)
                log.write(json.dumps({"request": rid, "rewards": answer["rewards"],
                                      "scores": answer["scores"]}) + "\n")
                log.flush()
                if on_answer:
                    on_answer(len(latencies))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    return time.monotonic() - start, latencies, retries[0]


def unique(prompt, i):
    """`prompt` (a string or a message list) with the request number in its last turn."""
    if isinstance(prompt, str):
        return f"{prompt} (request {i})"
    turns = [dict(t) for t in prompt]
    turns[-1]["content"] = f"{turns[-1]['content']} (request {i})"
    return turns


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cdr", required=True)
    ap.add_argument("--strong", required=True)
    ap.add_argument("--weak", required=True)
    ap.add_argument("--input", required=True, help="JSONL rows: prompt + chosen/rejected or responses")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--max-wait-ms", type=int, default=10)
    ap.add_argument("--min-ratio", type=float, default=0.8)
    ap.add_argument("--out", default=None, help="keep the client logs and scores here")
    ap.add_argument("extra", nargs="*", help="flags for both cdr score and cdr serve (after --)")
    args = ap.parse_args()

    rows = [json.loads(l) for l in open(args.input) if l.strip()]
    if not rows:
        sys.exit(f"{args.input}: no rows")
    out = args.out or tempfile.mkdtemp(prefix="cdr-load-")
    os.makedirs(out, exist_ok=True)

    # The requests: rows cycled, each with a unique id; the same rows as one file for cdr score.
    requests, expanded = [], []
    for i in range(args.requests):
        row = dict(rows[i % len(rows)])
        row["id"] = f"req-{i:05d}"
        # Every request's text is its own (as RL rollouts are): neither side gains from repeats.
        row["prompt"] = unique(row["prompt"], i)
        responses = row.get("responses") or [row["chosen"], row["rejected"]]
        requests.append((row["id"], json.dumps({"prompt": row["prompt"], "responses": responses})))
        expanded.append({"id": row["id"], "prompt": row["prompt"], "responses": responses})
    rows_path = os.path.join(out, "rows.jsonl")
    with open(rows_path, "w") as f:
        for r in expanded:
            f.write(json.dumps(r) + "\n")

    def offline(path, name):
        dest = os.path.join(out, name)
        for suffix in ("", ".done"):
            if os.path.exists(dest + suffix):
                os.remove(dest + suffix)
        cmd = [args.cdr, "score", "--quiet", "--no-cache", "--strong", args.strong, "--weak",
               args.weak, "--input", path, "--output", dest] + args.extra
        start = time.monotonic()
        subprocess.run(cmd, check=True)
        return time.monotonic() - start, dest

    one_path = os.path.join(out, "one.jsonl")
    with open(one_path, "w") as f:
        f.write(json.dumps(expanded[0]) + "\n")
    fixed, _ = offline(one_path, "one-scores.jsonl")
    total, scores_path = offline(rows_path, "scores.jsonl")
    offline_secs = max(total - fixed, 1e-9)
    # Each response's reward and both models' sums (with one model as both, rewards are 0 and
    # the sums carry the check).
    def numbers(scores):
        return [x for s in scores for x in (s["reward"], s["strong_logprob"], s["weak_logprob"])]

    want = {}
    for line in open(scores_path):
        r = json.loads(line)
        want[r["id"]] = numbers(r["scores"])

    port = free_port()
    server = Server(args, port, args.extra)
    failures = []
    try:
        load = server.start()
        # Phase 1: throughput.
        log1 = os.path.join(out, "clients-throughput.jsonl")
        open(log1, "w").close()
        secs, lat, retries1 = run_clients(port, requests, args.clients, log1)
        ratio = offline_secs / secs
        print(f"| phase | requests | clients | wall s | rows/s | p50 s | p99 s | retries |")
        print(f"|---|---|---|---|---|---|---|---|")
        print(f"| offline cdr score (load {fixed:.1f} s subtracted) | {len(requests)} | - | "
              f"{offline_secs:.2f} | {len(requests) / offline_secs:.2f} | - | - | - |")
        print(f"| cdr serve, throughput (load {load:.1f} s) | {len(requests)} | {args.clients} | "
              f"{secs:.2f} | {len(requests) / secs:.2f} | {percentile(lat, 50):.3f} | "
              f"{percentile(lat, 99):.3f} | {retries1} |")

        # Phase 2: kill -9 a third of the way through, restart on the same port.
        log2 = os.path.join(out, "clients-kill.jsonl")
        open(log2, "w").close()
        killed = threading.Event()

        def on_answer(n):
            if n >= len(requests) // 3 and not killed.is_set():
                killed.set()
                threading.Thread(target=restart, daemon=True).start()

        restart_secs = []

        def restart():
            server.kill9()
            restart_secs.append(server.start())

        secs2, lat2, retries2 = run_clients(port, requests, args.clients, log2, on_answer)
        print(f"| cdr serve, kill -9 at 1/3 + restart ({restart_secs[0] if restart_secs else 0:.1f} s) "
              f"| {len(requests)} | {args.clients} | {secs2:.2f} | {len(requests) / secs2:.2f} | "
              f"{percentile(lat2, 50):.3f} | {percentile(lat2, 99):.3f} | {retries2} |")
        print(f"\nthroughput ratio (serve / offline): {ratio:.2f} (required >= {args.min_ratio})")

        if ratio < args.min_ratio:
            failures.append(f"throughput ratio {ratio:.2f} < {args.min_ratio}")
        if not killed.is_set():
            failures.append("the server was never killed")
        for name, log in (("throughput", log1), ("kill", log2)):
            seen = {}
            worst = 0.0
            for line in open(log):
                r = json.loads(line)
                seen[r["request"]] = seen.get(r["request"], 0) + 1
                got = numbers(r["scores"])
                if len(got) != len(want[r["request"]]):
                    failures.append(f"{name}: {r['request']} has {len(got)} numbers")
                for g, w in zip(got, want[r["request"]]):
                    worst = max(worst, abs(g - w))
            missing = [rid for rid, _ in requests if rid not in seen]
            twice = [rid for rid, n in seen.items() if n != 1]
            print(f"{name}: {len(seen)}/{len(requests)} requests answered once, "
                  f"{len(missing)} missing, {len(twice)} more than once, "
                  f"max |reward - cdr score| = {worst:.2e}")
            if missing or twice:
                failures.append(f"{name}: {len(missing)} missing, {len(twice)} answered twice")
            if worst > 1e-6:
                failures.append(f"{name}: rewards differ from cdr score by {worst:.2e}")
    finally:
        server.stop()
    if failures:
        sys.exit("FAILED: " + "; ".join(failures))
    print("ok")


if __name__ == "__main__":
    main()
