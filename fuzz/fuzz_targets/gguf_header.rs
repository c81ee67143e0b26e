//! GGUF files: arbitrary bytes parsed as a GGUF header, metadata and tensor directory, then the
//! model config, chat template and tensor ranges read from it as a load would.
#![no_main]

use cdr_models::gguf::{GgufFile, chat_template, config_from_gguf};
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::write("model.gguf", data);
    let Ok(file) = GgufFile::open(&path) else {
        return;
    };
    for (_, value) in file.metadata() {
        let _ = value.type_name();
        let _ = value.as_integer();
    }
    let _ = file.architecture();
    let _ = config_from_gguf(&file);
    let _ = chat_template(&file);
    for info in file.tensors() {
        let _ = info.shape();
        let _ = info.n_bytes();
        let _ = file.tensor_data(info);
    }
});
