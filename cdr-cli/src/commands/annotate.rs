//! `cdr annotate`: best-of-N rows to DPO/SimPO preference pairs, generating the responses first
//! when `--policy` is given.

use cdr_core::best_of_n::PairStrategy;
use cdr_core::engine::{
    GenerateSettings, Output, annotate_file, annotate_length_controlled, generated_path,
};

use crate::cli::{AnnotateArgs, PairStrategyArg};
use crate::printer::Printer;
use crate::settings::{input, load_engine, output, policy_dtype, sample_options, with_hint};

pub fn run(args: AnnotateArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.run.models.scoring.compute.validate()?;
    let args = generate_first(args, printer)?;
    let out = output(&args.run.io, &args.output, args.run.shard.resolve()?);
    let strategy = match args.pair_strategy {
        PairStrategyArg::BestWorst => PairStrategy::BestWorst,
        PairStrategyArg::BestRandom => PairStrategy::BestRandom { seed: args.seed },
        PairStrategyArg::LengthControlled => return length_controlled(&args, &out, printer),
    };
    let engine = load_engine(&args.run, printer)?;
    let summary =
        annotate_file(&engine, &input(&args.run.io), &out, strategy, printer).map_err(with_hint)?;
    printer.file_summary(&summary.file);
    printer.cache_summary(engine.pair());
    for (why, n) in &summary.no_pair {
        printer.note(format_args!("{n} rows gave no pair ({why})"));
    }
    printer.note(format_args!(
        "{} preference pairs in {}",
        summary.file.written,
        summary.file.path.display()
    ));
    Ok(())
}

/// `--pair-strategy length-controlled`: scores every row, then pairs them with one alpha; the
/// search's result goes to stderr and to `<output>.report.json`.
fn length_controlled(
    args: &AnnotateArgs,
    out: &Output,
    printer: &mut Printer,
) -> anyhow::Result<()> {
    let engine = load_engine(&args.run, printer)?;
    let summary = annotate_length_controlled(&engine, &input(&args.run.io), out, printer)
        .map_err(with_hint)?;
    printer.file_summary(&summary.file);
    printer.cache_summary(engine.pair());
    for (why, n) in &summary.no_pair {
        printer.note(format_args!("{n} rows gave no pair ({why})"));
    }
    if let Some(s) = &summary.search {
        printer.note(format_args!(
            "length control: alpha {:.6} per token; mean chosen-rejected length gap {:.1} -> {:.1} tokens (mean length {:.1}); {} samples at the token limit dropped",
            s.alpha, s.gap_before, s.gap_after, summary.mean_length, summary.dropped_truncated
        ));
    }
    let mut report = out.path.clone().into_os_string();
    report.push(".report.json");
    let report = std::path::PathBuf::from(report);
    crate::report::write_json(&report, &summary)?;
    printer.note(format_args!(
        "{} preference pairs in {} (report in {})",
        summary.pairs,
        summary.file.path.display(),
        report.display()
    ));
    Ok(())
}

/// With `--policy`: samples responses for the prompts of `--input` into the output's
/// `.generated.jsonl` (resumable, each shard beside its own output) and points the annotation at
/// that file. Without, `args` as given.
fn generate_first(mut args: AnnotateArgs, printer: &mut Printer) -> anyhow::Result<AnnotateArgs> {
    let Some(policy) = args.policy.clone() else {
        return Ok(args);
    };
    let scoring = &args.run.models.scoring;
    let shard = args.run.shard.resolve()?;
    let generated = generated_path(&output(&args.run.io, &args.output, shard).file());
    let settings = GenerateSettings {
        sample: sample_options(&args.sampling, scoring.max_prompt_tokens, &policy)?,
        template: args.policy_template.clone(),
        device: scoring.compute.device,
        dtype: policy_dtype(&scoring.compute, &policy),
        batch_rows: args.sampling.batch_rows,
        skip_invalid: args.run.io.skip_invalid,
        policy,
    };
    let summary = settings
        .generate_into(
            &input(&args.run.io),
            &generated,
            args.run.io.fresh,
            shard,
            printer,
        )
        .map_err(with_hint)?;
    super::generate::summary(&summary, printer, &generated);
    // The generated file uses the default column names, whatever the prompts file used.
    let io = &mut args.run.io;
    io.input = generated;
    io.id_field = "id".into();
    io.prompt_field = "prompt".into();
    io.responses_field = "responses".into();
    io.subset_field = "subset".into();
    io.domain_field = "domain".into();
    Ok(args)
}
