//! safetensors files: arbitrary bytes opened as a one-file checkpoint (header length, JSON
//! header, dtypes, shapes and offsets checked against the file), then listed.
#![no_main]

use cdr_models::safetensors::SafetensorsWeights;
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::write("model.safetensors", data);
    if let Ok(weights) = SafetensorsWeights::open_files(&path, std::slice::from_ref(&path)) {
        let _ = weights.names();
        let _ = weights.dtypes();
        let _ = weights.stored_bytes();
    }
});
