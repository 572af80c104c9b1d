//! Architecture invariants that a compiler cannot see: the dependency direction between
//! workspace crates. Each check asks cargo for the crate's real (feature-resolved) graph.

use std::process::Command;

/// Every package in `krate`'s normal and build dependency graph.
fn dependencies(krate: &str, extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--quiet",
            "--offline",
            "-p",
            krate,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree -p {krate}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

const MEDIA: [&str; 4] = ["ffmpeg-next", "ffmpeg-sys-next", "mp4", "mp4-atom"];
const DATABASES: [&str; 8] =
    ["sqlx", "sqlx-core", "rusqlite", "libsqlite3-sys", "postgres", "tokio-postgres", "redis", "diesel"];

#[test]
fn edge_knows_nothing_of_media_databases_or_the_origin() {
    let deps = dependencies("edge", &[]);
    for banned in ["origin", "encoder"].iter().chain(MEDIA.iter()).chain(DATABASES.iter()) {
        assert!(!deps.iter().any(|d| d == banned), "edge depends on {banned}: {deps:?}");
    }
}

#[test]
fn pop_config_and_loadtest_are_leaves() {
    for krate in ["pop-config", "loadtest"] {
        let deps = dependencies(krate, &[]);
        for workspace in ["origin", "encoder", "edge", "pop-config", "loadtest"].iter().filter(|w| **w != krate) {
            assert!(!deps.iter().any(|d| d == workspace), "{krate} depends on {workspace}");
        }
    }
}

#[test]
fn an_api_only_origin_links_no_ffmpeg() {
    // Built without its `workers` feature the origin is a stateless API server that hands
    // every task to remote workers, so it must not pull FFmpeg in.
    let deps = dependencies("origin", &["--no-default-features"]);
    for banned in ["ffmpeg-next", "ffmpeg-sys-next", "edge"] {
        assert!(!deps.iter().any(|d| d == banned), "origin without workers depends on {banned}");
    }
    assert!(dependencies("origin", &[]).iter().any(|d| d == "ffmpeg-next"), "in-process workers encode");
}

#[test]
fn the_check_sees_ffmpeg_where_it_is() {
    assert!(dependencies("encoder", &[]).iter().any(|d| d == "ffmpeg-next"));
    let contract_only = dependencies("encoder", &["--no-default-features"]);
    assert!(!contract_only.iter().any(|d| d == "ffmpeg-next"), "encoder without `ffmpeg` still links FFmpeg");
}
