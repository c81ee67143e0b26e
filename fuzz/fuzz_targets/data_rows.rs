//! Dataset rows: arbitrary bytes as a JSONL and as a JSON input, read in every shape cdr reads,
//! and as an existing JSONL output that RecordWriter resumes (scan + torn-line repair).
#![no_main]

use cdr_data::{
    ReadOptions, RecordWriter, WriteOptions, read_best_of_n, read_pairwise, read_prompts, read_rows,
};
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    for (name, skip_invalid) in [("rows.jsonl", false), ("rows.json", true)] {
        let path = scratch::write(name, data);
        let options = ReadOptions {
            skip_invalid,
            ..ReadOptions::default()
        };
        let _ = read_rows(&path, &options);
        let _ = read_pairwise(&path, &options);
        let _ = read_best_of_n(&path, &options);
        let _ = read_prompts(&path, &options);
    }
    let output = scratch::write("out.jsonl", data);
    if let Ok(mut writer) = RecordWriter::open(&output, &WriteOptions::default()) {
        // After a repair the file must take a new row and read back whole.
        let id = format!("fuzz-{}", writer.len());
        if !writer.contains(&id) {
            let record = serde_json::json!({ "id": id, "x": 1 });
            if writer.write(&record).is_ok() {
                let _ = writer.finish();
                assert!(
                    RecordWriter::open(&output, &WriteOptions::default()).is_ok(),
                    "a repaired output that took a row must reopen"
                );
            }
        }
    }
});
