//! A PoP that can check but never grant, and never holds a key: the origin, two PoPs and a
//! recording relay between one PoP and the origin, all real. Whole playbacks through the PoP
//! (HLS AES-128 and DASH cbcs) leave no trace of the content key in anything the PoP got from
//! the origin, wrote to its disk or logged, while the key service answered the viewer
//! directly; everything the PoP's configuration holds forges nothing the origin or the other
//! PoP accepts; a revoked PoP's next pull is refused while the other goes on.

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Secrets, counter};
use origin::client::{Client, UploadPlan};
use origin::config::DEV_CREATOR_TOKEN;
use pop_config::token::{PlaybackGrant, Scope, SigningKey, UploadGrant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRETS: Secrets = Secrets { signing_key: "4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e" };

/// Every byte that crossed a relay, each direction on its own.
#[derive(Default, Clone)]
struct Capture {
    to_origin: Arc<Mutex<Vec<u8>>>,
    to_pop: Arc<Mutex<Vec<u8>>>,
}

/// A TCP relay to `upstream` that keeps a copy of everything it passes on.
async fn relay(upstream: SocketAddr) -> (SocketAddr, Capture) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let capture = Capture::default();
    let kept = capture.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else { continue };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, kept.to_origin.clone()));
            tokio::spawn(pipe(server_read, client_write, kept.to_pop.clone()));
        }
    });
    (at, capture)
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        log.lock().unwrap().extend_from_slice(&buf[..n]);
    }
    let _ = to.shutdown().await;
}

/// The forms a 16-byte key could take in text or binary.
fn spellings(key: &[u8]) -> Vec<Vec<u8>> {
    let hex = pop_config::token::hex(key);
    vec![
        key.to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        URL_SAFE_NO_PAD.encode(key).into_bytes(),
        STANDARD.encode(key).into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out
}

/// The URIs a playlist or manifest names (HLS lines and `URI="..."`; DASH templates expanded).
fn hls_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(i) = line.find("URI=\"") {
            let rest = &line[i + 5..];
            out.push(rest[..rest.find('"').unwrap()].to_owned());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push(line.trim().to_owned());
        }
    }
    out
}

