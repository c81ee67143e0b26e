//! OpenRLHF sends `/get_reward` the decoded text of prompt + response (`query`) and the templated
//! prompt (`prompts`), not a conversation and a response. cdr renders every text with its own
//! template and customization, so both must be recovered:
//!
//! - **The response** is the query after its prompt. A decode round trip can change the prompt's
//!   bytes: padding or BOS tokens in front (`skip_special_tokens=False`), spaces cleaned up
//!   around punctuation. So the prompt is matched exactly first, then after dropping leading
//!   special tokens, then ignoring whitespace (the response starts after the last matched
//!   character, plus the whitespace the prompt ended with). A query that matches none of these
//!   is refused (400) rather than scored on a guessed split. End-of-turn and padding tokens at
//!   the end of the response are dropped: cdr's template adds the end of turn itself.
//! - **The conversation** is parsed back from the templated prompt in the common chat formats
//!   (ChatML, Llama 3, Gemma, Phi-3, `[INST]`); a prompt in none of them (OpenRLHF without
//!   `--apply_chat_template`) is one user turn, as written.

use cdr_types::Message;

/// Special tokens that pad or open a decoded sequence.
const LEADING: &[&str] = &[
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<s>",
    "</s>",
    "<bos>",
    "<pad>",
    "<|pad|>",
    "<unk>",
    "[PAD]",
];

/// Tokens that end a turn or pad after it.
const TRAILING: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "</s>",
    "<end_of_turn>",
    "<eos>",
    "<|end|>",
    "<pad>",
    "<|pad|>",
    "[PAD]",
];

/// The conversation and the response of one query; `end_token` is the model's own end of turn
/// (also dropped from the response's end).
pub fn split_query(
    query: &str,
    prompt: &str,
    end_token: &str,
) -> Result<(Vec<Message>, String), String> {
    let response = after_prompt(query, prompt).ok_or_else(|| {
        "the query does not start with its prompt (compared exactly, after leading padding and \
         BOS tokens, and ignoring whitespace)"
            .to_string()
    })?;
    let response = strip_trailing(response, end_token);
    if response.trim().is_empty() {
        return Err("the response (the query after its prompt) is empty".into());
    }
    let conversation = parse_templated(prompt)
        .unwrap_or_else(|| vec![Message::user(strip_leading(prompt).to_string())]);
    Ok((conversation, response.to_string()))
}

fn after_prompt<'q>(query: &'q str, prompt: &str) -> Option<&'q str> {
    if let Some(rest) = query.strip_prefix(prompt) {
        return Some(rest);
    }
    let (q, p) = (strip_leading(query), strip_leading(prompt));
    if let Some(rest) = q.strip_prefix(p) {
        return Some(rest);
    }
    after_prompt_ignoring_whitespace(q, p)
}

/// The rest of `query` once every non-whitespace character of `prompt` has been matched in order
/// (whitespace skipped on both sides), then as many whitespace characters as `prompt` ends with.
fn after_prompt_ignoring_whitespace<'q>(query: &'q str, prompt: &str) -> Option<&'q str> {
    let mut q = query.char_indices().filter(|(_, c)| !c.is_whitespace());
    let mut end = 0;
    for pc in prompt.chars().filter(|c| !c.is_whitespace()) {
        let (at, qc) = q.next()?;
        if qc != pc {
            return None;
        }
        end = at + qc.len_utf8();
    }
    let trailing = prompt.len() - prompt.trim_end().len();
    let mut rest = &query[end..];
    let mut taken = 0;
    while taken < trailing {
        let Some(c) = rest.chars().next().filter(|c| c.is_whitespace()) else {
            break;
        };
        rest = &rest[c.len_utf8()..];
        taken += c.len_utf8();
    }
    Some(rest)
}

fn strip_leading(text: &str) -> &str {
    let mut s = text;
    while let Some(rest) = LEADING.iter().find_map(|t| s.strip_prefix(t)) {
        s = rest;
    }
    s
}

/// Drops end-of-turn and padding tokens (and the whitespace between them) from the end; the
/// response's own trailing whitespace stays unless a token follows it.
fn strip_trailing<'a>(text: &'a str, end_token: &str) -> &'a str {
    let mut s = text;
    loop {
        let trimmed = s.trim_end();
        let stripped = TRAILING
            .iter()
            .copied()
            .chain((!end_token.is_empty()).then_some(end_token))
            .find_map(|t| trimmed.strip_suffix(t));
        match stripped {
            Some(rest) => s = rest,
            None => return s,
        }
    }
}

