#!/usr/bin/env python3
r"""Generate PEFT LoRA adapter fixtures for cdr's adapter pairs (issue 20): tiny random Llama and
Qwen2 bases, several LoRA adapters over them written by PEFT's own save_pretrained, the merged
checkpoint of each adapter, and float32 reference log-probs of base, base + adapter and merged.

Install (CPU only, no model hub, a few seconds to run):

    python3 -m venv /tmp/lora-venv
    /tmp/lora-venv/bin/pip install torch transformers safetensors tokenizers peft

Run:

    python make_lora_fixtures.py [--repo /path/to/cdr] [--out DIR]

--repo is only read: the tokenizer.json and tokenizer_config.json of the existing fixture
cdr-models/tests/fixtures/llama_gqa are copied into every base and merged folder, so the adapter
fixtures share the tokenizer (byte-level BPE, vocabulary 384, chatml template) that cdr's other
model fixtures already test.  --out (default: ./fixtures next to this script) is wiped and
rewritten.  Everything is seeded and runs single-threaded with HF_HUB_OFFLINE=1.

Layout under --out:

    manifest.json                 versions, cases, sizes
    base_llama/                   LlamaForCausalLM, hidden 64, 8 heads / 2 kv heads, untied, f32
    base_qwen2/                   Qwen2ForCausalLM, hidden 64, 4 heads / 2 kv heads, q/k/v
                                  biases, tied embeddings, f32
    <case>/adapter/               exactly what PeftModel.save_pretrained writes:
                                  adapter_config.json, adapter_model.safetensors, README.md;
                                  base_model_name_or_path = "../../base_<arch>", i.e. relative to
                                  the adapter folder (PEFT itself would resolve it against the
                                  current directory; see peft-facts.md)
    <case>/merged/                merge_and_unload() of base + adapter, save_pretrained (f32),
                                  plus the tokenizer files (only for accepted cases)
    <case>/expected.json          see below

expected.json of an accepted case:
    {"case", "base", "accept": true, "description",
     "modules": {module_name: {"r", "lora_alpha", "scaling", "in_features", "out_features"}},
                  module_name as in the base checkpoint ("model.layers.0.self_attn.q_proj"), read
                  from PEFT's loaded layers: the resolution of rank_pattern / alpha_pattern /
                  use_rslora / layers_to_transform / target_modules that cdr must reproduce
     "modules_to_save": [module_name, ...],
     "in_memory_alpha_differs": {module_name: alpha}: modules whose alpha in the model that was
                  saved differs from the reload's, because adapter_config.json sorts the pattern keys
                  (see the rank_alpha_pattern case); the reload's values are the reference
     "adapter_tensors": {safetensors key: shape},
     "max_abs_merged_vs_adapter": float,
     "sequences": [{"text": str|null, "ids": [...], "base_logprobs": [...],
                    "adapter_logprobs": [...], "merged_logprobs": [...]}]}
logprobs[t] = log_softmax(logits[t])[ids[t + 1]], batch of one, no padding, float32, eager
attention, each model loaded fresh from disk (PeftModel.from_pretrained over the base folder for
"adapter").  A case whose adapter must be refused has {"case", "base", "accept": false,
"refuse_key": KEY, "description"} and no merged folder.
"""

import os
import sys

# PEFT keeps target_modules as a Python set and writes it in set order, which depends on string
# hashing: pin the hash seed (by re-running under it) so two runs write byte-identical configs.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

# The machine may be shared with long builds: one thread is plenty for these sizes, and it also
# keeps the float32 reductions in the same order from run to run.
torch.set_num_threads(1)

VOCAB_SIZE = 384  # the size of the shared fixture tokenizer
BOS_ID, EOS_ID, PAD_ID = 0, 1, 2

# Base weight scales, the same as tools/make_fixtures.py: the transformers default (std 0.02)
# gives nearly uniform next-token distributions, where an adapter's effect would be invisible.
EMBED_STD = 0.3
LINEAR_STD = 0.2
BIAS_STD = 0.3
LM_HEAD_STD = 0.3
NORM_JITTER = 0.1

# LoRA factor scales.  Large enough that every adapter moves the log-probs clearly (asserted
# below), small enough that rslora's larger scaling (alpha / sqrt(r)) does not saturate them.
LORA_A_STD = 0.15
LORA_B_STD = 0.03
LM_HEAD_DELTA_STD = 0.1  # perturbation of the modules_to_save copy of lm_head

