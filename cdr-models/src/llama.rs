//! The Llama-family decoder: Llama (1-3.x), Mistral and Qwen2 in one implementation.
//!
//! Module fields carry the checkpoint's names (`model.layers.N.self_attn.q_proj`), so loading walks
//! the same tree the checkpoint describes. What differs between the families is configuration:
//! Mistral adds a sliding attention window, Qwen2 adds q/k/v biases, Llama 3 adds rope scaling.

use burn::tensor::{DType, Int, Tensor, activation::silu, backend::Backend, module::embedding};

use crate::adapter::lora::LoraDelta;
use crate::cache::KvCache;
use crate::config::Config;
use crate::error::Result;
use crate::kernels::{self, CausalMask};
use crate::rope::{Rope, RopeTables};
use crate::weights::{ComputeDtype, Weights};

/// A dense layer with the PyTorch weight layout `[out, in]`, used transposed (the layout burn's
/// matmul runs fastest on, and the one the checkpoint stores); packed for the matrix units on CPUs
/// in bf16 ([`kernels::Weight`]).
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    pub weight: kernels::Weight<B>,
    pub bias: Option<Tensor<B, 1>>,
    /// A LoRA adapter's low-rank path ([`crate::adapter`]), added to the base output.
    pub lora: Option<LoraDelta<B>>,
}

impl<B: Backend> Linear<B> {
    pub fn load(w: &Weights<B>, d_in: usize, d_out: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: kernels::Weight::load(w, "weight", [d_out, d_in])?,
            bias: if bias {
                Some(w.get("bias", [d_out])?)
            } else {
                None
            },
            lora: None,
        })
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, s, d_in] = x.dims();
        let d_out = self.weight.dims()[0];
        let x = x.reshape([b * s, d_in]);
        let y = kernels::linear(x.clone(), &self.weight);
        let y = match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze::<2>(),
            None => y,
        };
        let y = match &self.lora {
            Some(lora) => lora.add(x, y),
            None => y,
        };
        y.reshape([b, s, d_out])
    }
}

/// RMS normalization computed in f32 whatever the activations' dtype, as transformers does.
#[derive(Debug, Clone)]
pub struct RmsNorm<B: Backend> {
    pub weight: Tensor<B, 1>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn load(w: &Weights<B>, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.get("weight", [dim])?,
            eps,
        })
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if let Some(out) = kernels::rms_norm(&x, &self.weight, self.eps) {
            return out;
        }
        let dtype = x.dtype();
        // One cast per use: a single f32 cast feeding both the reduction and the product makes
        // burn 0.21's fused reduce panic (codegen/ir.rs:500) in half precision on wgpu and CUDA.
        let variance = x.clone().cast(DType::F32).square().mean_dim(2);
        let normed = x.cast(DType::F32) * (variance + self.eps).sqrt().recip();
        normed.cast(dtype) * self.weight.clone().unsqueeze::<3>()
    }
}

#[derive(Debug, Clone)]
pub struct Embedding<B: Backend> {
    /// `[vocab, hidden]`.
    pub weight: Tensor<B, 2>,
    /// A LoRA adapter's low-rank path on the embedding.
    pub lora: Option<LoraDelta<B>>,
}

