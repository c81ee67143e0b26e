//! `cdr`: the command-line face of the cdr crates.

// Inputs, checkpoints and outputs are untrusted: failures must be errors, not panics.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod commands;
mod generate;
mod info;
mod job;
mod logprobs;
mod pairs;

mod plots;
mod progress;
mod report;
mod report_dir;
mod routing;
mod shard;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

// Activations of tens of megabytes are allocated and freed per layer; mimalloc reuses them where
// glibc would map fresh pages each time (see the workspace Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc.h's `mi_option_purge_decommits` (the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Freed activations come back a layer later. mimalloc's default purge decommits them, so each
/// reuse faults in fresh zeroed pages: 200k faults and 14% of the CPU time of a bf16 Qwen2.5-0.5B
/// scoring run. A reset purge (`MADV_FREE`) keeps them mapped until the kernel needs the memory.
fn keep_freed_pages_mapped() {
    // SAFETY: the first thing main does, before any other thread exists (mimalloc's option setter
    // is not thread safe); the option is an integer mimalloc reads when it purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) }
}

fn main() -> std::process::ExitCode {
    keep_freed_pages_mapped();
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let result = match cli.command {
        Command::Score(mut args) => {
            args.run.quiet = cli.quiet;
            let compute = args.run.models.scoring.compute.clone();
            compute.validate().and_then(|()| args.run())
        }
        Command::Eval(mut args) => {
            args.run.quiet = cli.quiet;
            let compute = args.run.models.scoring.compute.clone();
            compute.validate().and_then(|()| args.run())
        }
        Command::Annotate(mut args) => {
            args.run.quiet = cli.quiet;
            let compute = args.run.models.scoring.compute.clone();
            compute
                .validate()
                .and_then(|()| generate::Annotate(args).run())
        }
        Command::Generate(mut args) => {
            args.quiet = cli.quiet;
            let compute = args.compute.clone();
            compute.validate().and_then(|()| args.run())
        }
        Command::Logprobs(mut args) => {
            args.quiet = cli.quiet;
            let compute = args.scoring.compute.clone();
            compute.validate().and_then(|()| args.run())
        }
        Command::Pairs(mut args) => {
            args.quiet = cli.quiet;
            let compute = args.scoring.compute.clone();
            compute.validate().and_then(|()| args.run())
        }
        Command::Route(mut args) => {
            args.quiet = cli.quiet;
            let compute = args.compute.clone();
            compute.validate().and_then(|()| args.run())
        }
        Command::Info(args) => info::run(&args),
        Command::Merge(args) => args.run(),
        Command::Config(args) => {
            if args.example {
                print!("{}", cdr_prompt::customize::DEFAULT_CONFIG);
                Ok(())
            } else {
                Err(anyhow::anyhow!("nothing to do: pass --example"))
            }
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cdr: error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated like anyhow's `{:#}`, but leaving out a cause whose
/// text the message already ends with: cdr's IO errors name their OS error in their own message
/// (`cannot write F: File too large`), and repeating it reads like two failures.
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}
