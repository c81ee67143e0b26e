//! `cdr`: the command-line face of the cdr crates.

// Inputs, checkpoints and outputs are untrusted: failures must be errors, not panics.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod commands;
mod plots;
mod printer;
mod report;
mod report_dir;
mod routing;
mod settings;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::printer::Printer;

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
    // Colour codes only where a terminal shows them, not in a redirected log.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let mut printer = Printer::new(cli.quiet);
    if let Some(base) = &cli.adapter_base {
        match cdr_models::resolve_model(base) {
            Ok(path) => cdr_models::set_fallback_base(path),
            Err(e) => {
                printer.error(&anyhow::anyhow!("--adapter-base: {e}"));
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    match commands::run(cli.command, &mut printer) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            printer.error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}
