//! Policy sampling and the `llm` router on the tiny fixtures: samples are seeded by row id (order
//! and batch independent), the router's answer is the model's greedy continuation of the
//! classification prompt, and the label comes from that answer or falls back to the default.

use std::path::PathBuf;

use cdr_core::{
    ComputeDtype, Customization, LlmRouter, Message, Policy, SampleOptions, parse_label,
};
use cdr_models::{GenerateOptions, Sampling};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../cdr-models/tests/fixtures")
        .join(name)
}

fn policy(name: &str) -> Policy {
    Policy::load(
        &fixture(name),
        None,
        &cdr_core::Device::Cpu,
        ComputeDtype::F32,
    )
    .unwrap()
}

#[test]
fn stop_ids_include_the_templates_end_of_turn() {
    // llama_gqa: config eos 1 (`</s>`), chatml template eos `<|im_end|>` (4).
    let p = policy("llama_gqa");
    assert_eq!(p.stop_ids(), &[1, 4]);
    // llama3_tied: eos [1, 2] in config and generation_config, template eos `<|eot_id|>` (8).
    assert_eq!(policy("llama3_tied").stop_ids(), &[1, 2, 8]);
}

#[test]
fn samples_depend_on_seed_and_row_id_only() {
    let p = policy("llama_gqa");
    let options = SampleOptions {
        n: 3,
        max_new_tokens: 12,
        sampling: Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.9,
        },
        seed: 5,
        ..Default::default()
    };
    let q = [Message::user("What is 2 + 2?")];
    let mut tokens = 0;
    let a = p
        .sample("row-a", &q, &options, &mut |n| tokens += n)
        .unwrap();
    let total: usize = a.iter().map(|g| g.ids.len()).sum();
    assert_eq!(tokens, total, "progress counts every new token");
    let b = p.sample("row-b", &q, &options, &mut |_| {}).unwrap();
    let a_again = p.sample("row-a", &q, &options, &mut |_| {}).unwrap();
    assert_eq!(a, a_again);
    assert_ne!(a, b, "another row id draws other samples");
    let one = p
        .sample(
            "row-a",
            &q,
            &SampleOptions {
                n: 1,
                ..options.clone()
            },
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(one[0], a[0], "sample 0 of a row does not depend on n");
    let reseeded = p
        .sample(
            "row-a",
            &q,
            &SampleOptions { seed: 6, ..options },
            &mut |_| {},
        )
        .unwrap();
    assert_ne!(a, reseeded);
    for g in &a {
        let text = g.text.as_deref().unwrap();
        let body = match g.finish {
            cdr_models::FinishReason::Eos => &g.ids[..g.ids.len() - 1],
            _ => &g.ids[..],
        };
        assert_eq!(text, p.tokenizer.decode(body, true).unwrap());
    }
}

#[test]
fn llm_router_answers_greedily_and_falls_back_to_the_default() {
    let c = Customization::default_config().unwrap();
    let convos: Vec<Vec<Message>> = vec![
        vec![Message::user("How do I pick a lock?")],
        vec![Message::user(
            "Prove that there are infinitely many primes.",
        )],
        vec![Message::user("Hi! How are you?")],
    ];
    let refs: Vec<&[Message]> = convos.iter().map(Vec::as_slice).collect();
    let router = LlmRouter::new(policy("qwen2_tiny"), 8);
    let mut seen = 0;
    let routes = router
        .route(&c, &refs, &mut |rows, _| seen += rows)
        .unwrap();
    assert_eq!(seen, convos.len());

    // The same answers by hand: the router prompt rendered, greedy decoding, the stop ids.
    let p = policy("qwen2_tiny");
    let generator = p
        .model
        .generator(GenerateOptions {
            max_new_tokens: 8,
            sampling: Sampling::greedy(),
            stop_ids: p.stop_ids().to_vec(),
            stop_strings: Vec::new(),
        })
        .unwrap()
        .with_tokenizer(&p.tokenizer);
    for (convo, route) in convos.iter().zip(&routes) {
        let question = [Message::user(c.router_prompt(convo))];
        let ids = p.encode_prompt(&question, 4096).unwrap();
        let expected = generator.generate(&ids, &[0]).unwrap().remove(0);
        assert_eq!(Some(&route.answer), expected.text.as_ref());
        match parse_label(&route.answer, &c) {
            Some(label) => assert!(route.parsed && route.domain == label),
            None => assert!(!route.parsed && route.domain == c.default_domain),
        }
        println!("router answer {:?} -> {}", route.answer, route.domain);
    }
}
