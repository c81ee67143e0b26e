//! `cdr serve`'s request parsers on arbitrary bodies: `/v1/score`, OpenRLHF's `/get_reward`
//! (then splitting each query after its prompt) and `/v1/completions`. Any input is an answer
//! (a request or a 400), never a panic.
#![no_main]

use cdr_serve::api::{CompletionRequest, RewardRequest, ScoreRequest, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match parse::<ScoreRequest>(body) {
        Ok(r) => assert!(!r.responses.is_empty() && !r.prompt.is_empty()),
        Err(e) => assert_eq!(e.status().as_u16(), 400),
    }
    if let Ok(r) = parse::<RewardRequest>(body) {
        assert_eq!(r.query.len(), r.prompts.len());
        for (query, prompt) in r.query.iter().zip(&r.prompts) {
            if let Ok((conversation, response)) =
                cdr_serve::recover::split_query(query, prompt, "</s>")
            {
                assert!(!conversation.is_empty());
                assert!(!response.trim().is_empty());
            }
        }
    }
    if let Ok(r) = parse::<CompletionRequest>(body) {
        assert!(r.max_tokens <= 1 && !r.prompts.is_empty());
    }
});
