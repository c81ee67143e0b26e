#!/usr/bin/env python3
"""Trains a DPO LoRA adapter for SmolLM2-135M-Instruct on half of HumanEvalPack, on the CPU.

The pair this makes, (SmolLM2 + adapter) over SmolLM2, is DPO's implicit reward: TRL trains a
fresh adapter with no reference model and takes the reference log-probs from the same model with
the adapter disabled, i.e. the base. cdr scores exactly that pair with `--strong ADAPTER --weak
BASE`, loading the base once.

The split is by task: HumanEvalPack has the same 164 tasks in each of its six languages, and a
task's six rows go to the same side, so the held-out half asks for functions the adapter never saw
in any language. The split, the adapter (adapter_config.json + adapter_model.safetensors) and the
training log are written to --out.

    python tools/train_dpo_lora.py --base .cache/assets/SmolLM2-135M-Instruct.Q4_1.gguf \
        --data ../shared/data/prefsets/hep.jsonl --out examples/adapters/smollm2-hep-dpo

Needs torch, transformers, peft, trl, datasets and gguf (the base is the GGUF cdr's CI fetches;
transformers dequantizes it to f32 on load, as cdr does).
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path


def task_split(rows, seed):
    """Task index of each row (its position within its subset) and the training task set."""
    seen = {}
    tasks = []
    for row in rows:
        subset = row["subset"]
        tasks.append(seen.get(subset, 0))
        seen[subset] = seen.get(subset, 0) + 1
    counts = set(seen.values())
    if len(counts) != 1:
        sys.exit(f"subsets have different row counts {seen}; cannot split by task")
    n = counts.pop()
    train = set(random.Random(seed).sample(range(n), n // 2))
    return tasks, train


def store_bf16(out):
    """Rewrites the adapter's tensors in bf16: half the bytes in the repository. PEFT and cdr both
    compute the low-rank path in f32 whatever the stored dtype."""
    import torch
    from safetensors.torch import load_file, save_file

    path = Path(out) / "adapter_model.safetensors"
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="base model: a GGUF file or an HF directory")
    ap.add_argument("--data", required=True, help="HumanEvalPack preference rows (jsonl)")
    ap.add_argument("--out", required=True, help="output folder for the adapter, split and log")
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=-1, help="stop early (for a timing run)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=640)
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast (the CPU's matrix units; adapter weights stay f32)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "train.log", "w")

    def say(msg):
        print(msg, file=sys.stderr, flush=True)
        log.write(msg + "\n")
        log.flush()

    rows = [json.loads(line) for line in open(args.data, encoding="utf-8") if line.strip()]
    tasks, train_tasks = task_split(rows, args.seed)
    split = {
        "seed": args.seed,
        "source": os.path.basename(args.data),
        "train_tasks": sorted(train_tasks),
        "train_ids": [r["id"] for r, t in zip(rows, tasks) if t in train_tasks],
        "heldout_ids": [r["id"] for r, t in zip(rows, tasks) if t not in train_tasks],
    }
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    train_rows = [r for r, t in zip(rows, tasks) if t in train_tasks]
    random.Random(args.seed).shuffle(train_rows)
    say(f"{len(train_rows)} training rows ({len(train_tasks)} tasks), "
        f"{len(split['heldout_ids'])} held out")

    base = Path(args.base)
    if base.is_file():
        load = {"pretrained_model_name_or_path": str(base.parent), "gguf_file": base.name}
    else:
        load = {"pretrained_model_name_or_path": str(base)}
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(**load)
    model = AutoModelForCausalLM.from_pretrained(**load, dtype=torch.float32)
    # transformers dequantizes a GGUF to plain f32 Linear layers but keeps a GGUF "quantizer" on the
    # model, which Trainer refuses to train; there is nothing quantized left to protect.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
        model.is_quantized = False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    say(f"loaded {args.base} in {time.time() - t0:.1f} s")

    # Chat messages: TRL applies the model's chat template, the one cdr applies when scoring.
    data = Dataset.from_list([
        {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}],
        }
        for r in train_rows
    ])
    peft_config = LoraConfig(
        r=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    config = DPOConfig(
        output_dir=str(out / "trainer"),
        use_cpu=True,
        bf16=args.bf16,
        gradient_checkpointing=False,
        beta=args.beta,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=5,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        max_length=args.max_length,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        dataloader_num_workers=0,
    )

    class Log(TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kw):
            elapsed = time.time() - t_train
            say(f"step {state.global_step}/{state.max_steps} {elapsed:.0f}s "
                + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in (logs or {}).items()}))

    trainer = DPOTrainer(model=model, args=config, train_dataset=data,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[Log()])
    t_train = time.time()
    trainer.train()
    took = time.time() - t_train
    say(f"trained in {took:.0f} s on {args.threads} threads "
        f"({torch.get_num_threads()} torch threads), torch {torch.__version__}")
    trainer.model.save_pretrained(str(out))
    store_bf16(out)
    # The base recorded relative to the adapter folder, which cdr resolves it against.
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = os.path.relpath(base.resolve(), out.resolve())
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for extra in ["README.md"]:
        (out / extra).unlink(missing_ok=True)
    import shutil
    shutil.rmtree(out / "trainer", ignore_errors=True)
    say(f"wrote {out}")


if __name__ == "__main__":
    main()
