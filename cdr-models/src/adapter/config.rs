//! `adapter_config.json` as PEFT writes it for LoRA: which modules are adapted, with which rank and
//! alpha, and the keys that would change the math in ways cdr does not implement (refused by name).

use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

use crate::error::{ModelError, Result};

/// The adapter's config file.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";

/// `target_modules` / `exclude_modules`: a list (exact name or a `.`-bounded suffix) or one regex
/// matched against the whole module name.
#[derive(Debug, Clone)]
pub enum ModuleSet {
    Names(Vec<String>),
    Regex(Regex),
}

impl ModuleSet {
    fn matches(&self, name: &str) -> Option<Match> {
        match self {
            Self::Names(names) => names.iter().find_map(|n| {
                if name == n {
                    Some(Match::Exact)
                } else if name.ends_with(&format!(".{n}")) {
                    Some(Match::Suffix)
                } else {
                    None
                }
            }),
            Self::Regex(re) => re.is_match(name).then_some(Match::Regex),
        }
    }
}

/// How a module name matched `target_modules`: PEFT applies `layers_to_transform` only to suffix
/// matches (a full name or a regex picks its layers itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Exact,
    Suffix,
    Regex,
}

/// `rank_pattern` / `alpha_pattern` in the file's key order, each key compiled as PEFT matches it:
/// the key must match a whole dot-separated suffix of the module name. PEFT takes the first
/// matching key in dict order, which after a reload is the file's order, so the order is kept.
#[derive(Debug, Clone, Default)]
pub struct Patterns(Vec<(String, Regex, f64)>);

impl Patterns {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn first(&self, name: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(_, re, _)| re.is_match(name))
            .map(|&(_, _, v)| v)
    }
}

/// A JSON object read in file order (serde_json's own map sorts its keys).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The parts of a LoRA adapter config that decide the forward.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    pub r: usize,
    pub lora_alpha: f64,
    pub use_rslora: bool,
    pub target_modules: Option<ModuleSet>,
    pub exclude_modules: Option<ModuleSet>,
    pub layers_to_transform: Option<Vec<usize>>,
    pub layers_pattern: Option<Vec<String>>,
    pub rank_pattern: Patterns,
    pub alpha_pattern: Patterns,
    pub modules_to_save: Vec<String>,
    /// As written; resolved against the adapter's directory by [`super::Adapter::base`].
    pub base_model_name_or_path: Option<String>,
}

/// Keys with no effect at inference.
const IGNORED: &[&str] = &[
    "lora_dropout",
    "inference_mode",
    "task_type",
    "auto_mapping",
    "peft_version",
    "revision",
    "megatron_core",
    "qalora_group_size",
    "loftq_config",
    "eva_config",
    "corda_config",
    "lora_ga_config",
    "ensure_weight_tying",
    "runtime_config",
    // Only transposes a merged delta for GPT-2's Conv1D; PEFT resets it on Linear layers.
    "fan_in_fan_out",
];

/// Keys that change the forward when set (beyond null/false/{}/[]/"none"), with what they do.
const REFUSED: &[(&str, &str)] = &[
    (
        "use_dora",
        "DoRA rescales each output by a learned magnitude",
    ),
    ("lora_bias", "a trained bias on lora_B"),
    ("bias", "trained replacement biases"),
    ("use_qalora", "QA-LoRA pools its inputs"),
    (
        "alora_invocation_tokens",
        "an activated LoRA applies only after its invocation tokens",
    ),
    ("layer_replication", "it rebuilds the layer stack"),
    (
        "target_parameters",
        "LoRA on raw parameters (e.g. MoE experts)",
    ),
    ("megatron_config", "Megatron-parallel LoRA layers"),
    ("trainable_token_indices", "a per-token embedding delta"),
    ("use_bdlora", "a LoRA variant with its own forward"),
    ("arrow_config", "a LoRA variant with its own forward"),
    ("kasa_config", "a LoRA variant with its own forward"),
    ("monteclora_config", "a LoRA variant with its own forward"),
    ("velora_config", "a LoRA variant"),
];

/// `init_lora_weights` values that modify the base weights at initialisation: such an adapter
/// only works over that modified base, which is not the checkpoint here.
const BASE_MODIFYING_INIT: &[&str] = &["pissa", "olora", "corda", "lora_ga", "loftq"];

