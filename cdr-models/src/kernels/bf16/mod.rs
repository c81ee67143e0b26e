//! bf16 × bf16 → f32 matrix products on the CPU's matrix units, with weights packed once at load.
//!
//! burn flex multiplies bf16 at about 0.09 TFLOP/s on a 2-core Xeon whose AMX units reach 1-1.7
//! (oneDNN through PyTorch); that gap made cdr's bf16 path 4x slower than PyTorch's. No Rust
//! library exposes AMX products (`gemm` has no bf16 tile path; oneDNN would be a system C++
//! dependency through FFI that a `cargo build` cannot fetch), so this module holds its own:
//!
//! - [`Isa::Amx`]: `TDPBF16PS` on 16×32 tiles (inline `asm!`: the AMX intrinsics are not stable);
//! - [`Isa::Avx512Bf16`]: `VDPBF16PS` on zmm registers;
//! - [`Isa::Avx512`]: bf16 widened to f32 in registers, fused multiply-adds;
//! - [`Isa::Portable`]: plain Rust, for every other CPU.
//!
//! All four read one packed weight layout ([`PackedBf16`]) and sum each output over `k` in one
//! fixed order that does not depend on the number of rows: a row gets the same bits alone or in
//! any batch (decoding relies on that, and so do cached log-probs). The path is chosen once per
//! process ([`isa`]); `CDR_CPU_KERNEL=amx|avx512-bf16|avx512|portable` forces a lower one, so each
//! can be tested on a CPU that has them all.

use std::sync::OnceLock;

use half::bf16;
use rayon::prelude::*;

use super::wide::wide;

pub mod attention;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

/// `k` elements per block: one AMX tile row (64 bytes of bf16).
pub const BLOCK_K: usize = 32;
/// Output columns per packed panel (two AMX tiles of 16 columns).
pub const PANEL: usize = 32;
/// Rows per micro-kernel call (two AMX tiles of 16 rows).
pub const BLOCK_M: usize = 32;
/// bf16 values in one 16-column half of a packed k-block: 16 pairs of rows × 16 columns × 2.
const HALF: usize = 512;

/// Bytes of activations a row chunk may hold, so a chunk stays in the core's L2 cache while every
/// weight panel streams past it.
const CHUNK_BYTES: usize = 1 << 20;

/// Which instructions the products run on, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Portable,
    Avx512,
    Avx512Bf16,
    Amx,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Self::Amx => "amx",
            Self::Avx512Bf16 => "avx512-bf16",
            Self::Avx512 => "avx512",
            Self::Portable => "portable",
        }
    }

    /// Every path this CPU can run, best first.
    pub fn available() -> Vec<Isa> {
        let best = detect();
        [Self::Amx, Self::Avx512Bf16, Self::Avx512, Self::Portable]
            .into_iter()
            .filter(|&i| i <= best)
            .collect()
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "amx" => Some(Self::Amx),
            "avx512-bf16" | "avx512bf16" => Some(Self::Avx512Bf16),
            "avx512" | "fma" => Some(Self::Avx512),
            "portable" | "scalar" => Some(Self::Portable),
            _ => None,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment variable that forces a lower path.
pub const FORCE_VAR: &str = "CDR_CPU_KERNEL";

/// The best path this CPU (and OS) can run, detected once.
fn detect() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            x86::detect()
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Portable
    })
}

/// The path bf16 products take in this process: the best detected one, or a lower one named in
/// `CDR_CPU_KERNEL` (a path the CPU lacks falls back to the best it has, with a warning).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let best = detect();
        let chosen = match std::env::var(FORCE_VAR) {
            Ok(v) if !v.trim().is_empty() && v.trim() != "auto" => match Isa::parse(&v) {
                Some(i) if i <= best => i,
                Some(i) => {
                    tracing::warn!("{FORCE_VAR}={v}: this CPU cannot run {i}; using {best}");
                    best
                }
                None => {
                    tracing::warn!(
                        "{FORCE_VAR}={v} is not one of amx, avx512-bf16, avx512, portable, auto; \
                         using {best}"
                    );
                    best
                }
            },
            _ => best,
        };
        tracing::info!("CPU bf16 products: {chosen} (best on this CPU: {best})");
        chosen
    })
}

/// One 64-byte line of the packed layouts (tile rows and zmm loads are fastest aligned).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

