//! Log-probs from vLLM-compatible servers (`cdr serve --model`, vLLM, ...) instead of local
//! weights: the paper's scale (7B pairs, a 70B router) is what GPU servers are for.
//!
//! cdr still renders, customizes and tokenizes every text here; a server gets the exact token
//! ids (`"prompt": [ids]`) and returns `prompt_logprobs`, a list with `null` first and, per later
//! position, an object keyed by token id holding `{"logprob", "rank", "decoded_token"}` for the
//! prompt's token (and alternatives). Servers that advertise cdr's `prompt_logprobs_start` in
//! `/v1/models` are asked only for the response positions; others return every position.
//!
//! Requests spread over every URL of a model (several replicas), several in flight per URL;
//! a failed request (connection error, 429, 5xx) is retried with exponential backoff (honouring
//! `Retry-After`) on the next URL; a 4xx answer other than 429 is the request's fault and fails
//! the run with the server's message.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cdr_models::ScoreSpan;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::error::{CoreError, Result};

/// How cdr talks to remote log-prob servers.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Tries per request beyond the first.
    pub retries: u32,
    /// First backoff; it doubles per retry.
    pub backoff: Duration,
    /// Requests in flight per URL.
    pub concurrency: usize,
    /// Bearer token the servers require (vLLM's `--api-key`, `cdr serve --token-file`).
    pub token: Option<String>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            retries: 5,
            backoff: Duration::from_millis(500),
            concurrency: 8,
            token: None,
        }
    }
}

/// One server of a model.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `http://host:port` (no trailing slash, no `/v1`).
    base: String,
    /// The served model name to put in requests.
    model: String,
    /// Whether it takes `prompt_logprobs_start`.
    start_field: bool,
}

/// A model served elsewhere: per-token log-probs of token-id sequences over HTTP.
pub struct RemoteModel {
    endpoints: Vec<Endpoint>,
    agent: ureq::Agent,
    options: RemoteOptions,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn remote_error(url: &str, message: impl std::fmt::Display) -> CoreError {
    CoreError::Invalid(format!("remote log-prob server {url}: {message}"))
}

/// `http://host:port/v1` and `http://host:port/` both name the server `http://host:port`.
fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    url.strip_suffix("/v1").unwrap_or(url).to_string()
}

enum Attempt {
    /// Worth another try (connection error, timeout, 429, 5xx), after at least this long.
    Retry(String, Option<Duration>),
    /// The request itself is wrong; retrying cannot help.
    Fail(String),
}

