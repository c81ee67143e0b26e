//! The burn backends cdr is built with, selected by cargo features.
//!
//! Models are generic over `B: Backend`; these aliases name the concrete choices so downstream code
//! does not depend on burn's type names.

/// Pure-Rust CPU backend (burn `flex`): f32, f16 and bf16.
#[cfg(feature = "cpu")]
pub type Cpu = burn::backend::Flex;

/// Portable GPU backend (Vulkan, Metal, DX12 through wgpu).
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;

/// NVIDIA GPUs through CUDA (kernels compiled by NVRTC at run time), with autotune and fusion.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// The fastest backend this build has: CUDA, else wgpu, else the CPU. For binaries that pick the
/// backend at compile time (benchmarks, parity checks).
#[cfg(feature = "cuda")]
pub type Selected = Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type Selected = Wgpu;
#[cfg(all(feature = "cpu", not(feature = "cuda"), not(feature = "wgpu")))]
pub type Selected = Cpu;

pub use burn::tensor::backend::Backend;
