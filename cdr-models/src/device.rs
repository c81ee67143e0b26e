//! Where a model runs, chosen at run time among the backends this build has (as candle's
//! `Device`), so that code above cdr-models names no burn type.

use std::fmt;
use std::str::FromStr;

use crate::error::{ModelError, Result};

/// A compute device. Every variant exists in every build; loading on one whose backend was not
/// compiled in is an error that names the cargo feature to enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Device {
    /// The CPU (burn `flex` with cdr's kernels).
    #[default]
    Cpu,
    /// The NVIDIA GPU with this index.
    Cuda(usize),
    /// The default wgpu adapter (Vulkan, Metal, DX12).
    Wgpu,
}

impl Device {
    /// The cargo feature that builds this device's backend.
    pub fn feature(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda(_) => "cuda",
            Device::Wgpu => "wgpu",
        }
    }

    /// Whether this build has the backend.
    pub fn is_compiled(&self) -> bool {
        match self {
            Device::Cpu => cfg!(feature = "cpu"),
            Device::Cuda(_) => cfg!(feature = "cuda"),
            Device::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The devices this build can run on (CUDA as device 0).
    pub fn compiled() -> Vec<Device> {
        [Device::Cpu, Device::Cuda(0), Device::Wgpu]
            .into_iter()
            .filter(Device::is_compiled)
            .collect()
    }

    /// An error unless this build has the backend.
    pub fn check(&self) -> Result<()> {
        if self.is_compiled() {
            Ok(())
        } else {
            Err(ModelError::Input(format!(
                "this build has no `{0}` backend (built with: {1}); rebuild with the cargo feature `{0}`",
                self.feature(),
                Device::compiled()
                    .iter()
                    .map(|d| d.feature())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(0) => f.write_str("cuda"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::Wgpu => f.write_str("wgpu"),
        }
    }
}

impl FromStr for Device {
    type Err = ModelError;

    /// `cpu`, `cuda`, `cuda:N` or `wgpu`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            ModelError::Input(format!(
                "unknown device `{s}` (expected cpu, cuda, cuda:N or wgpu)"
            ))
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            "wgpu" => Ok(Device::Wgpu),
            other => match other.strip_prefix("cuda:") {
                Some(index) => index.parse().map(Device::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, device) in [
            ("cpu", Device::Cpu),
            ("cuda", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
            ("wgpu", Device::Wgpu),
        ] {
            assert_eq!(text.parse::<Device>().unwrap(), device);
            assert_eq!(device.to_string().parse::<Device>().unwrap(), device);
        }
        assert!("tpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
    }

    #[test]
    fn uncompiled_backend_is_an_error_naming_the_feature() {
        for device in [Device::Cpu, Device::Cuda(0), Device::Wgpu] {
            match device.check() {
                Ok(()) => assert!(device.is_compiled()),
                Err(e) => assert!(e.to_string().contains(device.feature()), "{e}"),
            }
        }
    }
}
