//! Every accepted row form, read from JSONL, JSON and Parquet, normalizes to the same rows.

mod common;

use arrow_array::ArrayRef;
use cdr_data::{
    BestOfNRow, Format, Message, PairwiseRow, ReadOptions, Row, read_pairwise, read_rows,
};
use common::{message_lists, messages, msg, string_lists, strings, write_json_rows, write_parquet};
use serde_json::{Map, Value, json};

struct Case {
    rows: Vec<Value>,
    columns: Vec<(&'static str, ArrayRef)>,
    expected: Vec<Row>,
}

fn pairwise(id: &str, prompt: Vec<Message>, chosen: &str, rejected: &str) -> PairwiseRow {
    PairwiseRow {
        id: id.into(),
        prompt,
        chosen: chosen.into(),
        rejected: rejected.into(),
        subset: None,
        domain: None,
        extra: Map::new(),
    }
}

fn best_of_n(id: &str, prompt: Vec<Message>, responses: &[&str]) -> BestOfNRow {
    BestOfNRow {
        id: id.into(),
        prompt,
        responses: responses.iter().map(|r| r.to_string()).collect(),
        subset: None,
        domain: None,
        extra: Map::new(),
    }
}

fn check(case: Case, format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let path = match format {
        Format::Parquet => {
            let path = dir.path().join("rows.parquet");
            write_parquet(&path, case.columns);
            path
        }
        _ => write_json_rows(dir.path(), "rows", format, &case.rows),
    };
    let outcome = read_rows(&path, &ReadOptions::default()).unwrap();
    assert!(outcome.skipped.is_empty());
    assert_eq!(outcome.rows, case.expected, "format {format:?}");
}

/// Plain strings, with subset, domain and extra columns.
fn pairwise_strings() -> Case {
    let mut a = pairwise("a", vec![msg("user", "What is 2+2?")], "4", "5");
    a.subset = Some("math".into());
    a.domain = Some("arith".into());
    a.extra.insert("source".into(), json!("synthetic"));
    a.extra.insert("votes".into(), json!(3));
    let mut b = pairwise(
        "b",
        vec![msg("user", "Capital of France?")],
        "Paris",
        "Lyon",
    );
    b.subset = Some("geo".into());
    b.domain = Some("facts".into());
    b.extra.insert("source".into(), json!("human"));
    b.extra.insert("votes".into(), json!(-1));
    Case {
        rows: vec![
            json!({"id": "a", "prompt": "What is 2+2?", "chosen": "4", "rejected": "5",
                   "subset": "math", "domain": "arith", "source": "synthetic", "votes": 3}),
            json!({"id": "b", "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon",
                   "subset": "geo", "domain": "facts", "source": "human", "votes": -1}),
        ],
        columns: vec![
            ("id", strings(&[Some("a"), Some("b")])),
            (
                "prompt",
                strings(&[Some("What is 2+2?"), Some("Capital of France?")]),
            ),
            ("chosen", strings(&[Some("4"), Some("Paris")])),
            ("rejected", strings(&[Some("5"), Some("Lyon")])),
            ("subset", strings(&[Some("math"), Some("geo")])),
            ("domain", strings(&[Some("arith"), Some("facts")])),
            ("source", strings(&[Some("synthetic"), Some("human")])),
            ("votes", common::ints(&[Some(3), Some(-1)])),
        ],
        expected: vec![Row::Pairwise(a), Row::Pairwise(b)],
    }
}

/// A message-list prompt (with a system turn), string responses, integer ids.
fn pairwise_prompt_messages() -> Case {
    let prompt = [("system", "Be terse."), ("user", "Hi")];
    Case {
        rows: vec![
            json!({"id": 41, "prompt": [{"role": "system", "content": "Be terse."},
                                               {"role": "user", "content": "Hi"}],
                          "chosen": "Hi.", "rejected": "Hello, how are you doing today?"}),
        ],
        columns: vec![
            ("id", common::ints(&[Some(41)])),
            ("prompt", messages(&[Some(&prompt)])),
            ("chosen", strings(&[Some("Hi.")])),
            (
                "rejected",
                strings(&[Some("Hello, how are you doing today?")]),
            ),
        ],
        expected: vec![Row::Pairwise(pairwise(
            "41",
            vec![msg("system", "Be terse."), msg("user", "Hi")],
            "Hi.",
            "Hello, how are you doing today?",
        ))],
    }
}

/// TRL conversational, implicit prompt: full conversations, no `prompt`, no `id`.
fn trl_implicit_prompt() -> Case {
    let c0 = [("user", "Hi"), ("assistant", "Hello!")];
    let r0 = [("user", "Hi"), ("assistant", "Go away.")];
    let c1 = [
        ("system", "S"),
        ("user", "U1"),
        ("assistant", "A1"),
        ("user", "U2"),
        ("assistant", "good"),
    ];
    let r1 = [
        ("system", "S"),
        ("user", "U1"),
        ("assistant", "A1"),
        ("user", "U2"),
        ("assistant", "bad"),
    ];
    let as_json = |m: &[(&str, &str)]| -> Value {
        m.iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect()
    };
    Case {
        rows: vec![
            json!({"chosen": as_json(&c0), "rejected": as_json(&r0)}),
            json!({"chosen": as_json(&c1), "rejected": as_json(&r1)}),
        ],
        columns: vec![
            ("chosen", messages(&[Some(&c0), Some(&c1)])),
            ("rejected", messages(&[Some(&r0), Some(&r1)])),
        ],
        expected: vec![
            Row::Pairwise(pairwise(
                "row-0",
                vec![msg("user", "Hi")],
                "Hello!",
                "Go away.",
            )),
            Row::Pairwise(pairwise(
                "row-1",
                vec![
                    msg("system", "S"),
                    msg("user", "U1"),
                    msg("assistant", "A1"),
                    msg("user", "U2"),
                ],
                "good",
                "bad",
            )),
        ],
    }
}

/// TRL conversational, explicit prompt: responses are only the assistant turn, or (second row)
/// the full conversation repeating the prompt.
fn trl_explicit_prompt() -> Case {
    let prompt = [("user", "Q")];
    let c0 = [("assistant", "good")];
    let r0 = [("assistant", "bad")];
    let c1 = [("user", "Q"), ("assistant", "good")];
    let r1 = [("user", "Q"), ("assistant", "bad")];
    Case {
        rows: vec![
            json!({"id": "x", "prompt": [{"role": "user", "content": "Q"}],
                   "chosen": [{"role": "assistant", "content": "good"}],
                   "rejected": [{"role": "assistant", "content": "bad"}]}),
            json!({"id": "y", "prompt": [{"role": "user", "content": "Q"}],
                   "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
                   "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]}),
        ],
        columns: vec![
            ("id", strings(&[Some("x"), Some("y")])),
            ("prompt", messages(&[Some(&prompt), Some(&prompt)])),
            ("chosen", messages(&[Some(&c0), Some(&c1)])),
            ("rejected", messages(&[Some(&r0), Some(&r1)])),
        ],
        expected: vec![
            Row::Pairwise(pairwise("x", vec![msg("user", "Q")], "good", "bad")),
            Row::Pairwise(pairwise("y", vec![msg("user", "Q")], "good", "bad")),
        ],
    }
}

/// `prompt` + `messages` continuing it, and (second row) `messages` alone.
fn single_response_messages() -> Case {
    let m0 = [("assistant", "A joke.")];
    let m1 = [("system", "S"), ("user", "Q"), ("assistant", "A")];
    Case {
        rows: vec![
            json!({"id": "j", "prompt": "Tell a joke",
                   "messages": [{"role": "assistant", "content": "A joke."}]}),
            json!({"id": "k", "messages": [{"role": "system", "content": "S"},
                                           {"role": "user", "content": "Q"},
                                           {"role": "assistant", "content": "A"}]}),
        ],
        columns: vec![
            ("id", strings(&[Some("j"), Some("k")])),
            ("prompt", strings(&[Some("Tell a joke"), None])),
            ("messages", messages(&[Some(&m0), Some(&m1)])),
        ],
        expected: vec![
            Row::BestOfN(best_of_n(
                "j",
                vec![msg("user", "Tell a joke")],
                &["A joke."],
            )),
            Row::BestOfN(best_of_n(
                "k",
                vec![msg("system", "S"), msg("user", "Q")],
                &["A"],
            )),
        ],
    }
}

/// Best-of-N with string responses.
fn best_of_n_strings() -> Case {
    let mut a = best_of_n("p1", vec![msg("user", "Pick")], &["one", "two", "three"]);
    a.subset = Some("s".into());
    let mut b = best_of_n("p2", vec![msg("user", "Again")], &["x", "y"]);
    b.subset = Some("t".into());
    Case {
        rows: vec![
            json!({"id": "p1", "prompt": "Pick", "responses": ["one", "two", "three"], "subset": "s"}),
            json!({"id": "p2", "prompt": "Again", "responses": ["x", "y"], "subset": "t"}),
        ],
        columns: vec![
            ("id", strings(&[Some("p1"), Some("p2")])),
            ("prompt", strings(&[Some("Pick"), Some("Again")])),
            (
                "responses",
                string_lists(&[&["one", "two", "three"], &["x", "y"]]),
            ),
            ("subset", strings(&[Some("s"), Some("t")])),
        ],
        expected: vec![Row::BestOfN(a), Row::BestOfN(b)],
    }
}

/// Best-of-N with message-list responses: assistant turns only, or full conversations.
fn best_of_n_conversations() -> Case {
    let a1: &[(&str, &str)] = &[("assistant", "a1")];
    let a2: &[(&str, &str)] = &[("assistant", "a2")];
    let b1: &[(&str, &str)] = &[("user", "Q2"), ("assistant", "b1")];
    let b2: &[(&str, &str)] = &[("user", "Q2"), ("assistant", "b2")];
    let as_json = |m: &[(&str, &str)]| -> Value {
        m.iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect()
    };
    Case {
        rows: vec![
            json!({"prompt": "Q1", "responses": [as_json(a1), as_json(a2)]}),
            json!({"prompt": "Q2", "responses": [as_json(b1), as_json(b2)]}),
        ],
        columns: vec![
            ("prompt", strings(&[Some("Q1"), Some("Q2")])),
            ("responses", message_lists(&[&[a1, a2], &[b1, b2]])),
        ],
        expected: vec![
            Row::BestOfN(best_of_n("row-0", vec![msg("user", "Q1")], &["a1", "a2"])),
            Row::BestOfN(best_of_n("row-1", vec![msg("user", "Q2")], &["b1", "b2"])),
        ],
    }
}

/// One response per row, in a `response` column or TRL's prompt-completion `completion` (here
/// a message list); other columns ride along.
fn single_response_columns() -> Case {
    let c: &[(&str, &str)] = &[("assistant", "c")];
    let mut a = best_of_n("a", vec![msg("user", "Qa")], &["ra"]);
    a.extra.insert("score".into(), json!("high"));
    // The column not read stays an extra, as any other column would.
    a.extra.insert("completion".into(), Value::Null);
    let mut b = best_of_n("b", vec![msg("user", "Qb")], &["c"]);
    b.extra.insert("score".into(), json!("low"));
    Case {
        rows: vec![
            json!({"id": "a", "prompt": "Qa", "response": "ra", "completion": null, "score": "high"}),
            json!({"id": "b", "prompt": "Qb", "response": null,
                   "completion": [{"role": "assistant", "content": "c"}], "score": "low"}),
        ],
        columns: vec![
            ("id", strings(&[Some("a"), Some("b")])),
            ("prompt", strings(&[Some("Qa"), Some("Qb")])),
            ("response", strings(&[Some("ra"), None])),
            ("completion", messages(&[None, Some(c)])),
            ("score", strings(&[Some("high"), Some("low")])),
        ],
        expected: vec![Row::BestOfN(a), Row::BestOfN(b)],
    }
}

/// Best-of-N spread over `resp0`..`respN` columns; a null ends a row's list early.
fn best_of_n_wide_columns() -> Case {
    Case {
        rows: vec![
            json!({"id": "w1", "prompt": "P", "resp0": "x", "resp1": "y", "resp2": "z"}),
            json!({"id": "w2", "prompt": "Q", "resp0": "u", "resp1": "v", "resp2": null}),
        ],
        columns: vec![
            ("id", strings(&[Some("w1"), Some("w2")])),
            ("prompt", strings(&[Some("P"), Some("Q")])),
            ("resp0", strings(&[Some("x"), Some("u")])),
            ("resp1", strings(&[Some("y"), Some("v")])),
            ("resp2", strings(&[Some("z"), None])),
        ],
        expected: vec![
            Row::BestOfN(best_of_n("w1", vec![msg("user", "P")], &["x", "y", "z"])),
            Row::BestOfN(best_of_n("w2", vec![msg("user", "Q")], &["u", "v"])),
        ],
    }
}

macro_rules! forms {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::*;

                #[test]
                fn jsonl() {
                    check(super::$case(), Format::Jsonl);
                }

                #[test]
                fn json() {
                    check(super::$case(), Format::Json);
                }

                #[test]
                fn parquet() {
                    check(super::$case(), Format::Parquet);
                }
            }
        )*
    };
}