/// Plays a whole HLS tree through the PoP as a player would, except the key, which comes from
/// the key service with the key token: every playlist, init section and segment.
async fn play_hls(http: &reqwest::Client, master: &str) -> usize {
    let base = master.rsplit_once('/').unwrap().0.to_owned();
    let text = http.get(master).send().await.unwrap().text().await.unwrap();
    let mut fetched = 0;
    for playlist in hls_uris(&text).into_iter().filter(|u| u.ends_with(".m3u8")) {
        let url = format!("{base}/{playlist}");
        let dir = url.rsplit_once('/').unwrap().0.to_owned();
        let media = http.get(&url).send().await.unwrap().text().await.unwrap();
        for uri in hls_uris(&media).into_iter().filter(|u| !u.starts_with("http") && !u.starts_with("data:")) {
            let r = http.get(format!("{dir}/{uri}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{dir}/{uri}");
            r.bytes().await.unwrap();
            fetched += 1;
        }
    }
    fetched
}

/// Plays the DASH manifest's every representation: init and each numbered segment.
async fn play_dash(http: &reqwest::Client, mpd_url: &str, segments: usize) -> usize {
    let base = mpd_url.rsplit_once('/').unwrap().0.to_owned();
    let mpd = http.get(mpd_url).send().await.unwrap().text().await.unwrap();
    let attr = |tag: &str, name: &str| -> Vec<String> {
        tag.split(&format!("{name}=\"")).skip(1).map(|s| s[..s.find('"').unwrap()].to_owned()).collect()
    };
    let (inits, medias, ids) = (attr(&mpd, "initialization"), attr(&mpd, "media"), attr(&mpd, "Representation id"));
    assert!(!ids.is_empty() && !inits.is_empty(), "{mpd}");
    let mut fetched = 0;
    for id in &ids {
        let init = inits[0].replace("$RepresentationID$", id);
        let mut urls = vec![format!("{base}/{init}")];
        for n in 0..segments {
            let media = medias[0].replace("$RepresentationID$", id).replace("$Number%05d$", &format!("{n:05}"));
            urls.push(format!("{base}/{media}"));
        }
        for url in urls {
            let r = http.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            r.bytes().await.unwrap();
            fetched += 1;
        }
    }
    fetched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_verifies_but_never_grants_and_never_holds_a_key() {
    let logs = tests::logs::Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(
            "debug,hyper=info,h2=info,quinn=info,rustls=info,sqlx=warn,opendal=info,reqwest=info,hyper_util=info",
        )
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();
    edge::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let origin_url = common::origin_url();
    let origin_dir = dir.path().join("origin");
    let origin_addr: SocketAddr = origin_url.trim_start_matches("http://").parse().unwrap();
    let (relay_at, capture) = relay(origin_addr).await;

    // PoP A pulls through the relay; PoP B directly. Each is configured from a pop.toml.
    let mut config_a =
        SECRETS.pop(&dir.path().join("pop-a"), &origin_dir, &format!("http://{relay_at}"), "pop-a").await;
    config_a.listen.http = Some("127.0.0.1:0".parse().unwrap());
    config_a.prefetch.enabled = false;
    let pop_a = edge::start(config_a.clone()).await.expect("PoP A starts");
    let mut config_b = SECRETS.pop(&dir.path().join("pop-b"), &origin_dir, &origin_url, "pop-b").await;
    config_b.listen.http = Some("127.0.0.1:0".parse().unwrap());
    config_b.prefetch.enabled = false;
    let pop_b = edge::start(config_b.clone()).await.expect("PoP B starts");
    let (a, b) = (format!("http://{}", pop_a.http.unwrap()), format!("http://{}", pop_b.http.unwrap()));

    let mut config = SECRETS.origin(&origin_dir, &origin_url, &a, &a);
    config.on_demand.enabled = false;
    config.protection = encoder::task::Protection::Both;
    let origin = origin::start(config).await.expect("origin starts");
    let http = reqwest::Client::new();

    let src = tests::media::clip(dir.path(), "src.mp4", "640x360", 6);
    let creator = Client::new(&origin_url, DEV_CREATOR_TOKEN);
    let (id, upload) = creator.create_video("keyless", &src).await.unwrap();
    creator.upload(&upload, &src, UploadPlan { chunk: 1 << 20, parallel: 2 }).await.unwrap();
    creator.wait_ready(&id, Duration::from_secs(180)).await.unwrap();

    // The viewer: objects through PoP A, the key and the licence from the key service.
    let playback = creator.playback(&id).await.unwrap();
    let master = playback["master_url"].as_str().unwrap();
    let dash = playback["dash_url"].as_str().expect("a DASH manifest with protection = both");
    assert!(master.starts_with(&a) && dash.starts_with(&a), "{playback}");
    let key = common::content_key(&http, &playback).await;
    let kid = encoder::package::cenc::CencKey::from_content_key(&key[..].try_into().unwrap()).kid;
    let licence: serde_json::Value = http
        .post(playback["licence_url"].as_str().unwrap())
        .bearer_auth(playback["key_token"].as_str().unwrap())
        .json(&serde_json::json!({"kids": [URL_SAFE_NO_PAD.encode(kid)], "type": "temporary"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(licence["keys"][0]["k"].as_str().unwrap()).unwrap(), key);
    let hls_objects = play_hls(&http, master).await;
    let cbcs_master = master.replace("master.m3u8", "cbcs/master.m3u8");
    let cbcs_objects = play_hls(&http, &cbcs_master).await;
    let dash_objects = play_dash(&http, dash, 3).await;
    assert!(hls_objects >= 8 && cbcs_objects >= 8 && dash_objects >= 8, "{hls_objects} {cbcs_objects} {dash_objects}");
    assert_eq!(http.get(format!("{}key", master.trim_end_matches("master.m3u8"))).send().await.unwrap().status(), 404);

    // The key service saw the viewer: what it issued, counted.
    let page = http
        .get(format!("http://{}/metrics", origin.metrics_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(counter(&page, &["origin_keys_total", "kind=\"aes128\"", "outcome=\"issued\""]) >= 1.0, "{page}");
    assert!(counter(&page, &["origin_keys_total", "kind=\"clearkey\"", "outcome=\"issued\""]) >= 1.0, "{page}");

    // Nothing the PoP got from the origin, nothing on its disk, nothing logged holds the key.
    pop_a.stop().await;
    let to_pop = capture.to_pop.lock().unwrap().clone();
    let to_origin = capture.to_origin.lock().unwrap().clone();
    assert!(to_pop.len() > 100_000, "the relay carried the pulls: {} bytes", to_pop.len());
    assert!(!contains(&to_origin, b"/v1/keys"), "the PoP never asked the key service");
    let key_token = playback["key_token"].as_str().unwrap().as_bytes();
    assert!(!contains(&to_origin, key_token), "the key token never went through the PoP");
    let logged = logs.bytes();
    assert!(contains(&logged, b"request"), "the PoP's and origin's logs were captured");
    for form in spellings(&key) {
        assert!(!contains(&to_pop, &form), "key bytes in what the origin sent the PoP");
        for (path, bytes) in files(&dir.path().join("pop-a")) {
            assert!(!contains(&bytes, &form), "key bytes in the PoP's file {path}");
        }
        assert!(!contains(&logged, &form), "key bytes in the logs");
    }

    // Everything PoP B's configuration holds, tried as signing material: refused everywhere.
    let pop_toml = write_pop_toml(&dir.path().join("pop-b"), &config_b);
    let loaded = pop_config::load(&pop_toml).unwrap_or_else(|e| panic!("{e}"));
    let mut material: Vec<Vec<u8>> =
        loaded.tokens.iter().map(|k| pop_config::token::decode_hex(&k.to_hex()).unwrap()).collect();
    material.push(loaded.origin.credential.clone().into_bytes());
    material.push(pop_config::token::decode_hex(loaded.origin.credential.split_once('.').unwrap().1).unwrap());
    for (_, bytes) in files(&dir.path().join("pop-b").join("tls")) {
        material.push(bytes);
    }
    material.push(std::fs::read(&pop_toml).unwrap());
    let now = edge::now_secs();
    let mut tried = 0;
    for m in &material {
        let seed: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, m).as_ref().try_into().unwrap();
        let mut seeds = vec![seed];
        if let Ok(exact) = <[u8; 32]>::try_from(&m[..m.len().min(32)]) {
            seeds.push(exact);
        }
        for seed in seeds {
            for kid in loaded.tokens.iter().map(|k| k.kid.clone()) {
                let forger = SigningKey::from_seed(&kid, &seed).unwrap();
                let grant = |scope| PlaybackGrant { video: id.clone(), expires: now + 600, viewer: None, scope };
                let delivery = pop_config::token::sign_playback(&forger, &grant(Scope::Delivery));
                let keys = pop_config::token::sign_playback(&forger, &grant(Scope::Keys));
                let upload = pop_config::token::sign_upload(
                    &forger,
                    &UploadGrant { video: id.clone(), max_bytes: 1 << 20, expires: now + 600 },
                );
                for url in [
                    format!("{b}/p/{delivery}/{id}/master.m3u8"),
                    format!("{origin_url}/p/{delivery}/{id}/master.m3u8"),
                ] {
                    assert_eq!(
                        http.get(&url).send().await.unwrap().status(),
                        403,
                        "forged delivery token accepted: {url}"
                    );
                }
                let r = http.get(format!("{origin_url}/v1/keys/{id}")).bearer_auth(&keys).send().await.unwrap();
                assert_eq!(r.status(), 403, "forged key token accepted");
                for base in [&b, &origin_url] {
                    let r = http
                        .post(format!("{base}/v1/uploads?{upload}"))
                        .header("tus-resumable", "1.0.0")
                        .header("upload-length", "10")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 403, "forged upload URL accepted at {base}");
                }
                tried += 1;
            }
        }
    }
    assert!(tried >= material.len(), "every piece was tried");

    // Revocation: PoP A's next pull is refused at once; PoP B goes on.
    let app = &origin.app;
    assert!(app.pops.set_pop_enabled("pop-a", false, origin::meta::now()).await.unwrap());
    let r = http
        .get(format!("{origin_url}/v1/objects/{id}/240p/index.m3u8"))
        .bearer_auth(&config_a.origin.credential)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "pop_revoked");
    let r = http.get(master.replace(&a, &b).replace("master.m3u8", "360p/seg_00001.m4s")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the other PoP goes on");
    origin.stop().await;
}

/// The PoP's configuration as its operator would write it, from what it was started with.
fn write_pop_toml(dir: &Path, c: &pop_config::PopConfig) -> std::path::PathBuf {
    let path = dir.join("pop.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "[pop]\nid = \"{}\"\n[origin]\nurls = {:?}\ncredential = \"{}\"",
        c.pop.id, c.origin.urls, c.origin.credential
    )
    .unwrap();
    for k in &c.tokens {
        writeln!(f, "[[tokens]]\nkid = \"{}\"\npublic_key = \"{}\"", k.kid, k.to_hex()).unwrap();
    }
    writeln!(f, "[cache]\npath = \"{}\"", dir.display()).unwrap();
    path
}
