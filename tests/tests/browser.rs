//! The pages in a real browser: the origin and one PoP serving the web folder, all in-process,
//! and Debian's Chromium driven by playwright-core.
//!
//! `web/tests/browser.mjs`: a creator uploads a 20 s 1080p clip through `/upload`; a viewer
//! watches it on `/watch/{id}` over HTTP/2 and over HTTP/3 (forced QUIC, certificate pinned by
//! SPKI), switches quality from the menu, and meets the clear pages for an expired token, a
//! video not ready yet, a missing video and a browser without MSE or native HLS.
//!
//! `web/tests/accounts.mjs`, in English, Korean and Arabic: people sign up on `/account`, a
//! creator uploads to their channel under the session and makes the video private, another
//! person meets the private-video page until it is shared with them, plays it (the view
//! counts after 10 s), reports it; a moderator (promoted with the bootstrap token) takes it
//! down from `/moderation`, and the creator reads the decision and its note on `/account`.
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
/// The accounts run: three languages, one short clip uploaded and transcoded in each.
const ACCOUNTS_RUN_LIMIT: Duration = Duration::from_secs(240);

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

/// Whether the browser run can happen here; `None` (after saying why, loudly) when it cannot
/// outside CI. Under CI a missing tool is a failure.
fn web_folder() -> Option<PathBuf> {
    let web = workspace().join("web");
    if let Some(why) = missing_tools(&web) {
        assert!(std::env::var_os("CI").is_none(), "{why}: CI must run the browser tests");
        // Straight to stderr, not eprintln!: the test harness swallows a passing test's prints.
        let line = format!("\n*** SKIPPED: browser end-to-end tests not run: {why} ***\n");
        std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).expect("write to stderr");
        return None;
    }
    Some(web)
}

/// An origin and one PoP serving the web folder, in-process, in a temporary folder.
struct Site {
    dir: tempfile::TempDir,
    origin_url: String,
    /// The PoP's HTTPS address, as the browser reaches it.
    base: String,
    pop: edge::Running,
    origin: origin::Running,
}

impl Site {
    /// Starts both; `configure` may change the origin's configuration first.
    async fn start(web: &Path, configure: impl FnOnce(&mut origin::Config)) -> Self {
        edge::init_tls();
        let dir = tempfile::tempdir().unwrap();
        let origin_url = common::origin_url();
        let mut cfg = SECRETS.pop(&dir.path().join("pop"), &dir.path().join("origin"), &origin_url, "pop-local").await;
        cfg.web = Some(pop_config::Web { dir: web.to_owned(), key_service: None });
        let pop = edge::start(cfg).await.expect("PoP starts");
        let base = format!("https://127.0.0.1:{}", pop.https.port());
        let mut config = SECRETS.origin(&dir.path().join("origin"), &origin_url, &base, &base);
        configure(&mut config);
        let origin = origin::start(config).await.expect("origin starts");
        Self { dir, origin_url, base, pop, origin }
    }

    async fn stop(self) {
        self.pop.stop().await;
        self.origin.stop().await;
    }
}

fn screenshots() -> PathBuf {
    std::env::var_os("BROWSER_SCREENSHOTS")
        .map_or_else(|| workspace().join("target/browser-screenshots"), PathBuf::from)
}

/// Runs a browser script off the runtime's workers (the origin and the PoP serve the browser
/// meanwhile): its exit success and its output.
async fn run_browser(command: Command, limit: Duration) -> (bool, String) {
    let outcome = tokio::task::spawn_blocking(move || run_script(command, limit)).await.unwrap();
    eprintln!("screenshots: {}", screenshots().display());
    outcome
}

/// Asserts a script's run succeeded and its summary line says nothing failed.
fn assert_passed((ok, output): (bool, String)) {
    let summary = output.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("no summary line");
    assert!(ok && summary.ends_with(" 0 failed"), "browser tests failed: {summary}\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_upload_play_switch_quality_over_h2_and_h3_in_chromium() {
    let Some(web) = web_folder() else { return };
    let site = Site::start(&web, |_| {}).await;
    let h3 = site.pop.h3.expect("the PoP listens for HTTP/3");

    let src = tokio::task::spawn_blocking({
        let dir = site.dir.path().to_owned();
        move || tests::media::clip(&dir, "clip-1080p.mp4", "1920x1080", 20)
    })
    .await
    .unwrap();

    // A video whose bytes never arrive: the watch page must say it is not ready, and a token
    // for it that expired ten seconds ago must bring the PoP's real `403 token_expired`.
    let later = site.dir.path().join("later.mp4");
    std::fs::write(&later, [0u8; 1000]).unwrap();
    let creator = origin::client::Client::new(&site.origin_url, DEV_CREATOR_TOKEN);
    let (pending, _never_used) = creator.create_video("Still uploading", &later).await.expect("a video is created");
    let grant =
        PlaybackGrant { video: pending.clone(), expires: edge::now_secs() - 10, viewer: None, scope: Scope::Delivery };
    let expired = sign_playback(&SECRETS.signer(), &grant);

    let mut command = Command::new("node");
    command
        .arg(web.join("tests/browser.mjs"))
        .args(["--base", &site.base])
        .args(["--h3-port", &h3.port().to_string()])
        .args(["--spki", &site.pop.spki])
        .arg("--clip")
        .arg(&src)
        .args(["--creator-token", DEV_CREATOR_TOKEN])
        .arg("--screenshots")
        .arg(screenshots())
        .args(["--pending-video", &pending])
        .args(["--expired-token", &expired])
        .arg("--chromium")
        .arg(chromium());
    let outcome = run_browser(command, RUN_LIMIT).await;
    site.stop().await;
    assert_passed(outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_private_share_report_takedown_in_chromium_en_ko_ar() {
    let Some(web) = web_folder() else { return };
    // Short and small: it is transcoded once per language. Longer than the 10 s of playback
    // after which a view counts.
    let clips = tempfile::tempdir().unwrap();
    let src = tokio::task::spawn_blocking({
        let dir = clips.path().to_owned();
        move || tests::media::clip(&dir, "clip-360p.mp4", "640x360", 14)
    })
    .await
    .unwrap();
    // Room for one such clip a day and not two, so a second upload meets `429 quota_day`.
    let size = std::fs::metadata(&src).unwrap().len();
    let site = Site::start(&web, |config| config.accounts.quota_day_bytes = size * 3 / 2).await;

    let mut command = Command::new("node");
    command
        .arg(web.join("tests/accounts.mjs"))
        .args(["--base", &site.base])
        .args(["--spki", &site.pop.spki])
        .arg("--clip")
        .arg(&src)
        .args(["--creator-token", DEV_CREATOR_TOKEN])
        .arg("--screenshots")
        .arg(screenshots())
        .args(["--locales", "en,ko,ar"])
        .args(["--day-quota", "one-clip"])
        .arg("--chromium")
        .arg(chromium());
    let outcome = run_browser(command, ACCOUNTS_RUN_LIMIT).await;
    site.stop().await;
    assert_passed(outcome);
}
