//! Benchmark support: random-weight checkpoints of real shapes ([`shapes`]) and synthetic scoring
//! workloads ([`workload`]) shared by the Rust harness and the PyTorch baseline
//! (`benches/torch_baseline.py`).

pub mod shapes;
pub mod workload;
