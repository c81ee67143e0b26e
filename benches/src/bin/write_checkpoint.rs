//! Writes the random-weight bf16 checkpoint of a shape under `.cache/bench/` (as `score_workload`
//! does) and prints its directory; `--tokenizer-from DIR` copies a tokenizer and chat template in,
//! so the CLI can score with it (e.g. the memory check of a 7B pair in `tools/pair_7b_memory.sh`).
//!
//! ```text
//! cargo run --release -p cdr-benches --bin write_checkpoint -- mistral-7b \
//!     --tokenizer-from cdr-models/tests/fixtures/llama_gqa
//! ```

use std::path::PathBuf;

use cdr_benches::shapes::{Shape, checkpoint};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shape = Shape::find(
        &args
            .next()
            .ok_or("usage: write_checkpoint SHAPE [--tokenizer-from DIR]")?,
    )?;
    let mut tokenizer_from: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tokenizer-from" => {
                tokenizer_from = Some(
                    args.next()
                        .ok_or("--tokenizer-from needs a directory")?
                        .into(),
                )
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let dir = checkpoint(shape)?;
    if let Some(src) = tokenizer_from {
        for file in ["tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(src.join(file), dir.join(file))
                .map_err(|e| format!("{}: {e}", src.join(file).display()))?;
        }
    }
    println!("{}", dir.display());
    Ok(())
}
