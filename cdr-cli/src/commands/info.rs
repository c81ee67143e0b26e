//! `cdr info`: what a checkpoint is.

use std::collections::BTreeMap;
use std::path::Path;

use cdr_models::gguf::GgufFile;
use cdr_models::{Config, ModelDir};

use crate::cli::InfoArgs;
use crate::printer::Printer;

fn parameters(c: &Config) -> u64 {
    let (h, i, v) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        c.vocab_size as u64,
    );
    let hd = c.head_dim() as u64;
    let (nh, nkv) = (c.num_attention_heads as u64, c.num_kv_heads() as u64);
    let attn =
        h * hd * (nh + 2 * nkv) + nh * hd * h + if c.qkv_bias() { hd * (nh + 2 * nkv) } else { 0 };
    let layer = attn + 3 * h * i + 2 * h;
    let head = if c.tie_word_embeddings() { 0 } else { v * h };
    v * h + head + h + c.num_hidden_layers as u64 * layer
}

/// Storage types and how many tensors use each.
fn storage(path: &Path, gguf: bool) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    if gguf {
        let file = GgufFile::open(path)?;
        for t in file.tensors() {
            *counts.entry(format!("{:?}", t.ggml_type())).or_default() += 1;
        }
    } else {
        let weights = cdr_models::safetensors::SafetensorsWeights::open_dir(path)?;
        for dtype in weights.dtypes() {
            *counts.entry(format!("{dtype:?}")).or_default() += 1;
        }
    }
    Ok(counts)
}

#[cfg(feature = "cpu")]
fn peak_rss_mib() -> Option<f64> {
    cdr_models::memory::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}

pub fn run(args: &InfoArgs, printer: &Printer) -> anyhow::Result<()> {
    let path = cdr_models::resolve_model(&args.model)?;
    let dir = ModelDir::new(&path);
    let config = dir.config()?;
    let tokenizer = dir.tokenizer()?;
    let template = cdr_core::model_template(&path)
        .map(|t| {
            let src = t.source();
            let kind = if src.contains("<|im_start|>") {
                "ChatML"
            } else if src.contains("<|start_header_id|>") {
                "Llama-3"
            } else if src.contains("[INST]") {
                "Mistral/Llama-2 [INST]"
            } else {
                "custom"
            };
            format!("{kind} ({} bytes of Jinja)", src.len())
        })
        .unwrap_or_else(|e| format!("none ({e})"));
    let params = parameters(&config);
    printer.out(format_args!("model:         {}\n", path.display()));
    // An adapter's config, tokenizer and storage are its base's.
    let weights = dir.resolved()?;
    if let Some(adapter) = dir.adapter()? {
        printer.out(format_args!(
            "adapter:       {} over base {}\n",
            adapter.describe(),
            weights.path.display()
        ));
    }
    printer.out(format_args!(
        "format:        {}\n",
        if weights.is_gguf() {
            "GGUF"
        } else {
            "safetensors"
        }
    ));
    printer.out(format_args!(
        "architecture:  {} ({:?})\n",
        config.model_type,
        config.architecture()
    ));
    printer.out(format_args!("parameters:    {:.1}M\n", params as f64 / 1e6));
    printer.out(format_args!(
        "shape:         {} layers, hidden {}, mlp {}, {} heads / {} kv heads, head dim {}\n",
        config.num_hidden_layers,
        config.hidden_size,
        config.intermediate_size,
        config.num_attention_heads,
        config.num_kv_heads(),
        config.head_dim()
    ));
    printer.out(format_args!(
        "rope:          theta {}, {:?}\n",
        config.rope_theta(),
        config.rope_scaling_kind().map_err(anyhow::Error::msg)?
    ));
    let windows = config.layer_windows();
    let sliding = windows.iter().filter(|w| w.is_some()).count();
    if let Some(w) = windows.iter().flatten().next() {
        printer.out(format_args!(
            "sliding window: {w} keys, in {sliding} of {} layers\n",
            windows.len()
        ));
    }
    let storage = storage(&weights.path, weights.is_gguf())?;
    let storage: Vec<String> = storage.iter().map(|(k, n)| format!("{k} x{n}")).collect();
    printer.out(format_args!("storage:       {}\n", storage.join(", ")));
    printer.out(format_args!(
        "vocabulary:    {} (tokenizer: {}), tied embeddings: {}\n",
        config.vocab_size,
        tokenizer.get_vocab_size(true),
        config.tie_word_embeddings()
    ));
    printer.out(format_args!(
        "eos ids:       {:?}\n",
        config.eos_token_ids()
    ));
    printer.out(format_args!("chat template: {template}\n"));
    if args.load {
        load_and_measure(&dir, params, printer)?;
    }
    Ok(())
}

#[cfg(feature = "cpu")]
fn load_and_measure(dir: &ModelDir, params: u64, printer: &Printer) -> anyhow::Result<()> {
    // The dtype `cdr score` takes by default (`--dtype auto`) for this model on this CPU.
    let dtype = cdr_models::kernels::default_dtype(dir.weights_are_gguf(), true);
    let before = peak_rss_mib().unwrap_or(0.0);
    let start = std::time::Instant::now();
    let model = cdr_models::Model::load(
        dir,
        &cdr_core::Device::Cpu,
        cdr_models::LoadOptions { dtype },
    )
    .map_err(|e| anyhow::anyhow!("loading the weights: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let loaded = params as f64 * dtype.size() as f64 / 1048576.0;
    let peak = peak_rss_mib().unwrap_or(0.0);
    printer.out(format_args!(
        "loaded ({dtype}):  {secs:.1} s, weights {loaded:.0} MiB, peak RSS {peak:.0} MiB ({:.2}x the weights; {before:.0} MiB before loading)\n",
        peak / loaded
    ));
    printer.out(format_args!(
        "products:      {} (bf16 paths on this CPU: {}; {} forces a lower one)\n",
        model.kernel(),
        cdr_models::kernels::bf16::Isa::available()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", "),
        cdr_models::kernels::bf16::FORCE_VAR,
    ));
    drop(model);
    Ok(())
}

#[cfg(not(feature = "cpu"))]
fn load_and_measure(_: &ModelDir, _: u64, _: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("--load measures a CPU load; this cdr was built without the `cpu` feature")
}
