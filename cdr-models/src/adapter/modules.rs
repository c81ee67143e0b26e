//! Reaching a decoder's modules by their checkpoint names (`model.layers.3.mlp.up_proj`), which
//! is how PEFT names what it adapts and what it saves.

use burn::tensor::{Tensor, backend::Backend};

use super::lora::LoraDelta;
use crate::kernels;
use crate::llama::{Linear, LlamaForCausalLm};
use crate::weights::WeightSource;

/// A linear module's LoRA slot and its `[out, in]` shape.
pub struct LoraSlot<'a, B: Backend> {
    pub lora: &'a mut Option<LoraDelta<B>>,
    dims: [usize; 2],
}

impl<B: Backend> LoraSlot<'_, B> {
    /// `[out, in]`.
    pub fn dims(&self) -> [usize; 2] {
        self.dims
    }
}

const ATTENTION: [&str; 4] = ["q_proj", "k_proj", "v_proj", "o_proj"];
const MLP: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

impl<B: Backend> LlamaForCausalLm<B> {
    /// The names of every module a LoRA adapter could target here.
    pub fn adaptable_modules(&self) -> Vec<String> {
        let mut out = vec!["model.embed_tokens".to_string(), "lm_head".to_string()];
        for i in 0..self.model.layers.len() {
            out.extend(
                ATTENTION
                    .iter()
                    .map(|p| format!("model.layers.{i}.self_attn.{p}")),
            );
            out.extend(MLP.iter().map(|p| format!("model.layers.{i}.mlp.{p}")));
        }
        out
    }

    fn linear_mut(&mut self, module: &str) -> Option<&mut Linear<B>> {
        let rest = module.strip_prefix("model.layers.")?;
        let (index, rest) = rest.split_once('.')?;
        let layer = self.model.layers.get_mut(index.parse::<usize>().ok()?)?;
        let (attn, mlp) = (&mut layer.self_attn, &mut layer.mlp);
        Some(match rest {
            "self_attn.q_proj" => &mut attn.q_proj,
            "self_attn.k_proj" => &mut attn.k_proj,
            "self_attn.v_proj" => &mut attn.v_proj,
            "self_attn.o_proj" => &mut attn.o_proj,
            "mlp.gate_proj" => &mut mlp.gate_proj,
            "mlp.up_proj" => &mut mlp.up_proj,
            "mlp.down_proj" => &mut mlp.down_proj,
            _ => return None,
        })
    }

    /// The LoRA slot of linear module `module` (`lm_head` included).
    pub fn lora_slot(&mut self, module: &str) -> Option<LoraSlot<'_, B>> {
        if module == "lm_head" {
            let dims = self.head.dims();
            return Some(LoraSlot {
                lora: &mut self.head_lora,
                dims,
            });
        }
        let linear = self.linear_mut(module)?;
        let dims = linear.weight.dims();
        Some(LoraSlot {
            lora: &mut linear.lora,
            dims,
        })
    }

    /// Puts tensor `key` of `source` in place of parameter `name` (`lm_head.weight`,
    /// `model.norm.weight`, ...): a module PEFT trained in full (`modules_to_save`). Only this
    /// model's copy changes; the base it was cloned from keeps its tensor.
    pub fn replace_tensor(
        &mut self,
        name: &str,
        source: &dyn WeightSource,
        key: &str,
    ) -> Result<(), String> {
        let dtype = self.dtype();
        let device = self.device();
        let load = |expected: &[usize]| -> Result<burn::tensor::TensorData, String> {
            let data = super::read(source, key, dtype).map_err(|e| e.to_string())?;
            if data.shape.as_slice() != expected {
                return Err(format!(
                    "shape {:?} does not replace `{name}` of shape {expected:?} (a resized \
                     vocabulary or another architecture)",
                    data.shape
                ));
            }
            Ok(data)
        };
        let to2 = |data| Tensor::<B, 2>::from_data(data, (&device, dtype.burn()));
        let to1 = |data| Tensor::<B, 1>::from_data(data, (&device, dtype.burn()));
        let (module, param) = name.rsplit_once('.').unwrap_or(("", name));
        let unknown = || format!("this model has no parameter `{name}` to replace");
        match (module, param) {
            ("lm_head", "weight") => {
                let data = load(&self.head.dims())?;
                self.head = kernels::Weight::new(to2(data));
            }
            ("model.embed_tokens", "weight") => {
                let data = load(&self.model.embed_tokens.weight.dims())?;
                self.model.embed_tokens.weight = to2(data);
            }
            ("model.norm", "weight") => {
                let data = load(&self.model.norm.weight.dims())?;
                self.model.norm.weight = to1(data);
            }
            (m, "weight") if m.ends_with("layernorm") => {
                let (index, which) = m
                    .strip_prefix("model.layers.")
                    .and_then(|r| r.split_once('.'))
                    .ok_or_else(unknown)?;
                let layer = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.model.layers.get_mut(i))
                    .ok_or_else(unknown)?;
                let norm = match which {
                    "input_layernorm" => &mut layer.input_layernorm,
                    "post_attention_layernorm" => &mut layer.post_attention_layernorm,
                    _ => return Err(unknown()),
                };
                let data = load(&norm.weight.dims())?;
                norm.weight = to1(data);
            }
            (m, "weight") => {
                let linear = self.linear_mut(m).ok_or_else(unknown)?;
                let data = load(&linear.weight.dims())?;
                linear.weight = kernels::Weight::new(to2(data));
            }
            (m, "bias") => {
                let linear = self.linear_mut(m).ok_or_else(unknown)?;
                let Some(bias) = &linear.bias else {
                    return Err(unknown());
                };
                let data = load(&bias.dims())?;
                linear.bias = Some(to1(data));
            }
            _ => return Err(unknown()),
        }
        Ok(())
    }
}
