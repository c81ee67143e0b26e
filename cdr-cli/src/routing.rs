//! `--router` as the library's router kind.

use cdr_core::engine;

use crate::cli::RouterKind;

impl From<RouterKind> for engine::RouterKind {
    fn from(kind: RouterKind) -> Self {
        match kind {
            RouterKind::Field => Self::Field,
            RouterKind::Likelihood => Self::Likelihood,
            RouterKind::Llm => Self::Llm,
        }
    }
}