forms!(
    pairwise_strings,
    pairwise_prompt_messages,
    trl_implicit_prompt,
    trl_explicit_prompt,
    single_response_messages,
    best_of_n_strings,
    best_of_n_conversations,
    single_response_columns,
    best_of_n_wide_columns,
);

#[test]
fn anthropic_hh_transcripts_without_a_prompt_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hh.jsonl");
    let rows = [
        json!({
            "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a colour.\n\nAssistant: Blue.",
            "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a colour.\n\nAssistant: I won't."
        }),
        json!({
            "chosen": "\n\nHuman: 2+2?\n\nAssistant: 4",
            "rejected": "\n\nHuman: 2+3?\n\nAssistant: 4"
        }),
    ];
    std::fs::write(
        &path,
        rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .unwrap();
    let options = ReadOptions {
        skip_invalid: true,
        ..ReadOptions::default()
    };
    let read = read_pairwise(&path, &options).unwrap();
    assert_eq!(read.rows.len(), 1);
    let row = &read.rows[0];
    assert_eq!(
        row.prompt,
        vec![
            msg("user", "Hi"),
            msg("assistant", "Hello!"),
            msg("user", "Name a colour.")
        ]
    );
    assert_eq!(
        (row.chosen.as_str(), row.rejected.as_str()),
        ("Blue.", "I won't.")
    );
    // Transcripts that part before the last turn are not one prompt with two answers.
    assert_eq!(read.skipped.len(), 1);
    let why = &read.skipped[0].message;
    assert!(
        why.contains("line 2") && why.contains("different conversation"),
        "{why}"
    );
}
