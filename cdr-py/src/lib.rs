//! The `cdr` Python package's native module (`cdr._cdr`): the density-ratio reward of a
//! strong/weak pair, scoring rows in `cdr`'s input layouts, `eval`, `annotate` and one model's
//! log-probs. The Python side (`python/cdr`) adds the TRL, OpenRLHF and verl adapters.
//!
//! Files: [`pair`] holds every call into cdr-core, [`records`] the per-row output records
//! (the library engine's, one enum for both row shapes), [`density_ratio`] and [`logprobs`] the Python-facing calls,
//! [`convert`] rows between Python and JSON, [`error`] the exceptions.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod convert;
mod density_ratio;
mod error;
mod logprobs;
mod pair;
mod progress;
mod records;

use pyo3::prelude::*;

/// Rust-side logs (model loading, dtype choices, cache tables) on stderr when `CDR_LOG` (or else
/// `RUST_LOG`) holds a filter such as `info`; silent otherwise, as a library should be.
fn init_logging() {
    let filter = std::env::var("CDR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|f| !f.trim().is_empty());
    if let Some(filter) = filter {
        // An application that set up its own subscriber keeps it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
}

#[pymodule]
fn _cdr(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add_class::<density_ratio::PyDensityRatio>()?;
    m.add_function(wrap_pyfunction!(logprobs::py_logprobs, m)?)?;
    m.add("CdrError", m.py().get_type::<error::CdrError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
