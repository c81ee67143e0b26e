//! A resumable eval and a best-of-N annotation from Rust:
//! `cargo run -p cdr-core --example eval_and_annotate [STRONG WEAK]` (default: the tiny test
//! models). Run it twice: the second eval finds every row in its output and scores none.
use cdr_core::best_of_n::PairStrategy::BestWorst;
use cdr_core::engine::{Engine, Input, Output, PairSettings, RunSettings, Silent};
use cdr_core::engine::{annotate_file, eval_file};

fn main() -> Result<(), cdr_core::CoreError> {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let model = |name| format!("{repo}/cdr-models/tests/fixtures/{name}");
    let mut args = std::env::args().skip(1);
    let (strong, weak) = (args.next(), args.next());
    let settings = PairSettings::new(
        strong.unwrap_or(model("llama_gqa")),
        weak.unwrap_or(model("llama_sharded")),
    );
    let engine = Engine::load(RunSettings::new(settings), &mut Silent)?;

    let input = Input::new(format!("{repo}/examples/code-pairs.jsonl"));
    let scored = Output::new(std::env::temp_dir().join("cdr-example-scored.jsonl"));
    let (report, _, run) = eval_file(&engine, &input, Some(&scored), None, &mut Silent)?;
    let resumed = run.stats.resumed;
    println!("accuracy {:.3}, {resumed} rows resumed", report.accuracy);
    let input = Input::new(format!("{repo}/examples/best-of-4.jsonl"));
    let pairs = Output::new(std::env::temp_dir().join("cdr-example-pairs.jsonl"));
    let run = annotate_file(&engine, &input, &pairs, BestWorst, &mut Silent)?;
    println!("{} pairs in {}", run.file.written, run.file.path.display());
    Ok(())
}
