//! `loadtest synth-trace` and `loadtest replay` through the command itself: a small synthetic
//! catalogue replayed at 5 % of its size must rank the policies as the theory does, and a
//! trace of two PoPs is replayed per PoP.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn loadtest(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadtest")).args(args).current_dir(dir).output().unwrap()
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// `policy` → byte hit ratio, for one PoP of `replay --json`.
fn byte_ratio(pop: &Value, policy: &str) -> Option<f64> {
    let rows = pop["policies"].as_array().unwrap();
    rows.iter().find(|r| r["policy"] == policy).unwrap()["byte_hit_ratio"].as_f64()
}

#[test]
fn a_synthetic_trace_ranks_lru_below_s3fifo_below_belady() {
    let dir = tempfile::tempdir().unwrap();
    // 200 titles x 10 segments x 1 KiB = 2000 KiB; 5 % of it is 100 KiB.
    for alpha in ["0.9", "0.7"] {
        let said = ok(loadtest(
            &[
                "synth-trace",
                "--out",
                "synth.tsv",
                "--alpha",
                alpha,
                "--videos",
                "200",
                "--segments",
                "10",
                "--segment-bytes",
                "1KiB",
                "--abandon-mean",
                "4",
                "--requests",
                "20000",
                "--viewers",
                "20",
                "--seed",
                "3",
            ],
            dir.path(),
        ));
        assert!(said.contains("20000 requests") && said.contains("102400 bytes"), "{said}");
        let json: Value =
            serde_json::from_str(&ok(loadtest(&["replay", "synth.tsv", "--cache", "100KiB", "--json"], dir.path())))
                .unwrap();
        assert_eq!(json["capacity"], 102_400);
        let pop = &json["pops"][0];
        assert_eq!((pop["pop"].as_str(), pop["requests"].as_u64()), (Some("synth"), Some(20_000)));
        let [lru, s3, belady] = ["LRU", "S3-FIFO", "Belady"].map(|p| byte_ratio(pop, p).unwrap());
        assert!(lru <= s3 && s3 <= belady, "alpha {alpha}: LRU {lru} S3-FIFO {s3} Belady {belady}");
        assert!(belady - lru > 0.1, "alpha {alpha}: the optimum is well above LRU ({lru} vs {belady})");
        assert_eq!(byte_ratio(pop, "PoP (x-cache)"), None, "a synthetic trace has no PoP answers");
    }
    // The same as a table.
    let table = ok(loadtest(&["replay", "synth.tsv", "--cache", "100KiB"], dir.path()));
    for row in ["LRU", "S3-FIFO", "Belady", "PoP (x-cache)", "byte hits"] {
        assert!(table.contains(row), "{table}");
    }
}

#[test]
fn each_pop_of_a_trace_is_replayed_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "at_ms\tserver\tkey\tbytes\tx_cache",
        "0\tpop-a:8443\t/v/seg_1.m4s\t100\tmiss",
        "1\tpop-b:8443\t/v/seg_1.m4s\t100\tmiss",
        "2\tpop-a:8443\t/v/seg_1.m4s\t100\thit-memory",
        "3\tpop-a:8443\t/v/seg_2.m4s\t100\tmiss",
        "4\tpop-a:8443\t/v/seg_2.m4s\t100\thit-disk",
    ];
    std::fs::write(dir.path().join("run.tsv"), lines.join("\n") + "\n").unwrap();
    let all: Value =
        serde_json::from_str(&ok(loadtest(&["replay", "run.tsv", "--cache", "1MiB", "--json"], dir.path()))).unwrap();
    let pops: Vec<_> = all["pops"].as_array().unwrap().iter().map(|p| p["pop"].as_str().unwrap()).collect();
    assert_eq!(pops, ["pop-a:8443", "pop-b:8443"]);
    // pop-a: 2 hits of 4 requests, by the PoP and by every policy with room for everything.
    for policy in ["PoP (x-cache)", "LRU", "S3-FIFO", "Belady"] {
        assert_eq!(byte_ratio(&all["pops"][0], policy), Some(0.5), "{policy}");
    }
    let only: Value = serde_json::from_str(&ok(loadtest(
        &["replay", "run.tsv", "--cache", "1MiB", "--json", "--pop", "pop-b:8443"],
        dir.path(),
    )))
    .unwrap();
    assert_eq!(only["pops"].as_array().unwrap().len(), 1);
    assert_eq!(byte_ratio(&only["pops"][0], "PoP (x-cache)"), Some(0.0));

    let unknown = loadtest(&["replay", "run.tsv", "--cache", "1MiB", "--pop", "pop-c:1"], dir.path());
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("pop-a:8443, pop-b:8443"));
    let bad_size = loadtest(&["replay", "run.tsv", "--cache", "lots"], dir.path());
    assert!(!bad_size.status.success());
    let bad_spec = loadtest(&["synth-trace", "--out", "x.tsv", "--videos", "0"], dir.path());
    assert!(String::from_utf8_lossy(&bad_spec.stderr).contains("--videos"));
}
