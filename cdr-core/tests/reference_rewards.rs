//! Rewards against the Python reference (tools/make_fixtures.py, `reward_item`): same template,
//! same boundary, same truncation, transformers log-probs.

use std::path::PathBuf;

use cdr_core::{DensityRatio, Device, Item, Limits, Reduction, ScoreOptions};
use cdr_data::{ReadOptions, read_pairwise};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    strong: String,
    weak: String,
    max_prompt_tokens: usize,
    max_response_tokens: usize,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    chosen: Side,
    rejected: Side,
    correct: bool,
}

#[derive(Deserialize)]
struct Side {
    reward_sum: f64,
    reward_mean: f64,
    n_response_tokens: usize,
    truncated: bool,
    ids: Vec<u32>,
    response_start: usize,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn expected() -> Expected {
    let path = root().join("cdr-core/tests/fixtures/expected_rewards.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn pair(reduction: Reduction, e: &Expected) -> DensityRatio {
    pair_with_strong(
        reduction,
        e,
        &root().join("cdr-models/tests/fixtures").join(&e.strong),
    )
}

/// A copy of a fixture model directory as transformers >= 4.50 saves it: the chat template in
/// `chat_template.jinja`, none in `tokenizer_config.json`.
fn transformers5_layout(src: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let config_path = dir.path().join("tokenizer_config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let template = config
        .as_object_mut()
        .unwrap()
        .remove("chat_template")
        .unwrap();
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        template.as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(&config_path, config.to_string()).unwrap();
    dir
}

fn pair_with_strong(reduction: Reduction, e: &Expected, strong: &std::path::Path) -> DensityRatio {
    let models = root().join("cdr-models/tests/fixtures");
    let options = ScoreOptions {
        reduction,
        limits: Limits {
            max_prompt_tokens: e.max_prompt_tokens,
            max_response_tokens: e.max_response_tokens,
        },
        max_batch_tokens: 1024,
        ..ScoreOptions::default()
    };
    DensityRatio::load(strong, models.join(&e.weak), &Device::Cpu, options).unwrap()
}

#[test]
fn rewards_match_the_python_reference() {
    let e = expected();
    let rows = read_pairwise(
        root().join("cdr-core/tests/fixtures/pairs.jsonl"),
        &ReadOptions::default(),
    )
    .unwrap()
    .rows;
    assert_eq!(rows.len(), e.rows.len());
    // The strong model's directory in both layouts: template in tokenizer_config.json, and in
    // chat_template.jinja as transformers 5 saves it. Only the strong model's template is used.
    let models = root().join("cdr-models/tests/fixtures");
    let new_layout = transformers5_layout(&models.join(&e.strong));
    for (reduction, strong) in [
        (Reduction::Sum, models.join(&e.strong)),
        (Reduction::Mean, models.join(&e.strong)),
        (Reduction::Sum, new_layout.path().to_path_buf()),
    ] {
        let pair = pair_with_strong(reduction, &e, &strong);
        let items: Vec<Item> = rows
            .iter()
            .flat_map(|r| {
                [
                    Item::new(r.prompt.clone(), r.chosen.clone()),
                    Item::new(r.prompt.clone(), r.rejected.clone()),
                ]
            })
            .collect();
        let prepared: Vec<_> = items.iter().map(|i| pair.prepare(i).unwrap()).collect();
        let scores = pair.score_prepared(&prepared).unwrap();
        let mut worst = 0.0f64;
        let mut truncated = 0;
        for (k, (row, exp)) in rows.iter().zip(&e.rows).enumerate() {
            assert_eq!(row.id, exp.id);
            for (j, side) in [&exp.chosen, &exp.rejected].into_iter().enumerate() {
                let (p, s) = (&prepared[2 * k + j], &scores[2 * k + j]);
                assert_eq!(p.strong.ids, side.ids, "{} side {j}: token ids", row.id);
                assert_eq!(
                    p.strong.response_start, side.response_start,
                    "{} side {j}: boundary",
                    row.id
                );
                assert_eq!(s.n_response_tokens, side.n_response_tokens);
                assert_eq!(
                    s.truncated, side.truncated,
                    "{} side {j}: truncation",
                    row.id
                );
                truncated += usize::from(s.truncated);
                let want = match reduction {
                    Reduction::Sum => side.reward_sum,
                    Reduction::Mean => side.reward_mean,
                };
                let diff = (s.reward - want).abs();
                assert!(
                    diff <= 1e-3,
                    "{} side {j} ({reduction:?}): {} vs {want}",
                    row.id,
                    s.reward
                );
                worst = worst.max(diff);
            }
            if reduction == Reduction::Sum {
                let correct = scores[2 * k].reward > scores[2 * k + 1].reward;
                assert_eq!(correct, exp.correct, "{}: decision", row.id);
            }
        }
        println!(
            "{reduction:?}, strong model at {}: {} rows, max |reward - python| = {worst:.3e}, \
             {truncated} truncated items",
            strong.display(),
            rows.len()
        );
        assert!(truncated > 0, "the fixture exercises truncation");
    }
}

#[derive(Deserialize)]
struct CustomExpected {
    presets: std::collections::BTreeMap<String, CustomPreset>,
}

#[derive(Deserialize)]
struct CustomPreset {
    rows: Vec<CustomRow>,
    accuracy: f64,
}

#[derive(Deserialize)]
struct CustomRow {
    id: String,
    domain: String,
    chosen: CustomSide,
    rejected: CustomSide,
    correct: bool,
}

#[derive(Deserialize)]
struct CustomSide {
    reward_sum: f64,
    n_prompt_tokens: usize,
    n_response_tokens: usize,
}

#[test]
fn customized_rewards_match_the_python_reference_and_reach_the_models() {
    let e = expected();
    let custom: CustomExpected = serde_json::from_str(
        &std::fs::read_to_string(
            root().join("cdr-core/tests/fixtures/expected_customized_rewards.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let rows = read_pairwise(
        root().join("cdr-core/tests/fixtures/pairs.jsonl"),
        &ReadOptions::default(),
    )
    .unwrap()
    .rows;
    let plain_items: Vec<Item> = rows
        .iter()
        .flat_map(|r| {
            [
                Item::new(r.prompt.clone(), r.chosen.clone()),
                Item::new(r.prompt.clone(), r.rejected.clone()),
            ]
        })
        .collect();
    let plain: Vec<f64> = pair(Reduction::Sum, &e)
        .score(&plain_items)
        .unwrap()
        .iter()
        .map(|s| s.reward)
        .collect();
    assert!(custom.presets.len() >= 2);
    for (preset, want) in &custom.presets {
        let config = cdr_prompt::Customization::preset(preset).unwrap();
        let pair = pair(Reduction::Sum, &e).with_customization(config.clone());
        let mut items = Vec::new();
        for r in &rows {
            let domain = config
                .route_by_field(r.domain.as_deref(), r.subset.as_deref())
                .unwrap();
            let exp = want.rows.iter().find(|x| x.id == r.id).unwrap();
            assert_eq!(domain, exp.domain, "{preset} {}: routed domain", r.id);
            for response in [&r.chosen, &r.rejected] {
                items.push(
                    Item::new(r.prompt.clone(), response.clone())
                        .in_row(&r.id, Some(domain.clone())),
                );
            }
        }
        let scores = pair.score(&items).unwrap();
        let (mut worst, mut changed, mut correct) = (0.0f64, 0, 0);
        for (k, exp) in want.rows.iter().enumerate() {
            for (j, side) in [&exp.chosen, &exp.rejected].into_iter().enumerate() {
                let s = &scores[2 * k + j];
                assert_eq!(
                    s.n_prompt_tokens, side.n_prompt_tokens,
                    "{preset} {} side {j}",
                    exp.id
                );
                assert_eq!(
                    s.n_response_tokens, side.n_response_tokens,
                    "{preset} {} side {j}",
                    exp.id
                );
                let diff = (s.reward - side.reward_sum).abs();
                assert!(
                    diff <= 1e-3,
                    "{preset} {} side {j}: {} vs {}",
                    exp.id,
                    s.reward,
                    side.reward_sum
                );
                worst = worst.max(diff);
                changed += usize::from(s.reward != plain[2 * k + j]);
            }
            let ok = scores[2 * k].reward > scores[2 * k + 1].reward;
            assert_eq!(ok, exp.correct, "{preset} {}: decision", exp.id);
            correct += usize::from(ok);
        }
        let accuracy = correct as f64 / want.rows.len() as f64;
        assert!((accuracy - want.accuracy).abs() < 1e-12);
        println!(
            "preset {preset}: max |reward - python| = {worst:.3e}, {changed} of {} rewards changed by customization, accuracy {accuracy:.4}",
            2 * want.rows.len()
        );
        assert!(changed > 0, "preset {preset} must reach the models");
    }
}

/// With one model in memory at a time, each pass drops its model's weights afterwards, and the
/// scores are exactly those of the pair held together.
#[test]
fn one_model_at_a_time_gives_the_same_scores() {
    let e = expected();
    let rows = read_pairwise(
        root().join("cdr-core/tests/fixtures/pairs.jsonl"),
        &ReadOptions::default(),
    )
    .unwrap()
    .rows;
    let models = root().join("cdr-models/tests/fixtures");
    let load = |one: bool| {
        let options = ScoreOptions {
            limits: Limits {
                max_prompt_tokens: e.max_prompt_tokens,
                max_response_tokens: e.max_response_tokens,
            },
            max_batch_tokens: 1024,
            one_model_at_a_time: Some(one),
            ..ScoreOptions::default()
        };
        DensityRatio::load(
            models.join(&e.strong),
            models.join(&e.weak),
            &Device::Cpu,
            options,
        )
        .unwrap()
    };
    let items: Vec<Item> = rows
        .iter()
        .map(|r| Item::new(r.prompt.clone(), r.chosen.clone()))
        .collect();
    let (together, apart) = (load(false), load(true));
    assert!(!together.one_model_at_a_time() && apart.one_model_at_a_time());
    let a = together.score(&items).unwrap();
    assert!(together.strong().is_loaded(), "held together, weights stay");
    let b = apart.score(&items).unwrap();
    assert!(
        !apart.strong().is_loaded(),
        "the strong pass released its weights"
    );
    let rewards = |s: &[cdr_core::ItemScore]| s.iter().map(|s| s.reward).collect::<Vec<_>>();
    assert_eq!(rewards(&a), rewards(&b));
    // A second call reloads what it needs.
    assert_eq!(rewards(&apart.score(&items).unwrap()), rewards(&a));
}
