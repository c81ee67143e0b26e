//! The ranked log-probs a completions server returns (rank, top-k, next token) against the
//! scoring path and a full softmax computed here, on the tiny fixtures.

use cdr_models::{ComputeDtype, Device, LoadOptions, Model, ModelDir, ScoreSpan};

mod common;
use common::fixture_dir;

#[test]
fn ranked_logprobs_agree_with_the_scoring_path_and_each_other() {
    for name in ["llama_gqa", "qwen2_tiny"] {
        let dir = ModelDir::new(fixture_dir(name));
        let options = LoadOptions {
            dtype: ComputeDtype::F32,
        };
        let model = Model::load(&dir, &Device::Cpu, options).unwrap();
        let vocab = model.config().vocab_size as u32;
        let a: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % vocab).collect();
        let b: Vec<u32> = (0..23).map(|i| (i * 13 + 1) % vocab).collect();
        let spans = [
            ScoreSpan { ids: &a, start: 1 },
            ScoreSpan { ids: &b, start: 9 },
        ];
        let exact = model.score_spans(&spans).unwrap();
        let ranked = model.ranked_logprobs(&spans, 5).unwrap();
        for ((span, exact), ranked) in spans.iter().zip(&exact).zip(&ranked) {
            assert_eq!(
                ranked.positions.len(),
                span.ids.len() - span.start,
                "{name}"
            );
            for (t, (p, e)) in ranked.positions.iter().zip(exact).enumerate() {
                assert_eq!(p.token, span.ids[span.start + t]);
                // The scoring path's own number, whatever the batch shape.
                assert!(
                    (p.logprob - e).abs() <= 1e-5,
                    "{name} {t}: {} vs {e}",
                    p.logprob
                );
                assert_eq!(p.top.len(), 5);
                assert!(p.top.windows(2).all(|w| w[0].1 >= w[1].1), "{:?}", p.top);
                // The rank agrees with the listed alternatives.
                let better = p.top.iter().filter(|&&(_, lp)| lp > p.logprob).count();
                if p.rank <= 5 {
                    assert_eq!(better, p.rank - 1, "{name} {t}: {p:?}");
                    assert!(p.top.iter().any(|&(id, _)| id == p.token));
                } else {
                    assert_eq!(better, 5);
                }
                let mass: f64 = p.top.iter().map(|&(_, lp)| f64::from(lp).exp()).sum();
                assert!(mass <= 1.0 + 1e-5);
            }
            assert_eq!(ranked.next.len(), 5);
        }
        // Alone or batched, the same numbers; top 0 still names the greedy next token.
        let alone = model.ranked_logprobs(&spans[1..], 0).unwrap();
        assert_eq!(alone[0].next.len(), 1);
        assert_eq!(alone[0].next[0].0, ranked[1].next[0].0);
        for (x, y) in alone[0].positions.iter().zip(&ranked[1].positions) {
            assert!((x.logprob - y.logprob).abs() <= 1e-5);
            assert_eq!(x.rank, y.rank);
            assert!(x.top.is_empty());
        }
    }
}