# Texts scored by every model (written for this project); the random-id sequences below add
# tokens the texts never reach (special tokens included).
TEXTS = [
    "Hi",
    "The café by the river opens at 8:15.",
    "def add(a, b):\n    return a + b\n",
    "In the evening the town was quiet, except for the bells and the distant trains, "
    "and 3 boats waited in the fog near the old mill.",
]
RANDOM_LENGTHS = [5, 33]
MIN_ADAPTER_EFFECT = 0.05  # each adapter must move some log-prob by at least this much
MERGE_TOLERANCE = 1e-4  # the acceptance tolerance of the issue, checked here on PEFT itself


def common():
    return dict(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        num_hidden_layers=2,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )


def llama_config():
    return LlamaConfig(
        **common(),
        hidden_size=64,
        intermediate_size=160,
        num_attention_heads=8,
        num_key_value_heads=2,
        rope_theta=10000.0,
        tie_word_embeddings=False,  # untied, so modules_to_save=["lm_head"] is meaningful
    )


def qwen2_config():
    return Qwen2Config(
        **common(),
        hidden_size=64,
        intermediate_size=160,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        use_sliding_window=False,
    )


BASES = {
    # name: (config factory, model class, seed)
    "base_llama": (llama_config, LlamaForCausalLM, 7101),
    "base_qwen2": (qwen2_config, Qwen2ForCausalLM, 7202),
}

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]

# Cases whose merged checkpoint is kept on disk (cdr scores the merged model over the base).
KEEP_MERGED = {"attn_qkvo", "rslora", "modules_to_save_lm_head"}

# Each case: name, base, LoraConfig kwargs, what is special, and for cases cdr must refuse, the
# config key it must name.  Only the keys that differ from LoraConfig's defaults are given.
CASES = [
    dict(
        name="attn_qkvo",
        base="base_llama",
        lora=dict(r=4, lora_alpha=8, target_modules=ATTN),
        description="(a) attention q/k/v/o, scaling alpha/r = 2",
    ),
    dict(
        name="all_linear",
        base="base_llama",
        lora=dict(
            r=8,
            lora_alpha=16,
            target_modules="all-linear",
            # A list entry matches the whole module name or a dot-separated suffix of it.
            exclude_modules=["layers.0.mlp.down_proj"],
        ),
        description="(b) target_modules='all-linear' (PEFT saves the resolved names; lm_head is never "
        "included) minus exclude_modules layers.0.mlp.down_proj",
    ),
    dict(
        name="rslora",
        base="base_qwen2",
        lora=dict(r=8, lora_alpha=4, use_rslora=True, target_modules=["q_proj", "v_proj", "gate_proj", "down_proj"]),
        description="(c) use_rslora: scaling alpha/sqrt(r) = 4/sqrt(8), not alpha/r = 0.5; Qwen2 with q/v biases",
    ),
    dict(
        name="rank_alpha_pattern",
        base="base_llama",
        lora=dict(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "v_proj", "up_proj", "down_proj"],
            # Keys are regexes matched against a dot-separated suffix of the module name, in this
            # order; the first key that matches wins.  layers.0's q_proj matches both keys and
            # takes the first (r=2); layers.1's q_proj only the second (r=6).
            rank_pattern={r"layers\.0\.\w+\.\w+_proj": 2, "q_proj": 6, "model.layers.1.mlp.down_proj": 3},
            # "^model..." anchors at the start of the full name; "v_proj" matches every v_proj.
            # Given in this order, layers.1's v_proj takes alpha 20 in the model that is saved,
            # but adapter_config.json is written with sorted keys ("^..." sorts before "v_proj"),
            # so PEFT's reload (and cdr) resolve it to 3: the file's key order is what counts.
            alpha_pattern={"v_proj": 20, r"^model\.layers\.1\.self_attn\.v_proj": 3, "up_proj": 5},
        ),
        description="(d) rank_pattern + alpha_pattern, first-match precedence, anchored and suffix keys",
    ),
    dict(
        name="regex_targets",
        base="base_qwen2",
        lora=dict(
            r=4,
            lora_alpha=12,
            # A string is one regex that must match the WHOLE module name (re.fullmatch).
            target_modules=r"model\.layers\.\d+\.(self_attn\.(k|o)_proj|mlp\.up_proj)",
        ),
        description="(e) target_modules as a regex string (full match): k_proj, o_proj, up_proj",
    ),
    dict(
        name="layers_to_transform",
        base="base_qwen2",
        lora=dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], layers_to_transform=[1]),
        description="(f) layers_to_transform=[1]: only layer 1's q/v/down_proj get LoRA",
    ),
    dict(
        name="modules_to_save_lm_head",
        base="base_llama",
        lora=dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"]),
        description="(g) modules_to_save=['lm_head']: a full replacement lm_head.weight is stored in the adapter",
    ),
    dict(
        name="embed_and_head",
        base="base_llama",
        lora=dict(r=4, lora_alpha=6, target_modules=["embed_tokens", "lm_head", "o_proj"]),
        description="(h) LoRA on the input embedding (lora_embedding_A/B) and on the untied lm_head",
    ),
    dict(
        name="refuse_dora",
        base="base_llama",
        lora=dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True),
        description="use_dora=True: adds lora_magnitude_vector tensors and a norm-rescaled weight; must be refused",
        refuse_key="use_dora",
    ),
    dict(
        name="refuse_bias",
        base="base_qwen2",
        lora=dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], bias="lora_only"),
        description="bias='lora_only': the adapter carries replacement biases of the targeted layers; must be refused",
        refuse_key="bias",
    ),
]