fn lines(values: usize) -> Vec<Line> {
    vec![Line([0; 32]); values.div_ceil(32)]
}

fn as_u16(lines: &[Line]) -> &[u16] {
    // SAFETY: `Line` is `repr(C)` around `[u16; 32]` with no padding (64 bytes, align 64), so a slice
    // of lines is a contiguous slice of `len * 32` u16 values.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u16>(), lines.len() * 32) }
}

fn as_u16_mut(lines: &mut [Line]) -> &mut [u16] {
    // SAFETY: as in `as_u16`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u16>(), lines.len() * 32) }
}

/// A weight `[n, k]` (the checkpoint's `[out, in]`) in the products' layout: columns in panels of
/// [`PANEL`], each panel's `k` in blocks of [`BLOCK_K`], each block two 16-column halves of 16
/// pairs of `k` × 16 columns × 2 (the VNNI layout AMX and `VDPBF16PS` read). `n` and `k` are padded
/// with zeros to whole panels and blocks.
pub struct PackedBf16 {
    n: usize,
    k: usize,
    blocks: usize,
    data: Vec<Line>,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedBf16[{}, {}]", self.n, self.k)
    }
}

impl PackedBf16 {
    /// Packs a row-major `[n, k]` matrix whose row `r` `rows` writes as bf16 bits, a few panels at
    /// a time (in parallel within a step); `done(first_row..end_row)` after each step, so a caller
    /// streaming from a memory map can release the source pages it has packed.
    pub fn pack_rows(
        n: usize,
        k: usize,
        rows: impl Fn(usize, &mut [u16]) + Sync,
        mut done: impl FnMut(std::ops::Range<usize>),
    ) -> Self {
        let blocks = k.div_ceil(BLOCK_K);
        let panels = n.div_ceil(PANEL);
        let panel_len = blocks * 2 * HALF;
        let mut data = lines(panels * panel_len);
        // About 4 MiB of bf16 rows per step.
        let step = ((4 << 20) / (PANEL * k.max(1) * 2)).max(1);
        for (s, chunk) in as_u16_mut(&mut data)
            .chunks_mut(panel_len * step)
            .enumerate()
        {
            chunk
                .par_chunks_mut(panel_len)
                .enumerate()
                .for_each(|(i, panel)| {
                    let p = s * step + i;
                    let mut row = vec![0u16; k];
                    for c in 0..PANEL.min(n - p * PANEL) {
                        rows(p * PANEL + c, &mut row);
                        let (half, col) = (c / 16, c % 16);
                        for (i, &v) in row.iter().enumerate() {
                            let (b, pair, e) = (i / BLOCK_K, i % BLOCK_K / 2, i % 2);
                            panel[(b * 2 + half) * HALF + pair * 32 + col * 2 + e] = v;
                        }
                    }
                });
            let first = s * step * PANEL;
            done(first..(first + step * PANEL).min(n));
        }
        Self { n, k, blocks, data }
    }

    fn pack_with(n: usize, k: usize, rows: impl Fn(usize, &mut [u16]) + Sync) -> Self {
        Self::pack_rows(n, k, rows, |_| {})
    }

    /// Packs a row-major `[n, k]` bf16 matrix.
    pub fn pack(values: &[bf16], n: usize, k: usize) -> Self {
        assert_eq!(values.len(), n * k, "PackedBf16::pack: {n} x {k} matrix");
        Self::pack_with(n, k, |r, row| {
            for (o, v) in row.iter_mut().zip(&values[r * k..(r + 1) * k]) {
                *o = v.to_bits();
            }
        })
    }

    /// Packs a row-major `[n, k]` f32 matrix, rounding to bf16 (to nearest even).
    pub fn pack_f32(values: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(
            values.len(),
            n * k,
            "PackedBf16::pack_f32: {n} x {k} matrix"
        );
        Self::pack_with(n, k, |r, row| {
            for (o, v) in row.iter_mut().zip(&values[r * k..(r + 1) * k]) {
                *o = bf16::from_f32(*v).to_bits();
            }
        })
    }