impl RemoteModel {
    /// Connects to each URL's `/v1/models`: the served model's name (the only one, or
    /// `model_name` among several) and whether it takes `prompt_logprobs_start`.
    pub fn connect(
        urls: &[String],
        model_name: Option<&str>,
        options: RemoteOptions,
    ) -> Result<Self> {
        if urls.is_empty() {
            return Err(CoreError::Invalid(
                "a remote model needs at least one URL".into(),
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut endpoints = Vec::with_capacity(urls.len());
        for url in urls {
            let base = base_url(url);
            let listing = retrying(&options, &base, || {
                let mut request = agent.get(format!("{base}/v1/models"));
                if let Some(t) = &options.token {
                    request = request.header("Authorization", format!("Bearer {t}"));
                }
                answer(request.call())
            })?;
            let models = listing["data"].as_array().cloned().unwrap_or_default();
            let entry = match model_name {
                Some(name) => models.iter().find(|m| m["id"] == name).ok_or_else(|| {
                    remote_error(&base, format!("serves no model named `{name}`"))
                })?,
                None => match models.as_slice() {
                    [one] => one,
                    [] => return Err(remote_error(&base, "/v1/models lists no model")),
                    _ => {
                        return Err(remote_error(
                            &base,
                            "serves several models; name one (--remote-model-name)",
                        ));
                    }
                },
            };
            let model = entry["id"]
                .as_str()
                .ok_or_else(|| remote_error(&base, "/v1/models entry without an id"))?
                .to_string();
            let start_field = entry["cdr"]["prompt_logprobs_start"] == true;
            info!(url = %base, %model, start_field, "remote log-prob server");
            endpoints.push(Endpoint {
                base,
                model,
                start_field,
            });
        }
        Ok(Self {
            endpoints,
            agent,
            options,
        })
    }

    /// The served model's name (of the first URL).
    pub fn name(&self) -> &str {
        &self.endpoints[0].model
    }

    /// `log p(ids[t] | ids[..t])` for `t in start..len` of each span, as
    /// [`cdr_models::Model::score_spans`] returns them, from the servers.
    pub fn score_spans(&self, spans: &[ScoreSpan<'_>]) -> Result<Vec<Vec<f32>>> {
        let results: Vec<Mutex<Option<Vec<f32>>>> =
            spans.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<CoreError>> = Mutex::new(None);
        let workers = (self.endpoints.len() * self.options.concurrency.max(1)).min(spans.len());
        std::thread::scope(|scope| {
            for w in 0..workers {
                let (results, next, failure) = (&results, &next, &failure);
                scope.spawn(move || {
                    loop {
                        if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(span) = spans.get(i) else { return };
                        match self.one(span, w + i) {
                            Ok(lp) => {
                                if let Ok(mut slot) = results[i].lock() {
                                    *slot = Some(lp);
                                }
                            }
                            Err(e) => {
                                if let Ok(mut f) = failure.lock() {
                                    f.get_or_insert(e);
                                }
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        results
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .ok()
                    .flatten()
                    .ok_or_else(|| CoreError::Invalid("a remote request got no answer".into()))
            })
            .collect()
    }

    /// One span, starting at endpoint `first % n` and moving to the next on each retry.
    fn one(&self, span: &ScoreSpan<'_>, first: usize) -> Result<Vec<f32>> {
        let n = self.endpoints.len();
        let mut tries = 0u32;
        let mut wait = self.options.backoff;
        loop {
            let endpoint = &self.endpoints[(first + tries as usize) % n];
            match self.request(endpoint, span) {
                Ok(lp) => return Ok(lp),
                Err(Attempt::Fail(message)) => return Err(remote_error(&endpoint.base, message)),
                Err(Attempt::Retry(message, after)) => {
                    if tries >= self.options.retries {
                        return Err(remote_error(
                            &endpoint.base,
                            format!("{message} (gave up after {} tries)", tries + 1),
                        ));
                    }
                    debug!(url = %endpoint.base, "retrying: {message}");
                    std::thread::sleep(after.unwrap_or(wait).max(wait));
                    wait = wait.saturating_mul(2).min(Duration::from_secs(30));
                    tries += 1;
                }
            }
        }
    }

    fn request(
        &self,
        endpoint: &Endpoint,
        span: &ScoreSpan<'_>,
    ) -> std::result::Result<Vec<f32>, Attempt> {
        let mut body = json!({
            "model": endpoint.model,
            "prompt": span.ids,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
        });
        if endpoint.start_field {
            body["prompt_logprobs_start"] = json!(span.start);
        }
        let mut request = self.agent.post(format!("{}/v1/completions", endpoint.base));
        if let Some(t) = &self.options.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let response = answer(request.send_json(&body))?;
        parse_prompt_logprobs(&response, span).map_err(Attempt::Fail)
    }
}

/// Runs `call` with the options' retries and backoff, failing with the last message.
fn retrying(
    options: &RemoteOptions,
    url: &str,
    mut call: impl FnMut() -> std::result::Result<Value, Attempt>,
) -> Result<Value> {
    let mut wait = options.backoff;
    let mut tries = 0u32;
    loop {
        match call() {
            Ok(v) => return Ok(v),
            Err(Attempt::Fail(m)) => return Err(remote_error(url, m)),
            Err(Attempt::Retry(m, after)) => {
                if tries >= options.retries {
                    return Err(remote_error(
                        url,
                        format!("{m} (gave up after {} tries)", tries + 1),
                    ));
                }
                warn!(url, "retrying: {m}");
                std::thread::sleep(after.unwrap_or(wait).max(wait));
                wait = wait.saturating_mul(2).min(Duration::from_secs(30));
                tries += 1;
            }
        }
    }
}

/// A response as JSON, or why not (and whether a retry may help).
fn answer(
    result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> std::result::Result<Value, Attempt> {
    let mut response = result.map_err(|e| Attempt::Retry(e.to_string(), None))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| Attempt::Retry(format!("reading the answer: {e}"), None))?;
    if status == 429 || status >= 500 {
        return Err(Attempt::Retry(
            format!("HTTP {status}: {}", excerpt(&text)),
            retry_after,
        ));
    }
    if status >= 400 {
        return Err(Attempt::Fail(format!("HTTP {status}: {}", excerpt(&text))));
    }
    serde_json::from_str(&text).map_err(|e| Attempt::Fail(format!("the answer is not JSON: {e}")))
}

fn excerpt(text: &str) -> String {
    // The error message of an OpenAI-style error body, else the start of the body.
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v["message"]
                .as_str()
                .or(v["error"]["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.chars().take(300).collect())
}

/// The log-probs of `span.ids[start..]` from a vLLM completions response's
/// `choices[0].prompt_logprobs`.
pub fn parse_prompt_logprobs(
    response: &Value,
    span: &ScoreSpan<'_>,
) -> std::result::Result<Vec<f32>, String> {
    let list = response["choices"][0]["prompt_logprobs"].as_array().ok_or(
        "the answer has no choices[0].prompt_logprobs list (is it a vLLM-compatible server?)",
    )?;
    if list.len() != span.ids.len() {
        return Err(format!(
            "prompt_logprobs has {} entries for a prompt of {} tokens",
            list.len(),
            span.ids.len()
        ));
    }
    (span.start..span.ids.len())
        .map(|t| {
            let id = span.ids[t];
            let entry = &list[t][id.to_string()];
            let lp = entry["logprob"].as_f64().or_else(|| {
                // Some servers write -inf as a string.
                entry["logprob"]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
            });
            lp.map(|lp| lp as f32).ok_or_else(|| {
                format!("prompt_logprobs[{t}] has no log-prob for the prompt's token {id}")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The response layout of vLLM's documentation for `prompt_logprobs` (its example output
    /// keyed by token id, `null` first), with the prompt token and one alternative per position.
    #[test]
    fn reads_vllm_prompt_logprobs() {
        let response = json!({
            "id": "cmpl-1", "object": "text_completion", "model": "m",
            "choices": [{
                "index": 0, "text": " the", "logprobs": null, "finish_reason": "length",
                "prompt_logprobs": [
                    null,
                    {"1014": {"logprob": -9.5, "rank": 1520, "decoded_token": "Hello"},
                     "29871": {"logprob": -1.25, "rank": 1, "decoded_token": " "}},
                    {"29892": {"logprob": -0.75, "rank": 1, "decoded_token": ","}},
                    {"590": {"logprob": -3.0, "rank": 4, "decoded_token": " my"},
                     "306": {"logprob": -1.5, "rank": 1, "decoded_token": " I"}}
                ]
            }]
        });
        let ids = [1, 1014, 29892, 590];
        let all = parse_prompt_logprobs(
            &response,
            &ScoreSpan {
                ids: &ids,
                start: 1,
            },
        )
        .unwrap();
        assert_eq!(all, vec![-9.5, -0.75, -3.0]);
        let tail = parse_prompt_logprobs(
            &response,
            &ScoreSpan {
                ids: &ids,
                start: 3,
            },
        )
        .unwrap();
        assert_eq!(tail, vec![-3.0]);
        let wrong = [1, 1014, 29892, 7];
        let e = parse_prompt_logprobs(
            &response,
            &ScoreSpan {
                ids: &wrong,
                start: 1,
            },
        )
        .unwrap_err();
        assert!(e.contains("token 7"), "{e}");
        let short = [1, 1014];
        assert!(
            parse_prompt_logprobs(
                &response,
                &ScoreSpan {
                    ids: &short,
                    start: 1
                }
            )
            .is_err()
        );
        assert!(
            parse_prompt_logprobs(
                &json!({"choices": []}),
                &ScoreSpan {
                    ids: &ids,
                    start: 1
                }
            )
            .is_err()
        );
    }

    #[test]
    fn base_urls_drop_the_api_suffix() {
        assert_eq!(base_url("http://h:8000/v1/"), "http://h:8000");
        assert_eq!(base_url(" http://h:8000 "), "http://h:8000");
    }
}