impl<B: Backend> Embedding<B> {
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let out = embedding(self.weight.clone(), ids.clone());
        match &self.lora {
            Some(lora) => {
                let [b, s, h] = out.dims();
                lora.add_embedding(ids.reshape([b * s]), out.reshape([b * s, h]))
                    .reshape([b, s, h])
            }
            None => out,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    pub fn load(w: &Weights<B>, c: &Config) -> Result<Self> {
        let (h, hd) = (c.hidden_size, c.head_dim());
        let (nh, nkv) = (c.num_attention_heads, c.num_kv_heads());
        Ok(Self {
            q_proj: Linear::load(&w.pp("q_proj"), h, nh * hd, c.qkv_bias())?,
            k_proj: Linear::load(&w.pp("k_proj"), h, nkv * hd, c.qkv_bias())?,
            v_proj: Linear::load(&w.pp("v_proj"), h, nkv * hd, c.qkv_bias())?,
            o_proj: Linear::load(&w.pp("o_proj"), nh * hd, h, c.o_bias())?,
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: hd,
        })
    }

    /// `x`: `[batch, seq, hidden]`; with a cache, `x` continues the positions it holds and its
    /// keys/values are appended to layer `layer` of it.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: CausalMask<'_>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([b, s, n, self.head_dim]);
        let q = rope.apply(heads(self.q_proj.forward(x.clone()), self.num_heads));
        let k = rope.apply(heads(self.k_proj.forward(x.clone()), self.num_kv_heads));
        let v = heads(self.v_proj.forward(x), self.num_kv_heads);
        // The padding of left-padded rows, counted in the keys this step attends to (before the
        // append trims a sliding window).
        let (k, v, pad) = match cache {
            Some((cache, layer)) => {
                let pad = cache.layer_pad(layer);
                let (k, v) = cache.append(layer, k, v);
                (k, v, pad)
            }
            None => (k, v, None),
        };
        let mask = CausalMask {
            pad: pad.as_deref().unwrap_or(mask.pad),
            ..mask
        };
        let out = kernels::attention(q, k, v, mask);
        self.o_proj
            .forward(out.reshape([b, s, self.num_heads * self.head_dim]))
    }
}

#[derive(Debug, Clone)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn load(w: &Weights<B>, c: &Config) -> Result<Self> {
        let (h, i, bias) = (c.hidden_size, c.intermediate_size, c.mlp_bias());
        Ok(Self {
            gate_proj: Linear::load(&w.pp("gate_proj"), h, i, bias)?,
            up_proj: Linear::load(&w.pp("up_proj"), h, i, bias)?,
            down_proj: Linear::load(&w.pp("down_proj"), i, h, bias)?,
        })
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (gate, up) = (self.gate_proj.forward(x.clone()), self.up_proj.forward(x));
        let hidden = match kernels::swiglu(&gate, &up) {
            Some(h) => h,
            None => silu(gate) * up,
        };
        self.down_proj.forward(hidden)
    }
}

#[derive(Debug, Clone)]
pub struct DecoderLayer<B: Backend> {
    pub self_attn: Attention<B>,
    pub mlp: Mlp<B>,
    pub input_layernorm: RmsNorm<B>,
    pub post_attention_layernorm: RmsNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    pub fn load(w: &Weights<B>, c: &Config) -> Result<Self> {
        let eps = c.rms_norm_eps();
        Ok(Self {
            self_attn: Attention::load(&w.pp("self_attn"), c)?,
            mlp: Mlp::load(&w.pp("mlp"), c)?,
            input_layernorm: RmsNorm::load(&w.pp("input_layernorm"), c.hidden_size, eps)?,
            post_attention_layernorm: RmsNorm::load(
                &w.pp("post_attention_layernorm"),
                c.hidden_size,
                eps,
            )?,
        })
    }

    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: CausalMask<'_>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), rope, mask, cache);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}

/// The decoder stack without the vocabulary projection (`model.*` in the checkpoint).
#[derive(Debug, Clone)]
pub struct LlamaModel<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
}

/// A causal language model: the decoder plus the vocabulary projection.
#[derive(Debug, Clone)]
pub struct LlamaForCausalLm<B: Backend> {
    pub model: LlamaModel<B>,
    /// The vocabulary projection: `lm_head.weight`, or when tied `embed_tokens.weight` (the same
    /// tensor, or on the CPU in bf16 a packed copy of it).
    pub head: kernels::Weight<B>,
    /// A LoRA adapter's low-rank path on the vocabulary projection (on a tied model it changes
    /// the projection only, as PEFT's unmerged forward does).
    pub head_lora: Option<LoraDelta<B>>,
    config: Config,
    rope: Rope,
    /// Attention window per layer ([`Config::layer_windows`]).
    windows: Vec<Option<usize>>,
    dtype: ComputeDtype,
}

