//! `cdr generate`: N sampled responses per prompt from a policy model, written as best-of-N rows
//! that `cdr annotate` reads.

use std::path::Path;

use cdr_core::engine::{GenerateSettings, GenerateSummary, generate_file};

use crate::cli::GenerateArgs;
use crate::printer::Printer;
use crate::settings::{input, output, policy_dtype, sample_options, with_hint};

pub fn run(args: GenerateArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.compute.validate()?;
    let settings = GenerateSettings {
        policy: args.policy.clone(),
        template: args.policy_template.clone(),
        sample: sample_options(&args.sampling, args.max_prompt_tokens, &args.policy)?,
        device: args.compute.device,
        dtype: policy_dtype(&args.compute, &args.policy),
        batch_rows: args.sampling.batch_rows,
        skip_invalid: args.io.skip_invalid,
    };
    let out = output(&args.io, &args.output, args.shard.resolve()?);
    let summary = generate_file(&settings, &input(&args.io), &out, printer).map_err(with_hint)?;
    self::summary(&summary, printer, &out.file());
    Ok(())
}

/// What a generation run did.
pub fn summary(s: &GenerateSummary, printer: &Printer, path: &Path) {
    let (tokens, secs) = printer.last_stage();
    printer.note(format_args!(
        "{} prompts generated ({} already done), {} responses, {:.0} new tokens/s; endings {:?}",
        s.rows,
        s.resumed,
        s.responses,
        tokens as f64 / secs.max(1e-9),
        s.finish
    ));
    if s.empty > 0 {
        printer.note(format_args!("{} empty responses left out", s.empty));
    }
    if !s.no_response.is_empty() {
        printer.note(format_args!(
            "{} prompts got no non-empty response and were not written: {}",
            s.no_response.len(),
            s.no_response.join(", ")
        ));
    }
    printer.skipped_rows(&s.failed);
    printer.note(format_args!("{} rows in {}", s.written, path.display()));
}