    /// `[n, k]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.n, self.k]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 64
    }

    /// The row-major `[n, k]` values back (for paths that need the plain matrix).
    pub fn unpack(&self) -> Vec<bf16> {
        let data = as_u16(&self.data);
        let panel_len = self.blocks * 2 * HALF;
        let mut out = vec![bf16::ZERO; self.n * self.k];
        out.par_chunks_mut(self.k.max(1))
            .enumerate()
            .for_each(|(r, row)| {
                let (p, half, col) = (r / PANEL, r % PANEL / 16, r % 16);
                let panel = &data[p * panel_len..(p + 1) * panel_len];
                for (i, o) in row.iter_mut().enumerate() {
                    let (b, pair, e) = (i / BLOCK_K, i % BLOCK_K / 2, i % 2);
                    *o = bf16::from_bits(panel[(b * 2 + half) * HALF + pair * 32 + col * 2 + e]);
                }
            });
        out
    }

    fn panel(&self, p: usize) -> &[u16] {
        let len = self.blocks * 2 * HALF;
        &as_u16(&self.data)[p * len..(p + 1) * len]
    }
}

/// Activations `[m, k]` as the micro-kernels read them: bf16, rows padded to whole [`BLOCK_M`]
/// blocks and `k` to whole [`BLOCK_K`] blocks with zeros. The buffer is kept per thread and reused:
/// a fresh multi-megabyte allocation per product costs page faults comparable to the product.
struct Activations {
    rows: usize,
    stride: usize,
    data: Vec<Line>,
}

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Activations {
    fn new(m: usize, k: usize, fill: impl Fn(usize, &mut [u16]) + Sync) -> Self {
        let stride = k.div_ceil(BLOCK_K) * BLOCK_K;
        let len = (m.div_ceil(BLOCK_M) * BLOCK_M * stride).div_ceil(32);
        let mut data = SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()));
        data.resize(len, Line([0; 32]));
        as_u16_mut(&mut data)
            .par_chunks_mut(stride)
            .enumerate()
            .for_each(|(r, row)| {
                wide(
                    #[inline(always)]
                    || {
                        if r < m {
                            fill(r, &mut row[..k]);
                            row[k..].fill(0);
                        } else {
                            row.fill(0);
                        }
                    },
                )
            });
        Self {
            rows: m,
            stride,
            data,
        }
    }

    fn block(&self, first_row: usize) -> &[u16] {
        &as_u16(&self.data)[first_row * self.stride..(first_row + BLOCK_M) * self.stride]
    }
}

impl Drop for Activations {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        SPARE.with(|s| *s.borrow_mut() = data);
    }
}

/// A micro-kernel: the `BLOCK_M × PANEL` f32 block `c` (row stride [`PANEL`]) of activations `a`
/// (`BLOCK_M` rows of `stride` values, of which the first `rows` are real) times one packed panel.
///
/// # Safety
/// `a` holds `BLOCK_M * stride` values, `panel` `stride / BLOCK_K * 2 * 512`, `c` `BLOCK_M * PANEL`;
/// the kernel's instructions exist on this CPU ([`Isa`] detected); for AMX, the calling thread has
/// loaded the tile configuration ([`x86::TileScope`]).
type MicroKernel = unsafe fn(a: &[u16], stride: usize, rows: usize, panel: &[u16], c: &mut [f32]);

fn micro_kernel(isa: Isa) -> MicroKernel {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Amx => x86::amx_block,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 => x86::avx512_bf16_block,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::avx512_block,
        _ => portable::block,
    }
}

/// Where a product's outputs go: called once per (row, panel) with the row index, the first
/// column and the panel's f32 sums for that row (fewer than [`PANEL`] at the right edge).
pub trait Sink: Sync {
    fn row(&self, row: usize, col: usize, sums: &[f32]);
}

