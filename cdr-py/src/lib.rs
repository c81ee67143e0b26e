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

#[pymodule]
fn _cdr(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<density_ratio::PyDensityRatio>()?;
    m.add_function(wrap_pyfunction!(logprobs::py_logprobs, m)?)?;
    m.add("CdrError", m.py().get_type::<error::CdrError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
