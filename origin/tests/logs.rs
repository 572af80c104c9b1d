//! The origin's plain-text log lines, as an operator reads them: playback tokens and upload
//! signatures never appear (paths say `/p/…redacted…/` and `sig=…redacted…`), and user text
//! with line breaks (a title, a JSON key echoed in an error) stays on its own line.

mod common;

use std::sync::OnceLock;

use common::*;
use origin::config::DEV_CREATOR_TOKEN;
use origin::logs::EscapedFields;
use origin::sign::{PlaybackGrant, Scope};
use tests::logs::Captured;

/// Everything the process logged, formatted by the origin's plain-text format.
fn capture() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("origin=debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        logs
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_tokens_or_signatures_and_no_forged_lines() {
    let logs = capture();
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    let forged = "2030-01-01T00:00:00.000000Z ERROR origin: forged";
    let body = serde_json::json!({
        "title": format!("Cats\n{forged}"), "filename": "clip.mp4", "size": 100, "content_type": "video/mp4"
    });
    let r =
        origin.client.post(origin.url("/v1/videos")).bearer_auth(DEV_CREATOR_TOKEN).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let url = created["upload"]["url"].as_str().unwrap().to_owned();
    let sig = url.split("sig=").nth(1).unwrap().split('&').next().unwrap().to_owned();

    // An unknown JSON key is echoed in the refusal's message.
    let r = origin
        .client
        .post(origin.url("/v1/videos"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .header("content-type", "application/json")
        .body(format!("{{\"x\\n{forged}\": 1}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Requests whose paths and queries carry capabilities, served and refused.
    let location = origin.tus(&created).create(100, false).await;
    assert_eq!(origin.client.head(&location).header("tus-resumable", "1.0.0").send().await.unwrap().status(), 200);
    let grant = PlaybackGrant {
        video: id.clone(),
        expires: origin::api::now_secs() + 600,
        viewer: None,
        scope: Scope::Delivery,
    };
    let token = origin.running.app.signer.playback_token(&grant);
    let key_token = origin.running.app.signer.playback_token(&PlaybackGrant { scope: Scope::Keys, ..grant });
    for path in [format!("/p/{token}/{id}/master.m3u8"), format!("/v1/keys/{id}?token={key_token}")] {
        assert_eq!(origin.client.get(origin.url(&path)).send().await.unwrap().status(), 404, "not ready yet");
    }
    let r = origin.client.post(origin.url(&format!("/p/{token}/{id}/key"))).send().await.unwrap();
    let refusal = r.text().await.unwrap();
    assert!(refusal.contains("no_route") && !refusal.contains(&token), "{refusal}");
    origin.running.stop().await;

    let text = logs.text();
    assert!(!text.contains(&token), "a playback token was logged:\n{text}");
    assert!(!text.contains(&key_token), "a key token was logged:\n{text}");
    assert!(!text.contains(&sig), "an upload signature was logged:\n{text}");
    assert!(text.contains(&format!("/p/…redacted…/{id}/master.m3u8")), "{text}");
    assert!(text.contains("sig=…redacted…"), "{text}");
    assert!(text.contains("title=Cats\\n2030-01-01"), "the title is logged, escaped:\n{text}");
    assert!(text.contains("x\\n2030-01-01"), "the refusal is logged, escaped:\n{text}");
    let forged_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("2030-01-01")).collect();
    assert!(forged_lines.is_empty(), "forged lines: {forged_lines:?}");
}
