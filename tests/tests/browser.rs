//! The pages in a real browser: the origin and one PoP serving the web folder, all in-process,
//! and Debian's Chromium driven by `web/tests/browser.mjs` (playwright-core). A creator
//! uploads a 20 s 1080p clip through `/upload`; a viewer watches it on `/watch/{id}` over
//! HTTP/2 and over HTTP/3 (forced QUIC, certificate pinned by SPKI), switches quality from the
//! menu, and meets the clear pages for an expired token, a video not ready yet, a missing
//! video and a browser without MSE or native HLS.
//!
//! Needs `node`, Chromium and `web/node_modules` (`npm ci --prefix web`). Without them the test
//! is skipped locally, loudly, and fails under CI (`CI` set).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Secrets;
use origin::config::DEV_CREATOR_TOKEN;
use pop_config::token::{PlaybackGrant, Scope, sign_playback};

const SECRETS: Secrets = Secrets { signing_key: "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0" };
/// The whole browser run, transcode included; the script bounds each of its own waits.
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the browser run cannot happen here, if it cannot.
fn missing_tools(web: &Path) -> Option<String> {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node {
        return Some("node not found".into());
    }
    if !chromium().is_file() {
        return Some(format!("no Chromium at {} (set CHROMIUM)", chromium().display()));
    }
    for package in ["playwright-core", "hls.js", "tus-js-client"] {
        if !web.join("node_modules").join(package).is_dir() {
            return Some(format!("web/node_modules/{package} is missing (npm ci --prefix web)"));
        }
    }
    None
}

/// Runs the script, echoing its lines as they come; returns its exit success and its output.
fn run_script(mut command: Command, limit: Duration) -> (bool, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("node starts");
    let echo = |stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[browser] {line}");
                seen.push_str(&line);
                seen.push('\n');
            }
            seen
        })
    };
    let out = echo(Box::new(child.stdout.take().unwrap()));
    let err = echo(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            // The script closes its browsers on SIGTERM; the kill is the backstop.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    match status {
        Some(s) => (s.success(), output),
        None => (false, format!("{output}\nthe browser run took longer than {limit:?} and was stopped")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_upload_play_switch_quality_over_h2_and_h3_in_chromium() {
    let web = workspace().join("web");
    if let Some(why) = missing_tools(&web) {
        assert!(std::env::var_os("CI").is_none(), "{why}: CI must run the browser tests");
        // Straight to stderr, not eprintln!: the test harness swallows a passing test's prints.
        let line = format!("\n*** SKIPPED: browser end-to-end tests not run: {why} ***\n");
        std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).expect("write to stderr");
        return;
    }
    edge::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let origin_url = common::origin_url();
    let mut cfg = SECRETS.pop(&dir.path().join("pop"), &dir.path().join("origin"), &origin_url, "pop-local").await;
    cfg.web = Some(pop_config::Web { dir: web.clone(), key_service: None });
    let pop = edge::start(cfg).await.expect("PoP starts");
    let site = format!("https://127.0.0.1:{}", pop.https.port());
    let h3 = pop.h3.expect("the PoP listens for HTTP/3");

    let config = SECRETS.origin(&dir.path().join("origin"), &origin_url, &site, &site);
    let origin = origin::start(config).await.expect("origin starts");

    let src = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || tests::media::clip(&dir, "clip-1080p.mp4", "1920x1080", 20)
    })
    .await
    .unwrap();

    // A video whose bytes never arrive: the watch page must say it is not ready, and a token
    // for it that expired ten seconds ago must bring the PoP's real `403 token_expired`.
    let later = dir.path().join("later.mp4");
    std::fs::write(&later, [0u8; 1000]).unwrap();
    let creator = origin::client::Client::new(&origin_url, DEV_CREATOR_TOKEN);
    let (pending, _never_used) = creator.create_video("Still uploading", &later).await.expect("a video is created");
    let grant =
        PlaybackGrant { video: pending.clone(), expires: edge::now_secs() - 10, viewer: None, scope: Scope::Delivery };
    let expired = sign_playback(&SECRETS.signer(), &grant);

    let screenshots = std::env::var_os("BROWSER_SCREENSHOTS")
        .map_or_else(|| workspace().join("target/browser-screenshots"), PathBuf::from);
    let mut command = Command::new("node");
    command
        .arg(web.join("tests/browser.mjs"))
        .args(["--base", &site])
        .args(["--h3-port", &h3.port().to_string()])
        .args(["--spki", &pop.spki])
        .arg("--clip")
        .arg(&src)
        .args(["--creator-token", DEV_CREATOR_TOKEN])
        .arg("--screenshots")
        .arg(&screenshots)
        .args(["--pending-video", &pending])
        .args(["--expired-token", &expired])
        .arg("--chromium")
        .arg(chromium());
    // Blocking waits off the runtime's two workers: the origin and the PoP serve the browser.
    let (ok, output) = tokio::task::spawn_blocking(move || run_script(command, RUN_LIMIT)).await.unwrap();
    eprintln!("screenshots: {}", screenshots.display());

    pop.stop().await;
    origin.stop().await;
    let summary = output.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("no summary line");
    assert!(ok && summary.ends_with(" 0 failed"), "browser tests failed: {summary}\n{output}");
}