/// The conversation of a templated prompt ending in the assistant's generation prompt, in one of
/// the formats this module knows; `None` when it is in none of them.
pub fn parse_templated(prompt: &str) -> Option<Vec<Message>> {
    let p = strip_leading(prompt);
    marked_turns(p, "<|im_start|>", "\n", "<|im_end|>", "assistant")
        .or_else(|| {
            marked_turns(
                p,
                "<|start_header_id|>",
                "<|end_header_id|>\n\n",
                "<|eot_id|>",
                "assistant",
            )
        })
        .or_else(|| marked_turns(p, "<start_of_turn>", "\n", "<end_of_turn>", "model"))
        .or_else(|| marked_turns(p, "<|", "|>\n", "<|end|>", "assistant"))
        .or_else(|| inst_turns(p))
}

/// Turns written `{start}{role}{sep}{content}{end}` (whitespace between turns), the last one a
/// bare `{start}{assistant}{sep}`.
fn marked_turns(
    prompt: &str,
    start: &str,
    sep: &str,
    end: &str,
    assistant: &str,
) -> Option<Vec<Message>> {
    let mut s = prompt;
    let mut turns = Vec::new();
    loop {
        s = s.strip_prefix(start)?;
        let (role, rest) = s.split_once(sep)?;
        if role.is_empty() || role.len() > 32 || role.contains(char::is_whitespace) {
            return None;
        }
        if rest.is_empty() {
            return (role == assistant && !turns.is_empty()).then_some(turns);
        }
        let (content, rest) = rest.split_once(end)?;
        let role = if role == assistant { "assistant" } else { role };
        if !cdr_types::ROLES.contains(&role) {
            return None;
        }
        turns.push(Message::new(role, content));
        s = rest.trim_start();
    }
}

/// `[INST] user [/INST] assistant</s>[INST] ...` (Mistral, Llama 2, whose first turn may hold a
/// `<<SYS>>` block), ending after a `[/INST]`.
fn inst_turns(prompt: &str) -> Option<Vec<Message>> {
    let mut s = prompt.trim_start();
    let mut turns = Vec::new();
    loop {
        s = s.strip_prefix("[INST]")?;
        let (user, rest) = s.split_once("[/INST]")?;
        let mut user = user.trim();
        if let Some(inner) = user.strip_prefix("<<SYS>>")
            && let Some((system, after)) = inner.split_once("<</SYS>>")
        {
            turns.push(Message::system(system.trim()));
            user = after.trim();
        }
        turns.push(Message::user(user));
        if rest.trim().is_empty() {
            return Some(turns);
        }
        let (assistant, rest) = rest.split_once("</s>")?;
        turns.push(Message::assistant(assistant.trim()));
        s = strip_leading(rest.trim_start()).trim_start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_formats_parse_back_to_their_turns() {
        let chatml = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n";
        let llama3 = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        let phi3 = "<|system|>\nBe brief.<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n";
        let llama2 = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n2+2? [/INST]";
        let want = vec![Message::system("Be brief."), Message::user("2+2?")];
        for prompt in [chatml, llama3, phi3, llama2] {
            assert_eq!(parse_templated(prompt), Some(want.clone()), "{prompt}");
        }
        let gemma = "<bos><start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n";
        assert_eq!(parse_templated(gemma), Some(vec![Message::user("2+2?")]));
        let multi = "<s>[INST] hi [/INST] hello</s>[INST] 2+2? [/INST]";
        assert_eq!(parse_templated(multi).map(|t| t.len()), Some(3));
        // Not a finished generation prompt, or plain text: no parse.
        assert_eq!(parse_templated("<|im_start|>user\nhi<|im_end|>\n"), None);
        assert_eq!(parse_templated("What is 2+2?"), None);
    }

    #[test]
    fn queries_split_after_their_prompt_despite_a_decode_round_trip() {
        let prompt = "<|im_start|>user\nSay hi .<|im_end|>\n<|im_start|>assistant\n";
        let (conv, r) = split_query(
            &format!("{prompt}Hi there!<|im_end|>\n<|endoftext|>"),
            prompt,
            "<|im_end|>",
        )
        .unwrap();
        assert_eq!(conv, vec![Message::user("Say hi .")]);
        assert_eq!(r, "Hi there!");
        // Left padding in front, a space cleaned up before the period.
        let decoded = "<|endoftext|><|endoftext|><|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\nHi  there!";
        assert_eq!(split_query(decoded, prompt, "").unwrap().1, "Hi  there!");
        // Untemplated prompts are a user turn as written.
        let (conv, r) = split_query("What is 2+2? 4", "What is 2+2?", "").unwrap();
        assert_eq!(
            (conv, r.as_str()),
            (vec![Message::user("What is 2+2?")], " 4")
        );
        assert!(split_query("Something else entirely", prompt, "").is_err());
        assert!(
            split_query(&format!("{prompt}<|im_end|>"), prompt, "")
                .unwrap_err()
                .contains("empty")
        );
    }
}