def reinit_base_(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # named_parameters() yields a tied lm_head/embedding only once (as embed_tokens).
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                std, mean = BIAS_STD, 0.0
            elif name.endswith("norm.weight"):
                std, mean = NORM_JITTER, 1.0
            elif "embed_tokens" in name:
                std, mean = EMBED_STD, 0.0
            elif name.startswith("lm_head"):
                std, mean = LM_HEAD_STD, 0.0
            else:
                std, mean = LINEAR_STD, 0.0
            p.copy_(mean + std * torch.randn(p.shape, generator=gen))


def randomize_adapter_(peft_model, seed):
    """Give every LoRA factor (and modules_to_save copy) seeded non-zero values.

    init_lora_weights=False already leaves lora_B non-zero, but with nn.Linear's default init,
    whose scale depends on r; explicit values keep every case's effect in the same range and make
    the fixture independent of PEFT's init code.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in sorted(peft_model.named_modules(), key=lambda kv: kv[0]):
            if isinstance(module, LoraLayer) and "default" in module.lora_A:
                a = module.lora_A["default"].weight
                b = module.lora_B["default"].weight
                a.copy_(LORA_A_STD * torch.randn(a.shape, generator=gen))
                b.copy_(LORA_B_STD * torch.randn(b.shape, generator=gen))
            if isinstance(module, LoraLayer) and "default" in module.lora_embedding_A:
                a = module.lora_embedding_A["default"]
                b = module.lora_embedding_B["default"]
                a.copy_(LORA_A_STD * torch.randn(a.shape, generator=gen))
                b.copy_(LORA_B_STD * torch.randn(b.shape, generator=gen))
            if type(module).__name__ == "ModulesToSaveWrapper":
                copy = module.modules_to_save["default"]
                for p in copy.parameters():
                    p.add_(LM_HEAD_DELTA_STD * torch.randn(p.shape, generator=gen))
            if isinstance(module, LoraLayer):
                base = module.get_base_layer()
                # bias="lora_only"/"all" trains the base layer's own bias; move it so the
                # saved bias differs from the base checkpoint's, as after real training.
                if getattr(base, "bias", None) is not None and base.bias.requires_grad:
                    base.bias.add_(0.1 * torch.randn(base.bias.shape, generator=gen))


def make_sequences(tok, seed):
    seqs = []
    for text in TEXTS:
        ids = tok.encode(text).ids
        assert len(ids) >= 2 and tok.decode(ids) == text, text
        seqs.append({"text": text, "ids": ids})
    gen = torch.Generator().manual_seed(seed)
    for n in RANDOM_LENGTHS:
        seqs.append({"text": None, "ids": torch.randint(0, VOCAB_SIZE, (n,), generator=gen).tolist()})
    return seqs


@torch.no_grad()
def score(model, ids):
    x = torch.tensor([ids], dtype=torch.long)
    logits = model(input_ids=x, use_cache=False).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    return [float(v) for v in lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]]


def load_base(out, base_name):
    cls = BASES[base_name][1]
    return cls.from_pretrained(out / base_name, dtype=torch.float32, attn_implementation="eager").eval()


def copy_tokenizer(src_dir, dst):
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(src_dir / f, dst / f)


def build_base(out, name, tok_dir):
    make_config, cls, seed = BASES[name]
    torch.manual_seed(seed)
    model = cls(make_config())
    reinit_base_(model, seed)
    folder = out / name
    model.save_pretrained(folder)
    copy_tokenizer(tok_dir, folder)
    return folder


def adapter_tensors(adapter_dir):
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in sorted(f.keys())}


def resolved_modules(peft_model):
    """Per targeted module: what PEFT resolved from the config (cdr must reproduce it)."""
    prefix = "base_model.model."
    modules = {}
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.r:
            assert name.startswith(prefix), name
            modules[name[len(prefix):]] = {
                "r": module.r["default"],
                "lora_alpha": module.lora_alpha["default"],
                "scaling": module.scaling["default"],
                "in_features": module.in_features,
                "out_features": module.out_features,
            }
    return dict(sorted(modules.items()))


def check_adapter_file(case, tensors, modules):
    """The safetensors keys PEFT wrote agree with the layers it built, as peft-facts.md states."""
    prefix = "base_model.model."
    for key, shape in tensors.items():
        assert key.startswith(prefix), key
    lora_keys = set()
    for mod, info in modules.items():
        # Embeddings store bare parameters, lora_embedding_A [r, vocab] and _B [hidden, r].
        if f"{prefix}{mod}.lora_embedding_A" in tensors:
            names = [f"{prefix}{mod}.lora_embedding_{x}" for x in "AB"]
        else:
            names = [f"{prefix}{mod}.lora_{x}.weight" for x in "AB"]
        a, b = tensors[names[0]], tensors[names[1]]
        lora_keys.update(names)
        assert a == [info["r"], info["in_features"]], (mod, a)
        assert b == [info["out_features"], info["r"]], (mod, b)
    # Nothing else for a plain LoRA case but the modules_to_save replacements.
    others = sorted(set(tensors) - lora_keys)
    want = [f"{prefix}{m}.weight" for m in case["lora"].get("modules_to_save", [])]
    assert others == sorted(want), others


def build_case(out, case, tok, tok_dir, index):
    name, base_name = case["name"], case["base"]
    folder = out / name
    adapter_dir = folder / "adapter"
    folder.mkdir(parents=True)

    # Build and save the adapter exactly as a training run would: get_peft_model over the base,
    # (here: random instead of trained factors), save_pretrained.
    base = load_base(out, base_name)
    config = LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **case["lora"])
    pm = get_peft_model(base, config)
    randomize_adapter_(pm, 9000 + index)
    # Relative to the adapter folder, as cdr will resolve it (PEFT records whatever string the base
    # was loaded from, here an absolute temporary path, so it is set explicitly).
    pm.peft_config["default"].base_model_name_or_path = f"../../{base_name}"
    # save_embedding_layers=False: "auto" would look the base up (hub or cwd-relative path) only to
    # decide whether embeddings were resized; they never are here.
    pm.save_pretrained(adapter_dir, save_embedding_layers=False)
    # The model card records nothing cdr reads.
    (adapter_dir / "README.md").unlink()
    in_memory = resolved_modules(pm)
    del pm, base

    saved_cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    tensors = adapter_tensors(adapter_dir)
    if "refuse_key" in case:
        key = case["refuse_key"]
        assert saved_cfg[key] not in (False, None, "none"), (key, saved_cfg[key])
        expected = {"case": name, "base": base_name, "accept": False, "refuse_key": key,
                    "description": case["description"], "adapter_tensors": tensors}
        write_json(folder / "expected.json", expected)
        return expected

    # Reference: a fresh base from disk with the adapter loaded from disk, as a user would.
    pm = PeftModel.from_pretrained(load_base(out, base_name), adapter_dir).eval()
    modules = resolved_modules(pm)
    assert modules, name
    # Modules whose alpha the saved model had otherwise (the rank cannot differ: the tensor shapes
    # would not load).  Only the rank_alpha_pattern case is built to have one.
    reordered = sorted(m for m in modules if modules[m] != in_memory[m])
    assert bool(reordered) == (name == "rank_alpha_pattern"), (name, reordered)
    for key in ("rank_pattern", "alpha_pattern"):
        assert list(saved_cfg[key]) == sorted(saved_cfg[key]), "PEFT no longer sorts the pattern keys"
    check_adapter_file(case, tensors, modules)
    seqs = make_sequences(tok, seed=4242)
    base = load_base(out, base_name)
    for s in seqs:
        s["base_logprobs"] = score(base, s["ids"])
        s["adapter_logprobs"] = score(pm, s["ids"])
    effect = max(abs(a - b) for s in seqs for a, b in zip(s["adapter_logprobs"], s["base_logprobs"]))
    assert effect > MIN_ADAPTER_EFFECT, (name, effect)
    del pm

    # Merged checkpoint: the "strong" model an adapter pair must agree with.
    merged = PeftModel.from_pretrained(load_base(out, base_name), adapter_dir).merge_and_unload()
    merged.save_pretrained(folder / "merged")
    copy_tokenizer(tok_dir, folder / "merged")
    del merged
    cls = BASES[base_name][1]
    merged = cls.from_pretrained(folder / "merged", dtype=torch.float32, attn_implementation="eager").eval()
    for s in seqs:
        s["merged_logprobs"] = score(merged, s["ids"])
    merge_diff = max(abs(a - b) for s in seqs for a, b in zip(s["merged_logprobs"], s["adapter_logprobs"]))
    assert merge_diff < MERGE_TOLERANCE, (name, merge_diff)
    del merged
    # The merged checkpoints are half a megabyte each; cdr's pair tests read three of them, and
    # every case keeps its merged log-probs in expected.json.
    if name not in KEEP_MERGED:
        shutil.rmtree(folder / "merged")

    expected = {
        "case": name,
        "base": base_name,
        "accept": True,
        "description": case["description"],
        "adapter_config": {k: saved_cfg[k] for k in (
            "r", "lora_alpha", "use_rslora", "target_modules", "exclude_modules", "rank_pattern",
            "alpha_pattern", "layers_to_transform", "layers_pattern", "modules_to_save")},
        "modules": modules,
        "modules_to_save": list(case["lora"].get("modules_to_save", [])),
        "in_memory_alpha_differs": {m: in_memory[m]["lora_alpha"] for m in reordered},
        "adapter_tensors": tensors,
        "max_abs_adapter_vs_base": effect,
        "max_abs_merged_vs_adapter": merge_diff,
        "sequences": seqs,
    }
    write_json(folder / "expected.json", expected)
    return expected


def check_peft_resolves_relative_to_cwd(out):
    """Fact check for peft-facts.md: AutoPeftModel resolves base_model_name_or_path against the
    current directory, so the relative path written here works from the adapter folder only."""
    from peft import AutoPeftModelForCausalLM

    adapter_dir = out / "attn_qkvo" / "adapter"
    cwd = os.getcwd()
    try:
        os.chdir(adapter_dir)
        m = AutoPeftModelForCausalLM.from_pretrained(".", dtype=torch.float32)
        assert type(m.get_base_model()).__name__ == "LlamaForCausalLM"
    finally:
        os.chdir(cwd)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def dir_size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main():
    here = Path(__file__).resolve().parent
    default_repo = here.parent if (here.parent / "cdr-models").is_dir() else Path("/work/main")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=default_repo, help="cdr checkout (read only)")
    ap.add_argument("--out", type=Path, default=default_repo / "cdr-models" / "tests" / "fixtures" / "lora",
                    help="output folder (wiped)")
    args = ap.parse_args()

    tok_dir = args.repo.resolve() / "cdr-models" / "tests" / "fixtures" / "llama_gqa"
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()

    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    # Work inside the output folder with relative paths: PEFT's model card (README.md) records the
    # path the base was loaded from, which must not depend on where the fixtures are written.
    os.chdir(out)
    here_out = Path(".")
    for name in BASES:
        build_base(here_out, name, tok_dir)
    results = [build_case(here_out, case, tok, tok_dir, i) for i, case in enumerate(CASES)]
    check_peft_resolves_relative_to_cwd(here_out)

    manifest = {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "bases": {n: dir_size(out / n) for n in BASES},
        "cases": [
            {"name": r["case"], "base": r["base"], "accept": r["accept"],
             **({"refuse_key": r["refuse_key"]} if not r["accept"] else
                {"max_abs_adapter_vs_base": r["max_abs_adapter_vs_base"],
                 "max_abs_merged_vs_adapter": r["max_abs_merged_vs_adapter"]}),
             "bytes": dir_size(out / r["case"])}
            for r in results
        ],
    }
    manifest["total_bytes"] = dir_size(out)
    write_json(out / "manifest.json", manifest)
    for c in manifest["cases"]:
        print(c)
    print("total", manifest["total_bytes"], "bytes in", out)


if __name__ == "__main__":
    main()
