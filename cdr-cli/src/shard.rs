//! `--shard I/N` and the cluster schedulers' environments, and `cdr merge`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cdr_data::{Shard, merge};
use clap::Args;

use crate::cli::IoArgs;
use crate::job::read_options;

/// How a long run is split over machines.
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Process only shard I of N (0-based): the rows whose id hashes to I. The output goes to
    /// OUTPUT.shard-I-of-N.EXT; `cdr merge` joins the shards. Default: from a Slurm job array
    /// (SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT), else a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX with --shards); `--shard 0/1` turns that detection off.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// The number of shards, for a Kubernetes Indexed Job (its `completions`).
    #[arg(long, env = "CDR_SHARDS", value_name = "N")]
    pub shards: Option<usize>,
}

impl ShardArgs {
    /// This process's shard, if the run is split.
    pub fn resolve(&self) -> anyhow::Result<Option<Shard>> {
        let detected = Shard::detect(self.shard.as_deref(), self.shards, |k| {
            std::env::var(k).ok()
        })?;
        Ok(detected.map(|(shard, source)| {
            tracing::info!(%shard, %source, "running one shard");
            shard
        }))
    }
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Where the merged rows go (.jsonl or .parquet): the file a single unsharded run writes.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Shard outputs. Default: every OUTPUT.shard-I-of-N.EXT beside --output.
    pub shards: Vec<PathBuf>,
    /// The sharded runs' input (prompts for `generate`): its row order is the merged order.
    #[command(flatten)]
    pub io: IoArgs,
}

impl MergeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let shards = if self.shards.is_empty() {
            find_shards(&self.output)?
        } else {
            self.shards.clone()
        };
        let summary = merge(
            &self.io.input,
            &read_options(&self.io),
            &shards,
            &self.output,
        )?;
        eprintln!(
            "cdr: merged {} shards, {} rows into {}",
            summary.shards,
            summary.rows,
            self.output.display()
        );
        Ok(())
    }
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
