//! PEFT `adapter_config.json`: arbitrary bytes read as a LoRA adapter's config (keys refused or
//! ignored, target lists and regexes compiled, pattern maps read in file order), then asked which
//! modules it targets with which rank and scaling.
#![no_main]

use std::path::Path;

use cdr_models::Adapter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(adapter) = Adapter::from_config_text(text, Path::new("adapter")) {
        let _ = adapter.describe();
        let _ = adapter.base();
        for layer in [0, 1, 17] {
            for module in ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"] {
                let _ = adapter.module(&format!("model.layers.{layer}.{module}"));
            }
        }
        let _ = adapter.module("lm_head");
        let _ = adapter.module("model.embed_tokens");
    }
});
