//! `cdr merge`: the outputs of a sharded run joined into the file one process would write.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cdr_data::{Shard, merge};

use crate::cli::MergeArgs;
use crate::printer::Printer;
use crate::settings::read_options;

pub fn run(args: MergeArgs, printer: &Printer) -> anyhow::Result<()> {
    let shards = if args.shards.is_empty() {
        find_shards(&args.output)?
    } else {
        args.shards.clone()
    };
    // The library names the input and the id field; here they are these flags.
    let summary = merge(
        &args.io.input,
        &read_options(&args.io),
        &shards,
        &args.output,
    )
    .context("merging with --input and --id-field as given")?;
    printer.note(format_args!(
        "merged {} shards, {} rows into {}",
        summary.shards,
        summary.rows,
        args.output.display()
    ));
    Ok(())
}

/// The shard outputs named after `output` (`scores.shard-I-of-N.jsonl` for `scores.jsonl`).
fn find_shards(output: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let probe = Shard::new(0, 1)?.output_path(output);
    let probe = probe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `scores.shard-0-of-1.jsonl` -> prefix `scores.shard-`, suffix `.jsonl`.
    let (prefix, rest) = probe.split_once("shard-0-of-1").unwrap_or((&probe, ""));
    let (prefix, suffix) = (format!("{prefix}shard-"), rest.to_string());
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tag) = name
            .strip_prefix(&prefix)
            .and_then(|n| n.strip_suffix(&suffix))
        else {
            continue;
        };
        let is_tag = tag
            .split_once("-of-")
            .is_some_and(|(i, n)| i.parse::<usize>().is_ok() && n.parse::<usize>().is_ok());
        if is_tag {
            found.push(entry.path());
        }
    }
    found.sort();
    if found.is_empty() {
        anyhow::bail!(
            "no shard outputs {prefix}I-of-N{suffix} in {}; name them after --output",
            dir.display()
        );
    }
    Ok(found)
}
