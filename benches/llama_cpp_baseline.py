"""The llama.cpp way to score a preference workload on a GGUF file, as a tuned script does it.

Reads the same token ids as `score_workload` (its workload JSON) and scores them with llama.cpp
through its Python bindings (`llama-cpp-python`, built from source by `tools/llama_cpp.sh`): all
logits on, each prompt evaluated once, then for each response the key/value cache is cut back to the
prompt and the response evaluated after it (the prefix sharing llama.cpp offers), and the response
tokens' log-softmax summed. Prints one JSON line like `torch_baseline.py`: seconds, per-sequence sums,
peak memory (resident, whole process).

    python benches/llama_cpp_baseline.py --model M.gguf --workload W.json --threads 2
"""
import argparse
import json
import resource
import time

import numpy as np
from llama_cpp import Llama, __version__


def log_softmax_sum(logits, targets):
    logits = logits.astype(np.float64)
    m = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
    return float((logits[np.arange(len(targets)), targets] - lse).sum())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=512, help="llama.cpp n_batch (tokens per decode call)")
    args = p.parse_args()
    workload = json.load(open(args.workload))
    groups = workload["groups"]
    longest = max(len(g["prompt"]) + len(r) for g in groups for r in g["responses"])
    llm = Llama(
        model_path=args.model,
        n_ctx=longest + 8,
        n_batch=args.batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=True,
        verbose=False,
    )

    def score(group):
        prompt = group["prompt"]
        llm.reset()
        llm.eval(prompt)
        sums = []
        for response in group["responses"]:
            # Cut the cache back to the prompt; eval() drops everything past n_tokens.
            llm.n_tokens = len(prompt)
            llm.eval(response)
            start = len(prompt)
            logits = np.asarray(llm.scores[start - 1 : start + len(response) - 1])
            sums.append(log_softmax_sum(logits, np.asarray(response)))
        return sums

    score(groups[0])  # warm-up, untimed (page faults, thread start)
    t = time.perf_counter()
    sums = [s for g in groups for s in score(g)]
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    print(
        json.dumps(
            {
                "seconds": seconds,
                "sums": sums,
                "peak_mem_gb": peak,
                "ceiling_tflops": None,
                "torch": f"llama.cpp (llama-cpp-python {__version__})",
            }
        )
    )


if __name__ == "__main__":
    main()
