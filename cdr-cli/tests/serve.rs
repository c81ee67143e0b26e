//! `cdr serve` end to end: rewards over HTTP against `cdr score`, OpenRLHF's `/get_reward`, the
//! vLLM-compatible model server and `--backend remote`, and every kind of bad request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

const LIMITS: [&str; 4] = ["--max-prompt-tokens", "256", "--max-response-tokens", "64"];

/// A running `cdr serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cdr"))
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let base = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("cdr serve exited before listening:\n{seen}"))
                .unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Server {
            child,
            base,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post_with(&agent(), &self.url(path), body, None)
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut r = ureq::get(self.url(path))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn send(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut r = r.unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post_with(agent: &ureq::Agent, url: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut request = agent.post(url);
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    send(request.send_json(body))
}

fn pair_args() -> Vec<String> {
    let mut args = vec![
        "--strong".to_string(),
        model("llama_gqa"),
        "--weak".to_string(),
        model("llama_sharded"),
    ];
    args.extend(LIMITS.iter().map(|s| s.to_string()));
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `cdr score` of the fixture pairs: (row, reward_chosen, reward_rejected).
fn offline_scores(extra: &[&str]) -> Vec<(Value, f64, f64)> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("scores.jsonl");
    let input = pairs().display().to_string();
    let mut args = vec![
        "score",
        "--input",
        &input,
        "--output",
        out.to_str().unwrap(),
        "--no-cache",
    ];
    let pair = pair_args();
    args.extend(refs(&pair));
    args.extend(extra);
    let o = cdr(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> = std::fs::read_to_string(pairs())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.into_iter()
        .zip(jsonl(&out))
        .map(|(row, s)| {
            assert_eq!(row["id"], s["id"]);
            let c = s["reward_chosen"].as_f64().unwrap();
            let r = s["reward_rejected"].as_f64().unwrap();
            (row, c, r)
        })
        .collect()
}

#[test]
fn rewards_over_http_equal_cdr_score_under_concurrent_load() {
    let offline = offline_scores(&[]);
    let server = Server::start(&refs(&pair_args()));
    // Every row at once from its own client, so the server batches them together.
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = offline
            .iter()
            .map(|(row, _, _)| {
                let server = &server;
                scope.spawn(move || {
                    server.post(
                        "/v1/score",
                        &json!({"prompt": row["prompt"], "responses": [row["chosen"], row["rejected"]]}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut worst = 0.0f64;
    for ((row, c, r), (status, body)) in offline.iter().zip(&answers) {
        assert_eq!(*status, 200, "{}: {body}", row["id"]);
        let got = body["rewards"].as_array().unwrap();
        for (g, w) in got.iter().zip([c, r]) {
            let g = g.as_f64().unwrap();
            worst = worst.max((g - w).abs());
            assert!(
                (g - w).abs() <= 1e-6,
                "{}: {g} over HTTP, {w} from cdr score",
                row["id"]
            );
        }
        let s = &body["scores"][0];
        let sum = s["strong_logprob"].as_f64().unwrap() - s["weak_logprob"].as_f64().unwrap();
        assert!((sum - c).abs() <= 1e-6, "{body}");
    }
    println!(
        "/v1/score vs cdr score: max |reward diff| = {worst:.2e} over {} rows",
        offline.len()
    );
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("cdr_requests_total{route=\"/v1/score\",status=\"200\"} 16"),
        "{metrics}"
    );
    assert!(metrics.contains("cdr_tokens_total"), "{metrics}");
    assert!(metrics.contains("cdr_queue_depth"), "{metrics}");
}

/// A ChatML generation prompt for `row`'s conversation, as OpenRLHF renders it.
fn chatml(prompt: &Value) -> String {
    let turns: Vec<(String, String)> = match prompt {
        Value::String(s) => vec![("user".into(), s.clone())],
        Value::Array(m) => m
            .iter()
            .map(|t| {
                (
                    t["role"].as_str().unwrap().into(),
                    t["content"].as_str().unwrap().into(),
                )
            })
            .collect(),
        _ => unreachable!(),
    };
    let mut out = String::new();
    for (role, content) in turns {
        out.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
    }
    out + "<|im_start|>assistant\n"
}

#[test]
fn get_reward_recovers_prompt_and_response_as_openrlhf_sends_them() {
    let template = ["--template", "chatml"];
    let offline = offline_scores(&template);
    let mut args = pair_args();
    args.extend(template.iter().map(|s| s.to_string()));
    let server = Server::start(&refs(&args));
    let mut queries = Vec::new();
    let mut prompts = Vec::new();
    let mut want = Vec::new();
    for (i, (row, c, r)) in offline.iter().enumerate() {
        let prompt = chatml(&row["prompt"]);
        for (response, reward) in [(&row["chosen"], c), (&row["rejected"], r)] {
            let response = response.as_str().unwrap();
            // The policy's decode: the end-of-turn token after the response; every other row
            // left-padded and with its prompt's whitespace changed by the round trip.
            let query = if i % 2 == 0 {
                format!("{prompt}{response}<|im_end|>")
            } else {
                let decoded = prompt.replacen("\n", " \n", 1);
                format!("<|endoftext|><|endoftext|>{decoded}{response}<|im_end|>\n<|endoftext|>")
            };
            queries.push(query);
            prompts.push(prompt.clone());
            want.push(*reward);
        }
    }
    let (status, body) = server.post(
        "/get_reward",
        &json!({"query": queries, "prompts": prompts, "labels": vec![Value::Null; prompts.len()]}),
    );
    assert_eq!(status, 200, "{body}");
    let rewards = body["rewards"].as_array().unwrap();
    assert_eq!(rewards.len(), want.len());
    for (i, (g, w)) in rewards.iter().zip(&want).enumerate() {
        let g = g.as_f64().unwrap();
        assert!(
            (g - w).abs() <= 1e-6,
            "query {i}: {g} over /get_reward, {w} from cdr score"
        );
    }
    assert_eq!(body["scores"], body["rewards"]);
    assert_eq!(
        body["extra_logs"]["strong_logprob"]
            .as_array()
            .unwrap()
            .len(),
        want.len()
    );
    // A query that does not continue its prompt is refused, not guessed.
    let (status, body) = server.post(
        "/get_reward",
        &json!({"query": ["something else"], "prompts": [prompts[0]]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("query 0"),
        "{body}"
    );
}

#[test]
fn bad_requests_get_their_status_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let mut args = pair_args();
    args.extend(
        [
            "--customize",
            "paper",
            "--token-file",
            token_file.to_str().unwrap(),
            "--max-body-bytes",
            "4000",
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let server = Server::start(&refs(&args));
    let agent = agent();
    let url = server.url("/v1/score");
    let good =
        json!({"prompt": "Name three primary colours.", "responses": ["Red, yellow and blue."]});
    let token = Some("s3cret-token");
    let ok = |server: &Server| {
        let (status, body) = post_with(&agent, &server.url("/v1/score"), &good, token);
        assert_eq!(status, 200, "{body}");
    };

    // Tokens.
    assert_eq!(post_with(&agent, &url, &good, None).0, 401);
    assert_eq!(post_with(&agent, &url, &good, Some("s3cret-tokem")).0, 401);
    assert_eq!(server.get("/health").0, 200, "health needs no token");
    assert_eq!(server.get("/metrics").0, 401);
    ok(&server);

    // Bodies: too large, not JSON, wrong types, an unknown domain, an unknown route.
    let big = json!({"prompt": "x".repeat(5000), "responses": ["a"]});
    assert_eq!(post_with(&agent, &url, &big, token).0, 413);
    let (status, body) = send(
        agent
            .post(&url)
            .header("Authorization", "Bearer s3cret-token")
            .send("{\"prompt\": "),
    );
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
    let (status, body) = post_with(
        &agent,
        &url,
        &json!({"prompt": "p", "responses": [1]}),
        token,
    );
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("responses[0]"),
        "{body}"
    );
    let (status, body) = post_with(
        &agent,
        &url,
        &json!({"prompt": "p", "responses": ["a"], "domain": "astrology"}),
        token,
    );
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown domain `astrology`"),
        "{body}"
    );
    let (status, _) = post_with(
        &agent,
        &url,
        &json!({"prompt": "p", "responses": ["a"], "domain": "SAFETY"}),
        token,
    );
    assert_eq!(status, 200);
    assert_eq!(
        post_with(&agent, &server.url("/v1/nothing"), &good, token).0,
        404
    );

    // Slow clients: a request head that never finishes is cut off, and so is a body that stops
    // arriving (408); others are served meanwhile.
    let mut slow_head = TcpStream::connect(server.addr()).unwrap();
    slow_head
        .write_all(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = TcpStream::connect(server.addr()).unwrap();
    slow_body
        .write_all(
            b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\"",
        )
        .unwrap();
    ok(&server);
    let start = Instant::now();
    slow_head
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = slow_head.read_to_end(&mut sink);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "the slow head was not cut off"
    );
    slow_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    ok(&server);
}

#[test]
fn sigterm_drains_requests_in_flight() {
    let mut args = pair_args();
    // A long batching wait keeps the requests in flight when the signal arrives.
    args.extend(["--max-wait-ms", "1500"].iter().map(|s| s.to_string()));
    let mut server = Server::start(&refs(&args));
    let url = server.url("/v1/score");
    let answers = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let url = url.clone();
                scope.spawn(move || {
                    post_with(
                        &agent(),
                        &url,
                        &json!({"prompt": format!("Question {i}?"), "responses": ["An answer."]}),
                        None,
                    )
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        let status = server.terminate();
        assert!(status.success(), "{status:?}");
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
    }
    let log = server.stderr.lock().unwrap().clone();
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let mut args = pair_args();
    args.extend(
        ["--max-queue", "1", "--max-wait-ms", "0"]
            .iter()
            .map(|s| s.to_string()),
    );
    let server = Server::start(&refs(&args));
    let url = server.url("/v1/score");
    let long = "A long answer that goes on and on. ".repeat(20);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        // One request the scoring thread is busy with for a while (800 responses)...
        let busy = scope.spawn(|| {
            post_with(
                &agent(),
                &url,
                &json!({"prompt": "Talk.", "responses": vec![&long; 800]}),
                None,
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        // ...then a burst: one fits the queue, the rest are turned away at once.
        let burst: Vec<_> = (0..4)
            .map(|i| {
                let url = url.clone();
                scope.spawn(move || {
                    let r = agent()
                        .post(&url)
                        .send_json(json!({"prompt": format!("Q{i}"), "responses": ["A."]}))
                        .unwrap();
                    let retry = r
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    (r.status().as_u16(), retry)
                })
            })
            .collect();
        let mut out: Vec<_> = burst.into_iter().map(|h| h.join().unwrap()).collect();
        out.push((busy.join().unwrap().0, None));
        out
    });
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(
        refused.iter().all(|(_, r)| r.as_deref() == Some("1")),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(statuses.last().unwrap().0, 200, "{statuses:?}");
}

#[test]
fn remote_backend_on_two_model_servers_matches_local_scoring() {
    let strong = Server::start(&[&["--model", &model("llama_gqa")][..], &LIMITS].concat());
    let weak = Server::start(&[&["--model", &model("llama_sharded")][..], &LIMITS].concat());

    // The model server's answers in vLLM's shapes.
    let (status, body) = strong.post(
        "/v1/completions",
        &json!({"prompt": [1, 5, 7, 9], "max_tokens": 1, "prompt_logprobs": 2, "echo": true, "logprobs": 1}),
    );
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    let plp = choice["prompt_logprobs"].as_array().unwrap();
    assert_eq!(plp.len(), 4);
    assert!(plp[0].is_null());
    for (t, id) in [(1, 5), (2, 7), (3, 9)] {
        let entry = &plp[t][id.to_string()];
        assert!(entry["logprob"].as_f64().unwrap() <= 0.0, "{entry}");
        assert!(entry["rank"].as_u64().unwrap() >= 1, "{entry}");
        assert!(entry["decoded_token"].is_string(), "{entry}");
        assert!(
            plp[t].as_object().unwrap().len() >= 2,
            "the top 2 are listed too: {}",
            plp[t]
        );
    }
    let lp = &choice["logprobs"];
    assert_eq!(
        lp["tokens"].as_array().unwrap().len(),
        5,
        "4 echoed + 1 generated: {lp}"
    );
    assert!(lp["token_logprobs"][0].is_null());
    assert_eq!(lp["token_logprobs"][1], plp[1]["5"]["logprob"]);
    assert_eq!(body["usage"]["prompt_tokens"], 4);
    let (status, models) = strong.get("/v1/models");
    assert_eq!(status, 200);
    assert!(models.contains("prompt_logprobs_start"), "{models}");
    let (status, body) = strong.post("/v1/completions", &json!({"prompt": [1, 999999]}));
    assert_eq!(status, 400, "{body}");

    let offline = offline_scores(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("remote.jsonl");
    let input = pairs().display().to_string();
    let (su, wu) = (strong.base.clone(), weak.base.clone());
    let mut args = vec![
        "score",
        "--input",
        &input,
        "--output",
        out.to_str().unwrap(),
        "--no-cache",
    ];
    let pair = pair_args();
    args.extend(refs(&pair));
    args.extend([
        "--backend",
        "remote",
        "--strong-url",
        &su,
        "--weak-url",
        &wu,
    ]);
    let o = cdr(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut worst = 0.0f64;
    for ((row, c, r), got) in offline.iter().zip(jsonl(&out)) {
        assert_eq!(row["id"], got["id"]);
        for (w, side) in [(c, "reward_chosen"), (r, "reward_rejected")] {
            let g = got[side].as_f64().unwrap();
            worst = worst.max((g - w).abs());
            assert!(
                (g - w).abs() <= 1e-5,
                "{}: {side} remote {g}, local {w}",
                row["id"]
            );
        }
    }
    println!("--backend remote vs local: max |reward diff| = {worst:.2e}");

    // URLs without --backend remote are a mistake, not ignored.
    let (sm, wm) = (model("llama_gqa"), model("llama_sharded"));
    let o = cdr(&[
        "score",
        "--strong",
        &sm,
        "--weak",
        &wm,
        "--input",
        &input,
        "--output",
        "x",
        "--strong-url",
        &su,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--backend remote"), "{}", stderr(&o));
}
