//! Runs a job on the backend `--device` names, if this binary was built with it.

use cdr_core::backend::Backend;

use crate::cli::DeviceKind;

/// Work that is generic over the burn backend.
pub trait BackendJob {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()>;
}

pub fn dispatch(kind: DeviceKind, job: impl BackendJob) -> anyhow::Result<()> {
    match kind {
        #[cfg(feature = "cpu")]
        DeviceKind::Cpu => job.run::<cdr_core::backend::Cpu>(Default::default()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => job.run::<cdr_core::backend::Cuda>(Default::default()),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => job.run::<cdr_core::backend::Wgpu>(Default::default()),
        #[allow(unreachable_patterns)]
        other => {
            let _ = job;
            anyhow::bail!(
                "this cdr was built without the `{0}` backend; rebuild with `--features {0}`",
                format!("{other:?}").to_lowercase()
            )
        }
    }
}
