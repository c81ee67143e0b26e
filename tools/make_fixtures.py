#!/usr/bin/env python3
"""Generate tiny random Llama/Mistral checkpoints and reference log-probs for cdr-models tests.

Install (CPU is enough; no GPU and no model hub are needed):

    python3 -m venv /tmp/fixtures-venv          # any folder outside the repository
    /tmp/fixtures-venv/bin/pip install torch transformers safetensors tokenizers numpy

Run from anywhere:

    /tmp/fixtures-venv/bin/python tools/make_fixtures.py

It writes cdr-models/tests/fixtures/ (relative to the repository root) and is idempotent:
that folder is deleted and fully rewritten on every run.  Everything is seeded, runs
single-threaded on CPU and never touches the network (HF_HUB_OFFLINE=1), so the output only
depends on the installed library versions (recorded in every expected.json).
Last generated with torch 2.15.0, transformers 5.24.0, tokenizers 0.23.3.

Layout, one folder per fixture:

    <name>/config.json          written by transformers' save_pretrained (rope keys: see below)
    <name>/generation_config.json   also written by save_pretrained
    <name>/model.safetensors    or model-0000{1,2}-of-00002.safetensors + model.safetensors.index.json
    <name>/tokenizer.json       byte-level BPE, identical in every folder
    <name>/expected.json        {"name", "transformers_version", "torch_version",
                                 "sequences": [{"text": str|null, "ids": [...], "logprobs": [...]}]}

logprobs[t] = log_softmax(logits[t])[ids[t + 1]] for a single unpadded sequence (batch of 1),
computed in float32 from the checkpoint as re-loaded from disk (so bf16/f16 fixtures are
compared against exact float32 upcasts of the stored weights), with eager attention.
For text sequences, ids == tokenizer.encode(text).ids (no BOS is added; there is no
post-processor).

Fixtures:
  llama_gqa      Llama, 8 heads / 2 kv heads, untied lm_head, float32, one file,
                 config.json uses the legacy top-level "rope_theta" (edited after saving).
  llama3_tied    Llama, explicit head_dim 32 != 64/4, llama3 rope scaling with
                 original_max_position_embeddings 32 (all three frequency regimes occur),
                 tied embeddings, eos_token_id [1, 2], bfloat16.
  mistral_sw     Mistral, 1 kv head, sliding_window 16 (a query at position q sees keys
                 q-15..=q), float16.
  llama_sharded  like llama_gqa with another seed, float32, exactly two safetensors shards.
The other three config.json files keep the nested "rope_parameters": {"rope_theta", "rope_type",
...} form that transformers 5 writes; the storage dtype is under "dtype" (not "torch_dtype").
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "cdr-models" / "tests" / "fixtures"

VOCAB_SIZE = 384
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>"]  # ids 0, 1, 2
BOS_ID, EOS_ID, PAD_ID = 0, 1, 2

# Weight re-initialisation.  The transformers default (std 0.02) gives almost uniform
# next-token distributions; these values give log-probs spread over roughly -1 .. -16
# (mean about -8.7, the most likely token at a position typically has log-prob -1 .. -3).
EMBED_STD = 0.3
LINEAR_STD = 0.2
LM_HEAD_STD = 0.3
NORM_JITTER = 0.1  # norm weights are 1 + NORM_JITTER * randn

# Target sequence lengths (tokens) and whether each one is text or random ids.
SEQ_PLAN = [(2, "text"), (5, "random"), (17, "text"), (40, "random"), (70, "text"), (130, "random")]

# --------------------------------------------------------------------------------------
# Tokenizer training corpus (written for this project).
# --------------------------------------------------------------------------------------
CORPUS = [
    "The quick brown fox jumps over the lazy dog while the farmer counts his sheep.",
    "A model reads the prompt, predicts the next token, and repeats until it is done.",
    "It was a naïve plan, but the café on the corner still served coffee at 7:45 every morning.",
    "She wrote 3 letters, 12 postcards and 144 short notes during the long winter of 1998.",
    "Numbers like 0, 1, 2, 10, 42, 100, 256, 1024, 65536 and 3.14159 appear everywhere.",
    "日本語 is the Japanese language; 東京 is its capital, and 漢字 are its characters.",
    "Emoji such as 🙂, 🚀, 🦀 and 🐍 are encoded as several bytes in UTF-8.",
    "Über-efficient résumé writers in Zürich prefer façades with a certain je ne sais quoi.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i, 'is even')\n    else:\n        print(i, 'is odd')\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "import math\n\ndef norm(v):\n    return math.sqrt(sum(x * x for x in v))\n",
    "fn main() {\n    let v: Vec<u32> = (1..=5).collect();\n    println!(\"{:?}\", v);\n}\n",
    "pub fn softmax(xs: &mut [f32]) {\n    let m = xs.iter().cloned().fold(f32::MIN, f32::max);\n"
    "    for x in xs.iter_mut() { *x = (*x - m).exp(); }\n}\n",
    "impl Display for Token {\n    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {\n"
    "        write!(f, \"{}\", self.text)\n    }\n}\n",
    "let result = match value {\n    Some(x) if x > 0 => x * 2,\n    Some(_) => 0,\n    None => -1,\n};\n",
    "The meeting starts at 09:30 on 2024-03-15 in room 4B; bring 2 copies of the report.",
    "Rivers carve valleys over thousands of years, and the mountains slowly wear away.",
    "In the evening the town was quiet, except for the bells and the distant trains.",
    "Attention lets every position look back at the earlier positions of the sequence.",
    "The recipe needs 250 g of flour, 2 eggs, 125 ml of milk and a pinch of salt.",
    "Crème brûlée, piñata, coöperate and naïveté keep their accents in careful writing.",
    "Hello, world! How are you today? I'm fine, thanks -- and you?",
    "Temperatures ranged from -12.5 to 38.7 degrees, with 83% humidity on the coast.",
    "SELECT name, age FROM users WHERE age >= 18 ORDER BY name;",
    "The library opens at 10 and closes at 18, except on holidays when it stays closed.",
    "Tokens are pieces of words: some are whole words, others are just a few bytes.",
    "He said: \"Don't forget the keys,\" but she had already left the house.",
]

# Evaluation passages: same style as the corpus but different text.  Each text sequence
# is the word-prefix of one passage whose token count is closest to the target length.
EVAL_PASSAGES = [
    "Hi",
    "The café by the river opens at 8:15, and the naïve tourists count 3 bridges.",
    "The old bridge crossed the river near the mill, where 17 boats waited in the fog. "
    "def mean(xs):\n    return sum(xs) / len(xs)\n"
    "fn square(x: i64) -> i64 { x * x } // returns 49 for 7\n"
    "In 日本語 one writes 東京 and 大阪; emoji like 🚀 and 🦀 take four bytes each. "
    "At 06:45 the train left with 212 passengers, 4 dogs and one very naïve cat, "
    "while the conductor counted tickets: 1, 2, 3, 5, 8, 13, 21, 34, 55 and 89. "
    "Later that evening the café served crème brûlée to everyone who stayed until 22:00, "
    "and the town slowly went quiet again under a sky full of stars.",
]


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Deliberately no post-processor: encode(text) must not insert BOS/EOS.
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    model_vocab = json.loads(tok.to_str())["model"]["vocab"]
    for s in SPECIAL_TOKENS:
        assert s in model_vocab, f"special token {s} missing from model.vocab"
    assert tok.post_processor is None
    return tok


def make_sequences(tok: Tokenizer, seed: int):
    gen = torch.Generator().manual_seed(seed)
    texts = iter(EVAL_PASSAGES)
    seqs = []
    for target, kind in SEQ_PLAN:
        if kind == "text":
            text = closest_prefix(tok, next(texts), target)
            ids = tok.encode(text).ids
            assert tok.decode(ids) == text, "byte-level BPE must round-trip"
            seqs.append({"text": text, "ids": ids})
        else:
            ids = torch.randint(0, VOCAB_SIZE, (target,), generator=gen).tolist()
            seqs.append({"text": None, "ids": ids})
    lens = [len(s["ids"]) for s in seqs]
    assert max(lens) > 64 and sum(n > 16 for n in lens) >= 3 and min(lens) >= 2, lens
    return seqs


def closest_prefix(tok: Tokenizer, passage: str, target: int) -> str:
    """Word-prefix of passage (split at spaces) whose token count is closest to target."""
    cut_points = [i for i, c in enumerate(passage) if c == " "] + [len(passage)]
    best = None
    for cut in cut_points:
        text = passage[:cut]
        n = len(tok.encode(text).ids)
        if n < 2:
            continue
        key = (abs(n - target), n)
        if best is None or key < best[0]:
            best = (key, text)
    assert best is not None
    return best[1]


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------
COMMON = dict(
    vocab_size=VOCAB_SIZE,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    num_hidden_layers=2,
    bos_token_id=BOS_ID,
    eos_token_id=EOS_ID,
    pad_token_id=PAD_ID,
)


def llama_gqa_config() -> LlamaConfig:
    return LlamaConfig(
        **COMMON,
        hidden_size=64,
        intermediate_size=160,
        num_attention_heads=8,
        num_key_value_heads=2,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )


def llama3_tied_config() -> LlamaConfig:
    cfg = dict(COMMON)
    cfg["eos_token_id"] = [1, 2]
    return LlamaConfig(
        **cfg,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
        tie_word_embeddings=True,
    )


def mistral_sw_config() -> MistralConfig:
    return MistralConfig(
        **COMMON,
        hidden_size=64,
        intermediate_size=160,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=16,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )


# name, config factory, model class, seed, storage dtype, sharded, rope form in config.json
FIXTURES = [
    ("llama_gqa", llama_gqa_config, LlamaForCausalLM, 1001, torch.float32, False, "top_level"),
    ("llama3_tied", llama3_tied_config, LlamaForCausalLM, 2002, torch.bfloat16, False, "nested"),
    ("mistral_sw", mistral_sw_config, MistralForCausalLM, 3003, torch.float16, False, "nested"),
    ("llama_sharded", llama_gqa_config, LlamaForCausalLM, 4004, torch.float32, True, "nested"),
]


def reinit_(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # named_parameters() yields a tied lm_head/embedding tensor only once (as embed_tokens).
        for name, p in model.named_parameters():
            assert name.endswith(".weight"), f"unexpected parameter {name}"
            if name.endswith("norm.weight"):
                p.copy_(1.0 + NORM_JITTER * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(EMBED_STD * torch.randn(p.shape, generator=gen))
            elif name.startswith("lm_head"):
                p.copy_(LM_HEAD_STD * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(LINEAR_STD * torch.randn(p.shape, generator=gen))


def save_model(model, folder: Path, sharded: bool) -> None:
    if not sharded:
        model.save_pretrained(folder)
        assert (folder / "model.safetensors").is_file()
        return
    total = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    # Shards are filled greedily tensor by tensor; grow the limit from half the total
    # until save_pretrained produces exactly two files.
    for shard_kib in range(math.ceil(total / 2 / 1024), total // 1024 + 1, 8):
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp, max_shard_size=shard_kib * 1024)
            n = len(list(Path(tmp).glob("*.safetensors")))
        if n == 2:
            model.save_pretrained(folder, max_shard_size=shard_kib * 1024)
            shards = sorted(p.name for p in folder.glob("*.safetensors"))
            assert len(shards) == 2 and (folder / "model.safetensors.index.json").is_file(), shards
            return
    raise AssertionError("could not find a shard size that gives exactly two shards")


def saved_tensors(folder: Path) -> dict:
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    return tensors


def set_rope_form(folder: Path, cls, form: str) -> None:
    """Make config.json use the wanted rope key form and check it loads back identically."""
    path = folder / "config.json"
    cfg_cls = cls.config_class
    before = cfg_cls.from_pretrained(folder).to_dict()
    raw = json.loads(path.read_text())
    if form == "top_level" and "rope_parameters" in raw:
        # transformers >= 5 writes {"rope_parameters": {"rope_theta": .., "rope_type": ..}};
        # rewrite it into the legacy form that most published checkpoints use.
        rp = raw.pop("rope_parameters")
        assert rp.get("rope_type", "default") == "default", rp
        raw["rope_theta"] = rp["rope_theta"]
        path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    raw = json.loads(path.read_text())
    if form == "top_level":
        assert "rope_theta" in raw and "rope_parameters" not in raw, raw
    else:
        assert "rope_parameters" in raw and "rope_theta" not in raw, (
            "this transformers version does not write nested rope_parameters"
        )
    after = cfg_cls.from_pretrained(folder).to_dict()
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}


def load_reference(cls, folder: Path, **config_overrides):
    model = cls.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager", **config_overrides
    )
    model.eval()
    return model


@torch.no_grad()
def score(model, ids) -> list:
    x = torch.tensor([ids], dtype=torch.long)
    logits = model(input_ids=x, use_cache=False).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    picked = lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return [float(v) for v in picked]


def check_reload_matches(model, folder: Path, storage_dtype) -> None:
    """The float32 reference must hold exact upcasts of the stored tensors, nothing re-initialised."""
    stored = saved_tensors(folder)
    state = model.state_dict()
    for name, t in stored.items():
        assert t.dtype == storage_dtype, (name, t.dtype)
        assert torch.equal(state[name], t.float()), f"{name} differs after reload"
    missing = set(state) - set(stored)
    if model.config.tie_word_embeddings:
        assert missing == {"lm_head.weight"}, missing
        assert torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"])
    else:
        assert not missing, missing


def build_fixture(tok: Tokenizer, index: int, spec) -> dict:
    name, make_config, cls, seed, storage_dtype, sharded, rope_form = spec
    folder = OUT / name
    folder.mkdir(parents=True)

    torch.manual_seed(seed)
    config = make_config()
    model = cls(config)
    reinit_(model, seed)
    model = model.to(storage_dtype)
    model.config.dtype = storage_dtype
    save_model(model, folder, sharded)
    set_rope_form(folder, cls, rope_form)
    (folder / "tokenizer.json").write_text(tok.to_str(pretty=True) + "\n", encoding="utf-8")

    ref = load_reference(cls, folder)
    check_reload_matches(ref, folder, storage_dtype)
    seqs = make_sequences(tok, seed=seed + 17)
    for s in seqs:
        s["logprobs"] = score(ref, s["ids"])
        assert len(s["logprobs"]) == len(s["ids"]) - 1
        assert all(math.isfinite(v) for v in s["logprobs"])

    check_norms_matter(ref, seqs)
    if name == "mistral_sw":
        check_sliding_window(cls, folder, ref, seqs)
    if name == "llama3_tied":
        check_llama3_regimes(ref.config)

    expected = {
        "name": name,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "sequences": seqs,
    }
    with open(folder / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return expected


def check_norms_matter(ref, seqs) -> None:
    """A loader that ignores the RMSNorm weights (treats them as 1) must fail the fixture."""
    longest = max(seqs, key=lambda s: len(s["ids"]))
    saved = {}
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("norm.weight"):
                saved[name] = p.clone()
                p.fill_(1.0)
        plain = score(ref, longest["ids"])
        for name, p in ref.named_parameters():
            if name in saved:
                p.copy_(saved[name])
    assert score(ref, longest["ids"]) == longest["logprobs"]
    diff = max(abs(a - b) for a, b in zip(plain, longest["logprobs"]))
    assert diff > 0.05, f"norm weights barely matter (max diff {diff})"


def check_llama3_regimes(config) -> None:
    """With these settings the llama3 rope scaling hits all three frequency bands."""
    rp = config.rope_parameters
    dim = config.head_dim
    inv_freq = 1.0 / (rp["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    wavelen = 2 * math.pi / inv_freq
    orig = rp["original_max_position_embeddings"]
    high_freq_wavelen = orig / rp["high_freq_factor"]  # shorter: unchanged
    low_freq_wavelen = orig / rp["low_freq_factor"]  # longer: divided by factor
    n_high = int((wavelen < high_freq_wavelen).sum())
    n_low = int((wavelen > low_freq_wavelen).sum())
    n_mid = len(wavelen) - n_high - n_low
    assert n_high > 0 and n_mid > 0 and n_low > 0, (n_high, n_mid, n_low)


def check_sliding_window(cls, folder: Path, ref, seqs) -> None:
    """The window must really be applied by the eager reference.

    transformers 5.x builds the mask with masking_utils.create_sliding_window_causal_mask
    whenever config.sliding_window is set, for every attention implementation (eager too),
    with the rule kv_idx > q_idx - sliding_window, i.e. a query at position q attends to the
    16 keys q-15..=q.  This was checked with transformers 5.24.0, where nothing extra is
    needed.  Should another version ignore the window in eager mode, these assertions fail
    rather than writing reference values computed without it.
    """
    window = ref.config.sliding_window
    assert window == 16, window
    longest = max(seqs, key=lambda s: len(s["ids"]))
    full = load_reference(cls, folder, sliding_window=None)
    assert full.config.sliding_window is None
    no_window = score(full, longest["ids"])
    with_window = longest["logprobs"]
    # logprobs[t] comes from query position t: identical while t < window, different after.
    assert with_window[:window] == no_window[:window], "window changed positions it cannot affect"
    diff = max(abs(a - b) for a, b in zip(with_window[window:], no_window[window:]))
    assert diff > 1e-3, f"sliding window not applied (max diff {diff})"
    assert abs(with_window[window] - no_window[window]) > 1e-6, "first windowed position unchanged"
    print(f"  mistral_sw: removing the window changes log-probs by up to {diff:.3f}")


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    tok = train_tokenizer()
    all_lp = []
    for i, spec in enumerate(FIXTURES):
        exp = build_fixture(tok, i, spec)
        lps = [v for s in exp["sequences"] for v in s["logprobs"]]
        all_lp += lps
        lens = [len(s["ids"]) for s in exp["sequences"]]
        print(
            f"{spec[0]}: lengths {lens}, logprob min {min(lps):.3f} max {max(lps):.3f} "
            f"mean {sum(lps) / len(lps):.3f}"
        )

    print(f"all log-probs in [{min(all_lp):.3f}, {max(all_lp):.3f}], -log(vocab) = {-math.log(VOCAB_SIZE):.3f}")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    total = 0
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            size = f.stat().st_size
            total += size
            print(f"  {size:>9}  {f.relative_to(OUT)}")
    print(f"total {total} bytes ({total / 1024:.1f} KiB)")
    assert total < 3 * 1024 * 1024, "fixtures exceed the 3 MB budget"


if __name__ == "__main__":
    main()
