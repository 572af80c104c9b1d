//! Webhooks go only to public addresses: every reserved class is refused when the URL is
//! set (literal and resolved), a refused address is refused again when a delivery connects
//! (so a name that resolves elsewhere later gets nowhere), redirects are not followed, and
//! a target the operator allowed still receives signed deliveries.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use origin::Config;
use origin::config::DEV_CREATOR_TOKEN;
use origin::outbound::{Outbound, is_refusal};

/// A receiver on 127.0.0.1 that answers every request with `response` and records the
/// connections and the (timestamp, signature, body) of each request.
struct Receiver {
    url: String,
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Receiver {
    fn start(response: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, record) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let (mut len, mut ts, mut sig) = (0usize, String::new(), String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end().to_owned();
                    if line.is_empty() {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    let value = || line.split_once(':').unwrap().1.trim().to_owned();
                    if lower.starts_with("content-length:") {
                        len = value().parse().unwrap();
                    } else if lower.starts_with("x-webhook-timestamp:") {
                        ts = value();
                    } else if lower.starts_with("x-webhook-signature:") {
                        sig = value();
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_ok() {
                    record.lock().unwrap().push((ts, sig, String::from_utf8_lossy(&body).into_owned()));
                }
                let _ = conn.write_all(response.as_bytes());
            }
        });
        Self { url: format!("http://127.0.0.1:{port}/hook"), port, connections, requests }
    }

    fn ok() -> Self {
        Self::start("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into())
    }
}

async fn put_webhook(origin: &TestOrigin, url: &str) -> (u16, serde_json::Value) {
    let r = origin
        .client
        .put(origin.url("/v1/webhook"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A video that fails at once (not media), so a `video.failed` delivery is queued.
async fn fail_a_video(origin: &TestOrigin) -> String {
    let data = b"not a video at all\n".repeat(100);
    let created = origin.create_video("fails", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 4096).await;
    origin.wait_state(&id, "failed", 60).await;
    id
}

async fn metric(origin: &TestOrigin, line: &str) -> bool {
    let at = origin.running.metrics_addr.unwrap();
    let page = reqwest::get(format!("http://{at}/metrics")).await.unwrap().text().await.unwrap();
    page.lines().any(|l| l == line)
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_reserved_addresses_are_refused_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    for (url, class) in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.1:6379/", "loopback"),
        ("http://localhost:6379/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://172.20.1.1/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("http://100.100.100.200/hook", "shared (CGNAT)"),
        ("http://[fd12:3456::1]/hook", "unique-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0:8080/", "unspecified (this network)"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.251/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://198.51.100.7/", "documentation"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f.1/", "loopback"),
    ] {
        let (status, body) = put_webhook(&origin, url).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("target_refused")), "{url}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(class), "{url}: {body}");
    }
    let (status, body) = put_webhook(&origin, "http://no-such-host.invalid/hook").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("target_unresolvable")), "{body}");
    let (status, body) = put_webhook(&origin, "gopher://example.com/").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_url")), "{body}");
    // A public address is fine (nothing is sent now).
    let (status, body) = put_webhook(&origin, "http://93.184.216.34/hook").await;
    assert_eq!(status, 200, "{body}");
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_target_gets_signed_deliveries_and_its_redirects_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = Receiver::ok();
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        elsewhere.url
    );
    let hook = Receiver::start(redirect);
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.webhook_allow = vec!["127.0.0.1/32".parse().unwrap()];
    let origin = TestOrigin::start_with(config).await;
    let (status, body) = put_webhook(&origin, &hook.url).await;
    assert_eq!(status, 200, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();

    let id = fail_a_video(&origin).await;
    eventually("a delivery reaches the allowed target", async || !hook.requests.lock().unwrap().is_empty()).await;
    let (ts, sig, body) = hook.requests.lock().unwrap()[0].clone();
    let expected = origin::sign::Signer::webhook_signature(&secret, ts.parse().unwrap(), body.as_bytes());
    assert_eq!(sig, format!("sha256={expected}"), "signed");
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((event["event"].as_str(), event["video"]["id"].as_str()), (Some("video.failed"), Some(id.as_str())));
    eventually("the redirect counts as not delivered", async || {
        metric(&origin, "origin_webhook_deliveries_total{outcome=\"retry\"} 1").await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0, "the redirect was followed");
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_a_refused_address_is_refused_at_send_time() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::ok();
    let by_name = format!("http://localhost:{}/hook", hook.port);

    // The client itself: its resolver drops refused addresses, so it never connects.
    let policy = Outbound::new(Vec::new());
    let client = policy.client(Duration::from_secs(5));
    let err = policy.post(&client, &by_name).unwrap().send().await.unwrap_err();
    assert!(is_refusal(&err), "{err:?}");
    assert_eq!(policy.post(&client, &hook.url).unwrap_err().code(), "target_refused", "a literal one, before sending");
    assert_eq!(hook.connections.load(Ordering::SeqCst), 0);

    // Through the origin: the URL was allowed when it was set; the operator has since
    // removed the allowance, as a rebinding name would have moved. Nothing reaches it.
    let data = dir.path().join("data");
    let mut config = Config::for_dir(&data);
    config.webhook_allow = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let origin = TestOrigin::start_with(config).await;
    assert_eq!(put_webhook(&origin, &by_name).await.0, 200);
    origin.running.stop().await;
    let origin = TestOrigin::start(&data).await;
    fail_a_video(&origin).await;
    eventually("the delivery is refused", async || {
        metric(&origin, "origin_webhook_deliveries_total{outcome=\"refused\"} 1").await
    })
    .await;
    assert_eq!(hook.connections.load(Ordering::SeqCst), 0, "a refused target was connected to");
    origin.running.stop().await;
}