/// `x @ w^T` for `x: [m, k]` (given row by row as bf16 bits through `fill`) and a packed `w`, on
/// path `isa`, every output handed to `sink`. Rows are processed in chunks that fit the L2 cache;
/// the panels of a chunk are shared out over the cores.
fn product(
    isa: Isa,
    m: usize,
    w: &PackedBf16,
    fill: impl Fn(usize, &mut [u16]) + Sync,
    sink: &impl Sink,
) {
    let isa = isa.min(detect());
    let acts = Activations::new(m, w.k, fill);
    let kernel = micro_kernel(isa);
    let panels = w.n.div_ceil(PANEL);
    let chunk_blocks = (CHUNK_BYTES / (acts.stride * 2 * BLOCK_M)).max(1);
    let row_blocks = acts.rows.div_ceil(BLOCK_M);
    // Enough tasks per chunk for the cores to balance, each a run of neighbouring panels.
    let tasks = (rayon::current_num_threads() * 4).min(panels).max(1);
    for chunk in (0..row_blocks).step_by(chunk_blocks) {
        let blocks = chunk..(chunk + chunk_blocks).min(row_blocks);
        (0..tasks).into_par_iter().for_each(|t| {
            // The sinks' rounding to bf16 is as costly as a fifth of the products; compiled for
            // AVX-512 it vectorizes 16 wide.
            wide(
                #[inline(always)]
                || {
                    let mine = panels * t / tasks..panels * (t + 1) / tasks;
                    let mut c = vec![0f32; BLOCK_M * PANEL];
                    #[cfg(target_arch = "x86_64")]
                    let _tiles = (isa == Isa::Amx).then(x86::TileScope::enter);
                    for p in mine {
                        let panel = w.panel(p);
                        let cols = PANEL.min(w.n - p * PANEL);
                        for b in blocks.clone() {
                            let first = b * BLOCK_M;
                            let rows = BLOCK_M.min(acts.rows - first);
                            // SAFETY: the slices have the sizes `MicroKernel` asks for (`Activations` and
                            // `PackedBf16` pad to whole blocks), the kernel matches a detected `isa`
                            // (clamped to `detect()` above), and AMX runs inside a `TileScope`.
                            unsafe { kernel(acts.block(first), acts.stride, rows, panel, &mut c) };
                            for r in 0..rows {
                                sink.row(first + r, p * PANEL, &c[r * PANEL..r * PANEL + cols]);
                            }
                        }
                    }
                },
            )
        });
    }
}

struct Shared<T>(*mut T);
// SAFETY: hands disjoint output regions to parallel tasks: in a product each (row, column range)
// is written by the one task that owns the column's panel, in attention each (batch, head, query
// row) by the one tile that owns it.
unsafe impl<T> Sync for Shared<T> {}

struct Bf16Out {
    ptr: Shared<bf16>,
    n: usize,
}

impl Sink for Bf16Out {
    fn row(&self, row: usize, col: usize, sums: &[f32]) {
        for (j, &s) in sums.iter().enumerate() {
            // SAFETY: `row < m`, `col + j < n` (sinks get only real rows and columns) in the
            // `m * n` output, and each element is written by one task only.
            unsafe { *self.ptr.0.add(row * self.n + col + j) = bf16::from_f32(s) };
        }
    }
}

struct F32Out {
    ptr: Shared<f32>,
    n: usize,
}

impl Sink for F32Out {
    fn row(&self, row: usize, col: usize, sums: &[f32]) {
        // SAFETY: as for `Bf16Out`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sums.as_ptr(),
                self.ptr.0.add(row * self.n + col),
                sums.len(),
            )
        };
    }
}

/// `x @ w^T` rounded to bf16 (as PyTorch's bf16 products round their f32 sums), `x: [m, k]` bf16.
pub fn matmul(x: &[bf16], m: usize, w: &PackedBf16) -> Vec<bf16> {
    let k = w.k;
    assert_eq!(x.len(), m * k, "bf16 matmul: x is not [{m}, {k}]");
    let mut out = vec![bf16::ZERO; m * w.n];
    let sink = Bf16Out {
        ptr: Shared(out.as_mut_ptr()),
        n: w.n,
    };
    product(
        isa(),
        m,
        w,
        |r, row| {
            for (o, v) in row.iter_mut().zip(&x[r * k..(r + 1) * k]) {
                *o = v.to_bits();
            }
        },
        &sink,
    );
    out
}

/// `x @ w^T` in f32 (the sums before rounding) on a given path, `x: [m, k]` bf16: for tests and
/// benchmarks that compare the paths.
pub fn matmul_f32_on(isa: Isa, x: &[bf16], m: usize, w: &PackedBf16) -> Vec<f32> {
    let k = w.k;
    assert_eq!(x.len(), m * k, "bf16 matmul: x is not [{m}, {k}]");
    let mut out = vec![0f32; m * w.n];
    let sink = F32Out {
        ptr: Shared(out.as_mut_ptr()),
        n: w.n,
    };
    product(
        isa,
        m,
        w,
        |r, row| {
            for (o, v) in row.iter_mut().zip(&x[r * k..(r + 1) * k]) {
                *o = v.to_bits();
            }
        },
        &sink,
    );
    out
}

#[cfg(test)]
mod tests;