fn is_off(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s == "none",
        _ => false,
    }
}

impl AdapterConfig {
    /// Reads and checks `dir/adapter_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        Self::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let Ordered(entries) =
            serde_json::from_str(text).map_err(|e| err(format!("not a JSON object: {e}")))?;
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        match get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            Some(other) => {
                return Err(err(format!(
                    "peft_type `{other}`: cdr reads LoRA adapters only (peft_type \"LORA\")"
                )));
            }
            None => return Err(err("no peft_type (expected \"LORA\")".into())),
        }
        let handled = [
            "peft_type",
            "r",
            "lora_alpha",
            "use_rslora",
            "target_modules",
            "exclude_modules",
            "layers_to_transform",
            "layers_pattern",
            "rank_pattern",
            "alpha_pattern",
            "modules_to_save",
            "base_model_name_or_path",
            "init_lora_weights",
        ];
        for (key, value) in &entries {
            if handled.contains(&key.as_str()) || IGNORED.contains(&key.as_str()) {
                continue;
            }
            if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == key) {
                if !is_off(value) {
                    return Err(err(format!(
                        "`{key}`: {value} is not supported ({why}); cdr computes plain LoRA only"
                    )));
                }
            } else if !is_off(value) {
                return Err(err(format!(
                    "unknown key `{key}` = {value}: cdr does not know whether it changes the \
                     forward, so it refuses the adapter rather than ignore it"
                )));
            }
        }
        if let Some(Value::String(init)) = get("init_lora_weights") {
            let lower = init.to_ascii_lowercase();
            if BASE_MODIFYING_INIT.iter().any(|p| lower.starts_with(p)) {
                return Err(err(format!(
                    "`init_lora_weights` = \"{init}\" modifies the base weights at \
                     initialisation, so the adapter applies only over that modified base (convert \
                     it with PEFT's path_initial_model_for_weight_conversion when saving)"
                )));
            }
        }
        let r = match get("r").and_then(Value::as_u64) {
            Some(r) if r > 0 => r as usize,
            _ => return Err(err("`r` must be a positive integer".into())),
        };
        let lora_alpha = get("lora_alpha")
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| err("`lora_alpha` must be a number".into()))
            })
            .transpose()?
            .unwrap_or(8.0);
        let use_rslora = match get("use_rslora") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(err(format!("`use_rslora` must be true or false, not {v}"))),
        };
        let module_set = |key: &str| -> Result<Option<ModuleSet>> {
            match get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s == "all-linear" => Err(err(format!(
                    "`{key}` = \"all-linear\": PEFT saves the expanded module names, so this \
                     config was not written by save_pretrained"
                ))),
                Some(Value::String(s)) => Regex::new(&format!("^(?:{s})$"))
                    .map(|re| Some(ModuleSet::Regex(re)))
                    .map_err(|e| err(format!("`{key}`: regex `{s}` does not compile: {e}"))),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| err(format!("`{key}` entries must be strings, not {v}")))
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(|names| Some(ModuleSet::Names(names))),
                Some(v) => Err(err(format!("`{key}` must be a list or a regex, not {v}"))),
            }
        };
        let target_modules = module_set("target_modules")?;
        let exclude_modules = module_set("exclude_modules")?;
        let layers_to_transform = match get("layers_to_transform") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(vec![
                n.as_u64()
                    .ok_or_else(|| err("`layers_to_transform` must hold layer indices".into()))?
                    as usize,
            ]),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_u64().map(|n| n as usize).ok_or_else(|| {
                            err(format!(
                                "`layers_to_transform` entries must be indices, not {v}"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(v) => {
                return Err(err(format!(
                    "`layers_to_transform` must be a list, not {v}"
                )));
            }
        };
        let layers_pattern = match get("layers_pattern") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Array(items)) if items.is_empty() => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            err(format!("`layers_pattern` entries must be strings, not {v}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(v) => return Err(err(format!("`layers_pattern` must be a string, not {v}"))),
        };
        // The pattern maps again, keys in file order (`get` went through serde_json's sorted map).
        let in_order: Option<PatternMaps> = serde_json::from_str(text).ok();
        let patterns = |key: &str| -> Result<Patterns> {
            let Some(value) = get(key) else {
                return Ok(Patterns::default());
            };
            if value.is_null() {
                return Ok(Patterns::default());
            }
            if !value.is_object() {
                return Err(err(format!("`{key}` must be an object, not {value}")));
            }
            let ordered = in_order
                .as_ref()
                .and_then(|m| match key {
                    "rank_pattern" => m.rank_pattern.as_ref(),
                    _ => m.alpha_pattern.as_ref(),
                })
                .map(|o| o.0.clone())
                .unwrap_or_default();
            let mut out = Vec::new();
            for (k, v) in ordered {
                let n = v
                    .as_f64()
                    .ok_or_else(|| err(format!("`{key}`.`{k}` must be a number, not {v}")))?;
                let re = Regex::new(&format!("^(?:.*\\.)?(?:{k})$"))
                    .map_err(|e| err(format!("`{key}`: regex `{k}` does not compile: {e}")))?;
                out.push((k, re, n));
            }
            Ok(Patterns(out))
        };
        let rank_pattern = patterns("rank_pattern")?;
        let alpha_pattern = patterns("alpha_pattern")?;
        if let Some((k, _, v)) = rank_pattern
            .0
            .iter()
            .find(|(_, _, v)| *v < 1.0 || v.fract() != 0.0)
        {
            return Err(err(format!(
                "`rank_pattern`.`{k}` = {v} is not a positive rank"
            )));
        }
        let modules_to_save = match get("modules_to_save") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        err(format!(
                            "`modules_to_save` entries must be strings, not {v}"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            Some(v) => return Err(err(format!("`modules_to_save` must be a list, not {v}"))),
        };
        Ok(Self {
            r,
            lora_alpha,
            use_rslora,
            target_modules,
            exclude_modules,
            layers_to_transform,
            layers_pattern,
            rank_pattern,
            alpha_pattern,
            modules_to_save,
            base_model_name_or_path: get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// Whether PEFT would put a LoRA layer on module `name` (e.g. `model.layers.0.self_attn.q_proj`).
    pub fn targets(&self, name: &str) -> bool {
        if self
            .modules_to_save
            .iter()
            .any(|m| name.ends_with(m.as_str()))
        {
            return false;
        }
        if let Some(ex) = &self.exclude_modules
            && ex.matches(name).is_some()
        {
            return false;
        }
        let Some(targets) = &self.target_modules else {
            return false;
        };
        match targets.matches(name) {
            None => false,
            Some(Match::Exact | Match::Regex) => true,
            Some(Match::Suffix) => match &self.layers_to_transform {
                None => true,
                Some(layers) => self.layer_index(name).is_some_and(|i| layers.contains(&i)),
            },
        }
    }

    /// The layer index PEFT reads from a module name for `layers_to_transform`: the number after
    /// a `layers_pattern` segment, or else the first numeric segment after some segment.
    fn layer_index(&self, name: &str) -> Option<usize> {
        let parts: Vec<&str> = name.split('.').collect();
        // A number must be followed by another segment to count (PEFT's regexes end in `\.`).
        let candidates = (0..parts.len().saturating_sub(1)).filter_map(|i| {
            let n = parts[i].parse::<usize>().ok()?;
            Some((i, n))
        });
        match &self.layers_pattern {
            None => candidates
                .into_iter()
                .find(|&(i, _)| i >= 1)
                .map(|(_, n)| n),
            Some(patterns) => candidates
                .into_iter()
                .find(|&(i, _)| i >= 1 && patterns.iter().any(|p| p == parts[i - 1]))
                .map(|(_, n)| n),
        }
    }

    /// The rank and alpha PEFT gives module `name`.
    pub fn rank_alpha(&self, name: &str) -> (usize, f64) {
        let r = self.rank_pattern.first(name).map_or(self.r, |r| r as usize);
        let alpha = self.alpha_pattern.first(name).unwrap_or(self.lora_alpha);
        (r, alpha)
    }

    /// The factor on `B·A`: `alpha / r`, or `alpha / sqrt(r)` for rank-stabilized LoRA.
    pub fn scaling(&self, name: &str) -> f64 {
        let (r, alpha) = self.rank_alpha(name);
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }
}

/// `rank_pattern` and `alpha_pattern` read again with their keys in file order.
#[derive(Deserialize)]
struct PatternMaps {
    #[serde(default)]
    rank_pattern: Option<Ordered>,
    #[serde(default)]
    alpha_pattern: Option<Ordered>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<AdapterConfig> {
        let text = format!(r#"{{"peft_type": "LORA", "r": 8, "lora_alpha": 16{extra}}}"#);
        AdapterConfig::parse(&text, Path::new("adapter_config.json"))
    }

    const Q0: &str = "model.layers.0.self_attn.q_proj";
    const Q1: &str = "model.layers.1.self_attn.q_proj";

    #[test]
    fn list_targets_match_whole_dot_bounded_suffixes() {
        let c = parse(r#", "target_modules": ["q_proj", "mlp.up_proj"]"#).unwrap();
        assert!(c.targets(Q0));
        assert!(c.targets("model.layers.3.mlp.up_proj"));
        assert!(!c.targets("model.layers.0.self_attn.k_proj"));
        let c = parse(r#", "target_modules": ["proj"]"#).unwrap();
        assert!(!c.targets(Q0), "a suffix must start at a dot");
    }

    #[test]
    fn a_regex_string_must_match_the_whole_name() {
        let c = parse(r#", "target_modules": "model\\.layers\\.1\\..*q_proj""#).unwrap();
        assert!(c.targets(Q1) && !c.targets(Q0));
        let c = parse(r#", "target_modules": "q_proj""#).unwrap();
        assert!(!c.targets(Q0), "fullmatch, not search");
    }

    #[test]
    fn layers_to_transform_applies_to_suffix_matches_only() {
        let c = parse(r#", "target_modules": ["q_proj"], "layers_to_transform": [1]"#).unwrap();
        assert!(c.targets(Q1) && !c.targets(Q0));
        let c = parse(&format!(
            r#", "target_modules": ["{Q0}"], "layers_to_transform": [1]"#
        ))
        .unwrap();
        assert!(c.targets(Q0), "a full name bypasses layers_to_transform");
        let c = parse(
            r#", "target_modules": ["q_proj"], "layers_to_transform": 0, "layers_pattern": "layers""#,
        )
        .unwrap();
        assert!(c.targets(Q0) && !c.targets(Q1));
    }

    #[test]
    fn exclusions_and_saved_modules_are_never_targets() {
        let c = parse(
            r#", "target_modules": ["q_proj", "lm_head"], "exclude_modules": ["layers.0.self_attn.q_proj"], "modules_to_save": ["lm_head"]"#,
        )
        .unwrap();
        assert!(!c.targets(Q0) && c.targets(Q1) && !c.targets("lm_head"));
    }

    #[test]
    fn patterns_take_the_first_key_in_file_order() {
        let c = parse(
            r#", "use_rslora": true, "rank_pattern": {"q_proj": 4, "layers\\.1\\..*": 2},
               "alpha_pattern": {"^q_proj": 1, "layers.1.self_attn.q_proj": 9}"#,
        )
        .unwrap();
        assert_eq!(c.rank_alpha(Q1), (4, 9.0));
        // `^q_proj` never matches a full name (it must match from the start).
        assert_eq!(c.rank_alpha(Q0), (4, 16.0));
        assert_eq!(c.rank_alpha("model.layers.1.mlp.up_proj"), (2, 16.0));
        assert!((c.scaling(Q1) - 9.0 / 2.0).abs() < 1e-12);
        let c = parse(r#", "rank_pattern": {"layers\\.1\\..*": 2, "q_proj": 4}"#).unwrap();
        assert_eq!(c.rank_alpha(Q1).0, 2);
    }

    #[test]
    fn settings_that_change_the_math_are_refused_by_name() {
        for (extra, key) in [
            (r#", "use_dora": true"#, "use_dora"),
            (r#", "bias": "all""#, "bias"),
            (r#", "layer_replication": [[0, 1]]"#, "layer_replication"),
            (
                r#", "init_lora_weights": "pissa_niter_4""#,
                "init_lora_weights",
            ),
            (r#", "brand_new_option": 3"#, "brand_new_option"),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{err}");
        }
        for extra in [
            r#", "use_dora": false, "bias": "none", "brand_new_option": null"#,
            r#", "init_lora_weights": "gaussian", "lora_dropout": 0.1, "fan_in_fan_out": true"#,
        ] {
            parse(extra).unwrap();
        }
        let err = AdapterConfig::parse(r#"{"peft_type": "IA3", "r": 8}"#, Path::new("a"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("IA3"));
    }
}