impl<B: Backend> LlamaForCausalLm<B> {
    /// Builds the model from checkpoint tensors. `lm_head.weight` is used when present even if the
    /// config says the embeddings are tied (some exports write both), and required otherwise.
    pub fn load(w: &Weights<B>, config: &Config) -> Result<Self> {
        let c = config;
        let m = w.pp("model");
        let embed_tokens = Embedding {
            weight: m.get("embed_tokens.weight", [c.vocab_size, c.hidden_size])?,
            lora: None,
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| DecoderLayer::load(&m.pp("layers").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(&m.pp("norm"), c.hidden_size, c.rms_norm_eps())?;
        let head = if c.tie_word_embeddings() && !w.contains("lm_head.weight") {
            kernels::Weight::new(embed_tokens.weight.clone())
        } else {
            Linear::load(&w.pp("lm_head"), c.hidden_size, c.vocab_size, false)?.weight
        };
        Ok(Self {
            model: LlamaModel {
                embed_tokens,
                layers,
                norm,
            },
            head,
            head_lora: None,
            config: c.clone(),
            rope: Rope::new(c)?,
            windows: c.layer_windows(),
            dtype: w.dtype(),
        })
    }

    /// The rotary embedding (frequencies, scaling) of this model.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn dtype(&self) -> ComputeDtype {
        self.dtype
    }

    pub fn device(&self) -> B::Device {
        self.model.embed_tokens.weight.device()
    }

    /// Final hidden states `[batch, seq, hidden]` for token ids `[batch, seq]` at positions
    /// `0..seq`.
    ///
    /// Sequences of different lengths are right-padded: causal attention already keeps every real
    /// position from seeing the padding after it, so no padding mask is needed and a padded row gives
    /// the same values as the sequence alone.
    pub fn hidden_states(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.run(ids, None)
    }

    /// An empty key/value cache for [`Self::forward_cached`].
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.windows.clone())
    }

    /// Final hidden states for `ids` `[batch, seq]` continuing the positions `cache` holds (all rows
    /// at the same position); their keys and values are added to the cache. Right padding is
    /// harmless as in [`Self::hidden_states`] as long as nothing continues after it.
    pub fn forward_cached(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>> {
        cache.check_batch(ids.dims()[0])?;
        Ok(self.run(ids, Some(cache)))
    }

    fn run(&self, ids: Tensor<B, 2, Int>, mut cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        let [_, seq] = ids.dims();
        let device = ids.device();
        let start = cache.as_ref().map_or(0, |c| c.position());
        let rope = match cache.as_ref().and_then(|c| c.row_positions()) {
            Some(starts) => self
                .rope
                .tables_rows(&starts, seq, self.dtype.burn(), &device),
            None => self.rope.tables(start, seq, self.dtype.burn(), &device),
        };
        let mut x = self.model.embed_tokens.forward(ids);
        for (i, (layer, &window)) in self.model.layers.iter().zip(&self.windows).enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(x, &rope, CausalMask { window, pad: &[] }, layer_cache);
        }
        if let Some(cache) = cache {
            cache.advance(seq);
        }
        self.model.norm.forward(x)
    }

    /// Vocabulary logits `[rows, vocab]` for hidden states `[rows, hidden]`, in the compute dtype.
    pub fn logits(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.head_lora {
            Some(lora) => lora.add(hidden.clone(), kernels::vocab_linear(hidden, &self.head)),
            None => kernels::vocab_linear(hidden, &self.head),
        }
    }

    /// Which product the projections take (e.g. "bf16 packed, amx" or "burn matmul").
    pub fn kernel(&self) -> String {
        match self.model.layers.first() {
            Some(layer) => layer.self_attn.q_proj.weight.kernel(),
            None => "burn matmul".into(),
        }
    }
}
