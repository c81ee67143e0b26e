//! Sharded runs: three `cdr score` processes with a Slurm job array's variables, merged, give the
//! single-process file byte for byte; missing, duplicated, unfinished and overlapping shards are
//! refused. Also `cdr generate` as a Kubernetes Indexed Job.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{model, pairs, stderr};

/// Runs `cdr ARGS --quiet` with `env` set and the scheduler variables of this test process cleared.
fn cdr_env(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdr"));
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "JOB_COMPLETION_INDEX",
        "CDR_SHARDS",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.args(args).arg("--quiet").output().unwrap()
}

/// The fixture pairs repeated under new ids, so each of 3 shards gets a fair number of rows.
fn input(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(pairs()).unwrap();
    let mut out = String::new();
    for k in 0..3 {
        for line in text.lines() {
            let mut row: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = format!("{}-{k}", row["id"].as_str().unwrap());
            row["id"] = id.into();
            out.push_str(&row.to_string());
            out.push('\n');
        }
    }
    let path = dir.join("pairs.jsonl");
    std::fs::write(&path, out).unwrap();
    path
}

fn score(input: &Path, output: &Path, env: &[(&str, String)]) -> Output {
    let (strong, weak) = (model("llama_gqa"), model("llama_sharded"));
    cdr_env(
        &[
            "score",
            "--strong",
            &strong,
            "--weak",
            &weak,
            "--no-cache",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        env,
    )
}

fn merge(input: &Path, output: &Path, shards: &[&Path]) -> Output {
    let mut args = vec![
        "merge",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend(shards.iter().map(|s| s.to_str().unwrap()));
    cdr_env(&args, &[])
}

fn slurm(task: usize) -> Vec<(&'static str, String)> {
    vec![
        ("SLURM_ARRAY_TASK_ID", task.to_string()),
        ("SLURM_ARRAY_TASK_COUNT", "3".into()),
    ]
}

#[test]
fn three_slurm_shards_merge_into_the_single_run_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let single = dir.path().join("single.jsonl");
    let o = score(&input, &single, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let output = dir.path().join("scores.jsonl");
    let mut shards = Vec::new();
    for task in 0..3 {
        let o = score(&input, &output, &slurm(task));
        assert!(o.status.success(), "{}", stderr(&o));
        let shard = dir.path().join(format!("scores.shard-{task}-of-3.jsonl"));
        assert!(
            shard.is_file(),
            "shard {task} output missing: {}",
            stderr(&o)
        );
        let rows = std::fs::read_to_string(&shard).unwrap().lines().count();
        assert!(
            rows > 0 && rows < 48,
            "shard {task} holds {rows} of 48 rows"
        );
        shards.push(shard);
    }
    assert!(
        !output.exists(),
        "a sharded run must not write the unsharded output"
    );

    // Shard files found by name.
    let o = merge(&input, &output, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&single).unwrap(),
        "merged != single run"
    );

    // Given explicitly, in any order.
    let explicit = dir.path().join("explicit.jsonl");
    let o = merge(&input, &explicit, &[&shards[2], &shards[0], &shards[1]]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&explicit).unwrap(),
        std::fs::read(&single).unwrap()
    );

    // Missing shard.
    let refused = dir.path().join("refused.jsonl");
    let o = merge(&input, &refused, &[&shards[0], &shards[2]]);
    assert!(
        !o.status.success() && stderr(&o).contains("1/3 of 3 missing"),
        "{}",
        stderr(&o)
    );
    // Duplicated shard.
    let o = merge(
        &input,
        &refused,
        &[&shards[0], &shards[1], &shards[1], &shards[2]],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("given twice"),
        "{}",
        stderr(&o)
    );
    assert!(!refused.exists());

    // A shard whose run did not finish (no completion marker): a rerun that was killed looks so.
    let marker = dir.path().join("scores.shard-1-of-3.jsonl.complete.json");
    let saved = std::fs::read(&marker).unwrap();
    std::fs::remove_file(&marker).unwrap();
    let o = merge(&input, &refused, &[&shards[0], &shards[1], &shards[2]]);
    assert!(
        !o.status.success() && stderr(&o).contains("did not finish"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&marker, saved).unwrap();

    // Overlap: a row of shard 0 also in shard 2.
    let shard0 = std::fs::read_to_string(&shards[0]).unwrap();
    let first = shard0.lines().next().unwrap();
    let original2 = std::fs::read_to_string(&shards[2]).unwrap();
    std::fs::write(&shards[2], format!("{original2}{first}\n")).unwrap();
    let o = merge(&input, &refused, &[&shards[0], &shards[1], &shards[2]]);
    assert!(
        !o.status.success() && stderr(&o).contains("belongs to shard 0/3"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&shards[2], original2).unwrap();

    // Shards of a 2-way split mixed in.
    let other = dir.path().join("other.jsonl");
    let o = score(
        &input,
        &other,
        &[
            ("SLURM_ARRAY_TASK_ID", "0".into()),
            ("SLURM_ARRAY_TASK_COUNT", "2".into()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let other0 = dir.path().join("other.shard-0-of-2.jsonl");
    let o = merge(&input, &refused, &[&shards[0], &shards[1], &other0]);
    assert!(
        !o.status.success() && stderr(&o).contains("split different ways"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explicit_shard_and_kubernetes_index_pick_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let flag_out = dir.path().join("flag.jsonl");
    let (strong, weak) = (model("llama_gqa"), model("llama_sharded"));
    let args = [
        "score",
        "--strong",
        &strong,
        "--weak",
        &weak,
        "--no-cache",
        "--input",
        input.to_str().unwrap(),
        "--output",
        flag_out.to_str().unwrap(),
        "--shard",
        "2/4",
    ];
    let o = cdr_env(
        &args,
        &[
            ("SLURM_ARRAY_TASK_ID", "0".into()),
            ("SLURM_ARRAY_TASK_COUNT", "3".into()),
        ],
    );
    assert!(
        o.status.success(),
        "--shard wins over Slurm: {}",
        stderr(&o)
    );
    let k8s_out = dir.path().join("k8s.jsonl");
    let mut args = args;
    args[9] = k8s_out.to_str().unwrap();
    let o = cdr_env(
        &args[..10],
        &[
            ("JOB_COMPLETION_INDEX", "2".into()),
            ("CDR_SHARDS", "4".into()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("flag.shard-2-of-4.jsonl")).unwrap(),
        std::fs::read(dir.path().join("k8s.shard-2-of-4.jsonl")).unwrap()
    );
    // An index without a count is refused before any work.
    let o = cdr_env(&args[..10], &[("JOB_COMPLETION_INDEX", "2".into())]);
    assert!(
        !o.status.success() && stderr(&o).contains("--shards"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn generate_shards_merge_into_the_single_run_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let policy = model("llama_gqa");
    let run = |output: &Path, env: &[(&str, String)]| {
        cdr_env(
            &[
                "generate",
                "--policy",
                &policy,
                "--n",
                "2",
                "--temperature",
                "1.0",
                "--max-new-tokens",
                "6",
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
            ],
            env,
        )
    };
    let single = dir.path().join("single.jsonl");
    let o = run(&single, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let output = dir.path().join("gen.jsonl");
    for i in 0..3 {
        let o = run(
            &output,
            &[
                ("JOB_COMPLETION_INDEX", i.to_string()),
                ("CDR_SHARDS", "3".into()),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = merge(&input, &output, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&single).unwrap()
    );
}

#[test]
fn logprobs_shards_merge_into_the_single_run_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let m = model("llama_gqa");
    let run = |output: &Path, cache: &str, shard: Option<&str>| {
        let mut args = vec![
            "logprobs",
            "--model",
            &m,
            "--cache",
            cache,
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        cdr_env(&args, &[])
    };
    let single = dir.path().join("single.jsonl");
    let cache = dir.path().join("cache-single");
    let o = run(&single, cache.to_str().unwrap(), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let output = dir.path().join("lp.jsonl");
    let shared = dir.path().join("cache-shared");
    for s in ["0/2", "1/2"] {
        let o = run(&output, shared.to_str().unwrap(), Some(s));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = merge(&input, &output, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&single).unwrap()
    );
}

#[test]
fn eval_shards_write_their_own_rows_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let (strong, weak) = (model("llama_gqa"), model("llama_sharded"));
    let output = dir.path().join("eval.jsonl");
    let report = dir.path().join("r.json");
    let mut rows = 0;
    for s in ["0/2", "1/2"] {
        let o = cdr_env(
            &[
                "eval",
                "--strong",
                &strong,
                "--weak",
                &weak,
                "--no-cache",
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
                "--shard",
                s,
            ],
            &[],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let tag = s.replace('/', "-of-");
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("r.shard-{tag}.json"))).unwrap(),
        )
        .unwrap();
        rows += r["rows"].as_u64().unwrap();
    }
    assert_eq!(rows, 48, "the two shards' reports cover every row once");
    assert!(!report.exists());
    let o = merge(&input, &output, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&output).unwrap().lines().count(),
        48
    );
}
