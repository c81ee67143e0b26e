//! Every ordered strong/weak pair of a set of models, from one scoring pass per model.
//!
//! A pair's reward is `Σ log S − Σ log W`, so once each model has scored every response, any pair
//! is a subtraction. Two things tie a pair to more than its models' sums: the text is rendered
//! with the strong model's chat template (as `cdr eval` does), and both models must score the same
//! token ids. [`plan`] works out, from the tokenizations alone, which pairs qualify and which
//! (model, template) scoring passes they need; [`pair_scores`] combines two passes' sums.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::encode::Encoded;
use crate::eval::Accuracy;
use crate::reward::Reduction;
use crate::scorer::ItemScore;

/// A pair that cannot be evaluated, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPair {
    /// The strong model's index.
    pub strong: usize,
    /// The weak model's index.
    pub weak: usize,
    /// Why the pair cannot be evaluated.
    pub reason: String,
}

/// What a set of models needs scored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairPlan {
    /// Ordered `(strong, weak)` model indices whose tokenizers agree on every text.
    pub pairs: Vec<(usize, usize)>,
    /// Pairs that cannot be evaluated.
    pub skipped: Vec<SkippedPair>,
    /// `(model, template)` scoring passes the pairs need, each once.
    pub passes: BTreeSet<(usize, usize)>,
}

/// Plans the pairs of `templates.len()` models, model `m` rendering with template
/// `templates[m]`. `ids(model, template)` is the [`crate::cache::ids_key`] of every text as that
/// model tokenizes it under that template (same texts, same order, for every model);
/// `describe(text)` names a text in a skip reason.
pub fn plan<'a>(
    templates: &[usize],
    ids: &dyn Fn(usize, usize) -> &'a [String],
    describe: &dyn Fn(usize) -> String,
) -> PairPlan {
    let mut out = PairPlan::default();
    for strong in 0..templates.len() {
        for weak in (0..templates.len()).filter(|&w| w != strong) {
            let t = templates[strong];
            let (s, w) = (ids(strong, t), ids(weak, t));
            match s.iter().zip(w).position(|(a, b)| a != b) {
                None if s.len() == w.len() => {
                    out.pairs.push((strong, weak));
                    out.passes.insert((strong, t));
                    out.passes.insert((weak, t));
                }
                first => out.skipped.push(SkippedPair {
                    strong,
                    weak,
                    reason: format!(
                        "tokenizers disagree on {} (the density ratio needs one token sequence for both models)",
                        describe(first.unwrap_or(s.len().min(w.len())))
                    ),
                }),
            }
        }
    }
    out
}

/// Per-text scores of a pair from its models' log-prob sums over the same token sequences.
pub fn pair_scores(
    encoded: &[Encoded],
    strong: &[f64],
    weak: &[f64],
    reduction: Reduction,
) -> Vec<ItemScore> {
    encoded
        .iter()
        .zip(strong.iter().zip(weak))
        .map(|(e, (&s, &w))| ItemScore::from_sums(s, w, e, e.truncated, reduction))
        .collect()
}

/// One evaluated pair.
#[derive(Debug, Clone, Serialize)]
pub struct PairAccuracy {
    /// The strong model's index.
    pub strong: usize,
    /// The weak model's index.
    pub weak: usize,
    /// Accuracy overall, per subset and per domain.
    pub accuracy: Accuracy,
    /// Mean of `r(chosen) − r(rejected)` over the rows.
    pub mean_margin: f64,
}

/// Best first: overall accuracy, then mean margin (a surer separation), then model order.
pub fn rank(pairs: &mut [PairAccuracy]) {
    pairs.sort_by(|a, b| {
        b.accuracy
            .overall
            .accuracy()
            .total_cmp(&a.accuracy.overall.accuracy())
            .then(b.mean_margin.total_cmp(&a.mean_margin))
            .then((a.strong, a.weak).cmp(&(b.strong, b.weak)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_agreeing_pairs_under_the_strong_template() {
        // Models 0 and 1 share template 0 and a tokenizer; model 2 has template 1 and tokenizes
        // text 1 differently under either template.
        let table = [
            [ids(&["a", "b"]), ids(&["A", "B"])],
            [ids(&["a", "b"]), ids(&["A", "B"])],
            [ids(&["a", "x"]), ids(&["A", "X"])],
        ];
        let lookup = |m: usize, t: usize| table[m][t].as_slice();
        let p = plan(&[0, 0, 1], &lookup, &|i| format!("text {i}"));
        assert_eq!(p.pairs, vec![(0, 1), (1, 0)]);
        assert_eq!(p.passes, BTreeSet::from([(0, 0), (1, 0)]));
        assert_eq!(p.skipped.len(), 4);
        assert!(p.skipped.iter().all(|s| s.reason.contains("text 1")));
    }

    #[test]
    fn swapping_the_pair_negates_the_rewards_and_ranking_is_stable() {
        let enc = Encoded {
            ids: vec![1, 2, 3],
            response_start: 1,
            full_prompt_tokens: 1,
            full_response_tokens: 2,
            truncated: false,
        };
        let (s, w) = ([-1.0, -4.0], [-2.0, -3.0]);
        let encs = [enc.clone(), enc];
        let sw = pair_scores(&encs, &s, &w, Reduction::Sum);
        let ws = pair_scores(&encs, &w, &s, Reduction::Sum);
        assert_eq!((sw[0].reward, sw[1].reward), (1.0, -1.0));
        assert_eq!((ws[0].reward, ws[1].reward), (-1.0, 1.0));
        assert_eq!(pair_scores(&encs, &s, &w, Reduction::Mean)[0].reward, 0.5);

        let acc = |correct: usize| {
            let mut a = Accuracy::default();
            for i in 0..4 {
                a.add(None, None, i < correct);
            }
            a
        };
        let mut pairs = vec![
            PairAccuracy {
                strong: 0,
                weak: 1,
                accuracy: acc(2),
                mean_margin: 0.5,
            },
            PairAccuracy {
                strong: 1,
                weak: 0,
                accuracy: acc(3),
                mean_margin: -0.5,
            },
            PairAccuracy {
                strong: 2,
                weak: 0,
                accuracy: acc(2),
                mean_margin: 1.5,
            },
        ];
        rank(&mut pairs);
        let order: Vec<(usize, usize)> = pairs.iter().map(|p| (p.strong, p.weak)).collect();
        assert_eq!(order, vec![(1, 0), (2, 0), (0, 1)]);
    }
}
