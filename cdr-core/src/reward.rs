//! The density-ratio reward.

use serde::{Deserialize, Serialize};

/// How the per-token log-ratio is reduced over the response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// `sum log S - sum log W` (the paper's released code).
    #[default]
    Sum,
    /// The sum divided by the number of response tokens.
    Mean,
}

impl std::str::FromStr for Reduction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sum" => Ok(Self::Sum),
            "mean" => Ok(Self::Mean),
            other => Err(format!("unknown reduction `{other}` (sum, mean)")),
        }
    }
}

/// Sum of log-probabilities, accumulated in f64 in token order.
pub fn sum_logprobs(logprobs: &[f32]) -> f64 {
    logprobs.iter().map(|&x| x as f64).sum()
}

/// `r = sum log S(y_t | x, y_<t) - sum log W(y_t | x, y_<t)`, or its per-token mean.
pub fn density_ratio(strong: f64, weak: f64, n_tokens: usize, reduction: Reduction) -> f64 {
    let r = strong - weak;
    match reduction {
        Reduction::Sum => r,
        Reduction::Mean => r / n_tokens.max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_and_mean() {
        let s = sum_logprobs(&[-1.0, -2.0, -0.5]);
        let w = sum_logprobs(&[-2.0, -2.0, -1.0]);
        assert_eq!(density_ratio(s, w, 3, Reduction::Sum), 1.5);
        assert_eq!(density_ratio(s, w, 3, Reduction::Mean), 0.5);
    }
}
