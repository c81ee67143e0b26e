//! Synthetic scoring workloads with the length mix of real preference data: prompts of 50–1,000
//! tokens, responses of 50–800, either pairwise (chosen + rejected per prompt) or best-of-N (N
//! candidates per prompt). Deterministic from a seed, and saved as JSON so the PyTorch baseline
//! scores exactly the same token ids.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pairwise,
    BestOfN(usize),
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "pairwise" {
            return Ok(Kind::Pairwise);
        }
        s.strip_prefix("best-of-")
            .and_then(|n| n.parse().ok())
            .filter(|&n: &usize| n >= 2)
            .map(Kind::BestOfN)
            .ok_or_else(|| format!("workload kind {s}: use pairwise or best-of-N (N >= 2)"))
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Pairwise => write!(f, "pairwise"),
            Kind::BestOfN(n) => write!(f, "best-of-{n}"),
        }
    }
}

/// One prompt and its responses, as token ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub prompt: Vec<u32>,
    pub responses: Vec<Vec<u32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub groups: Vec<Group>,
}

impl Workload {
    pub fn generate(kind: Kind, prompts: usize, vocab: usize, seed: u64) -> Self {
        let mut rng = SplitMix(seed ^ 0x5EED);
        let responses = match kind {
            Kind::Pairwise => 2,
            Kind::BestOfN(n) => n,
        };
        let mut ids =
            |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next() % vocab as u64) as u32).collect() };
        let mut groups = Vec::with_capacity(prompts);
        let mut lengths = SplitMix(seed);
        for _ in 0..prompts {
            let prompt_len = lengths.between(50, 1000);
            let prompt = ids(prompt_len);
            let responses = (0..responses)
                .map(|_| {
                    let len = lengths.between(50, 800);
                    ids(len)
                })
                .collect();
            groups.push(Group { prompt, responses });
        }
        Workload {
            name: format!("{kind} x {prompts}"),
            groups,
        }
    }

    /// Every (prompt + response) sequence with the index of its first response token, in
    /// dataset order.
    pub fn sequences(&self) -> Vec<(Vec<u32>, usize)> {
        self.groups
            .iter()
            .flat_map(|g| {
                g.responses.iter().map(|r| {
                    let ids: Vec<u32> = g.prompt.iter().chain(r).copied().collect();
                    (ids, g.prompt.len())
                })
            })
            .collect()
    }

    pub fn tokens(&self) -> usize {
        self.sequences().iter().map(|(ids, _)| ids.len()).sum()
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string(self)?)
    }
}

/// splitmix64: a tiny, well-mixed generator; the workload only needs to be reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}
