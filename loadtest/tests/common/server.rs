//! The stand-in PoP + origin used by the harness tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use http::{Method, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The creator token uploads must carry.
pub const CREATOR_TOKEN: &str = "creator-secret";

/// What the server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Viewer requests (`/p/...`).
    pub requests: AtomicU64,
    /// Viewer body bytes sent.
    pub bytes: AtomicU64,
    /// `x-cache: hit-memory` answers.
    pub hits: AtomicU64,
    /// `x-cache: miss` answers.
    pub misses: AtomicU64,
    /// Bytes sent on misses: what an origin behind this PoP would have served.
    pub miss_bytes: AtomicU64,
    /// Viewer requests by HTTP version.
    pub versions: Mutex<HashMap<String, u64>>,
    /// Key requests.
    pub keys: AtomicU64,
    /// Objects already asked for (the "cache").
    cached: Mutex<HashMap<String, u64>>,
    /// tus uploads: id → bytes received.
    pub uploads: Mutex<Vec<u64>>,
    /// Completed uploads' lengths, as declared.
    pub upload_lengths: Mutex<Vec<u64>>,
}

/// Shared state.
#[derive(Debug)]
pub struct State {
    pub root: PathBuf,
    pub seen: Seen,
    /// Content steering: multivariant playlists carry `EXT-X-CONTENT-STEERING` with this
    /// SERVER-URI (and every variant `PATHWAY-ID="home"`).
    pub steering_uri: Mutex<Option<String>>,
    /// The steering manifest `GET /v1/steering/{id}` answers.
    pub manifest: Mutex<serde_json::Value>,
    /// The query strings steering manifests were asked with.
    pub manifest_queries: Mutex<Vec<String>>,
    /// Viewer requests answer 503 (a PoP failing).
    pub failing: AtomicBool,
    /// Where playback grants are issued (nothing listens there by default).
    pub issue_at: Mutex<String>,
}

/// A running server: plain, TLS and h3 listeners over the same state.
pub struct Server {
    pub state: Arc<State>,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub h3: SocketAddr,
    pub certificate_pem: String,
    pub certificate_der: Vec<u8>,
}

impl Server {
    pub async fn start(root: PathBuf) -> Self {
        let state = Arc::new(State {
            root,
            seen: Seen::default(),
            steering_uri: Mutex::new(None),
            manifest: Mutex::new(serde_json::json!({"VERSION": 1})),
            manifest_queries: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
            issue_at: Mutex::new(ELSEWHERE.to_owned()),
        });
        let (der, key, pem) = super::certificate();
        let plain = serve_tcp(state.clone(), None).await;
        let tls = serve_tcp(state.clone(), Some(tls_config(&der, &key, &[b"h2", b"http/1.1"]))).await;
        let h3 = serve_h3(state.clone(), tls_config(&der, &key, &[b"h3"])).await;
        Self { state, plain, tls, h3, certificate_pem: pem, certificate_der: der }
    }

    pub fn seen(&self) -> &Seen {
        &self.state.seen
    }
}

fn tls_config(der: &[u8], key: &[u8], alpn: &[&[u8]]) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(der.to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into()),
        )
        .unwrap();
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    c
}

async fn serve_tcp(state: Arc<State>, tls: Option<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (state, acceptor) = (state.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(handle(&state, &parts, body).map(Full::new))
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(a) => {
                        let Ok(tls) = a.accept(tcp).await else { return };
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    addr
}

async fn serve_h3(state: Arc<State>, tls: rustls::ServerConfig) -> SocketAddr {
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let endpoint =
        quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(quic)), "127.0.0.1:0".parse().unwrap())
            .unwrap();
    let addr = endpoint.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok(mut h3c) = h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await else {
                    return;
                };
                while let Ok(Some(resolver)) = h3c.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok((req, mut stream)) = resolver.resolve_request().await else { return };
                        let mut body = Vec::new();
                        while let Ok(Some(mut chunk)) = stream.recv_data().await {
                            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
                        }
                        let (parts, ()) = req.into_parts();
                        let response = handle(&state, &parts, body.into());
                        let (head, body) = response.into_parts();
                        if stream.send_response(Response::from_parts(head, ())).await.is_err() {
                            return;
                        }
                        if !body.is_empty() {
                            let _ = stream.send_data(body).await;
                        }
                        let _ = stream.finish().await;
                    });
                }
            });
        }
    });
    addr
}

fn respond(status: StatusCode, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response<Bytes> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(body.into()).unwrap()
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Bytes> {
    respond(status, &[("content-type", "application/json".into())], value.to_string())
}

/// Where the harness is told the origin lives in issued URLs: nothing listens there, so
/// only a harness that moves URLs onto its target succeeds.
const ELSEWHERE: &str = "http://127.0.0.1:9";

fn handle(state: &State, req: &http::request::Parts, body: Bytes) -> Response<Bytes> {
    let path = req.uri.path().to_owned();
    let query = req.uri.query().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let seen = &state.seen;
    match (&req.method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => respond(
            StatusCode::OK,
            &[],
            format!(
                "# TYPE origin_served_bytes counter\norigin_served_bytes_total {}\n",
                seen.miss_bytes.load(Ordering::SeqCst)
            ),
        ),
        (&Method::GET, ["v1", "videos"]) => {
            let videos = if query.contains("offset=0") {
                serde_json::json!([
                    {"id": "vid", "state": "ready"},
                    {"id": "busy", "state": "processing"},
                    {"id": "two", "state": "ready"},
                ])
            } else {
                serde_json::json!([])
            };
            json(StatusCode::OK, serde_json::json!({ "videos": videos, "limit": 100, "offset": 0 }))
        }
        (&Method::POST, ["v1", "videos", id, "playback"]) => json(
            StatusCode::OK,
            serde_json::json!({
                "token": "tok",
                "expires_at": 4_000_000_000u64,
                "master_url": format!("{}/p/tok-{id}/{id}/master.m3u8", state.issue_at.lock().unwrap()),
            }),
        ),
        (&Method::POST, ["v1", "videos"]) => {
            let auth = req.headers.get("authorization").and_then(|v| v.to_str().ok());
            if auth != Some(&format!("Bearer {CREATOR_TOKEN}")) {
                return json(StatusCode::UNAUTHORIZED, serde_json::json!({"error": {"code": "unauthenticated"}}));
            }
            let asked: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(asked["size"].as_u64().unwrap() > 0 && asked["content_type"] == "video/mp4");
            json(
                StatusCode::CREATED,
                serde_json::json!({
                    "video": {"id": "up"},
                    "upload": {"url": format!("{ELSEWHERE}/v1/uploads?sig=ok"), "protocol": "tus/1.0.0"},
                }),
            )
        }
        (&Method::POST, ["v1", "uploads"]) => {
            if query != "sig=ok" || header(req, "tus-resumable") != Some("1.0.0") {
                return respond(StatusCode::FORBIDDEN, &[], "");
            }
            let length: u64 = header(req, "upload-length").and_then(|v| v.parse().ok()).unwrap();
            let mut uploads = seen.uploads.lock().unwrap();
            uploads.push(0);
            seen.upload_lengths.lock().unwrap().push(length);
            let location = format!("{ELSEWHERE}/v1/uploads/{}?sig=ok", uploads.len() - 1);
            respond(StatusCode::CREATED, &[("location", location), ("tus-resumable", "1.0.0".into())], "")
        }
        (&Method::PATCH | &Method::HEAD, ["v1", "uploads", n]) => {
            let n: usize = n.parse().unwrap();
            let mut uploads = seen.uploads.lock().unwrap();
            if req.method == Method::PATCH {
                let offset: u64 = header(req, "upload-offset").and_then(|v| v.parse().ok()).unwrap();
                if offset != uploads[n] || header(req, "content-type") != Some("application/offset+octet-stream") {
                    return respond(StatusCode::CONFLICT, &[], "");
                }
                uploads[n] += body.len() as u64;
                return respond(StatusCode::NO_CONTENT, &[("upload-offset", uploads[n].to_string())], "");
            }
            respond(StatusCode::OK, &[("upload-offset", uploads[n].to_string())], "")
        }
        (&Method::GET, ["v1", "steering", _id]) => {
            state.manifest_queries.lock().unwrap().push(query.to_owned());
            json(StatusCode::OK, state.manifest.lock().unwrap().clone())
        }
        (&Method::GET, ["p", _token, video, rest @ ..]) => {
            seen.requests.fetch_add(1, Ordering::SeqCst);
            if state.failing.load(Ordering::SeqCst) {
                return respond(StatusCode::SERVICE_UNAVAILABLE, &[], "");
            }
            *seen.versions.lock().unwrap().entry(version(req.version)).or_default() += 1;
            if rest == ["key"] {
                seen.keys.fetch_add(1, Ordering::SeqCst);
                seen.bytes.fetch_add(16, Ordering::SeqCst);
                return respond(StatusCode::OK, &[("cache-control", "no-store".into())], vec![7u8; 16]);
            }
            let file = rest.iter().fold(state.root.clone(), |p, s| p.join(s));
            let Ok(mut bytes) = std::fs::read(&file) else { return respond(StatusCode::NOT_FOUND, &[], "") };
            if let (["master.m3u8"], Some(uri)) = (rest, state.steering_uri.lock().unwrap().as_ref()) {
                bytes = steer(&String::from_utf8_lossy(&bytes), uri).into_bytes();
            }
            seen.bytes.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            let first = {
                let mut cached = seen.cached.lock().unwrap();
                let n = cached.entry(format!("{video}/{}", rest.join("/"))).or_default();
                *n += 1;
                *n == 1
            };
            let verdict = if first {
                seen.misses.fetch_add(1, Ordering::SeqCst);
                seen.miss_bytes.fetch_add(bytes.len() as u64, Ordering::SeqCst);
                "miss"
            } else {
                seen.hits.fetch_add(1, Ordering::SeqCst);
                "hit-memory"
            };
            respond(StatusCode::OK, &[("x-cache", verdict.into())], bytes)
        }
        _ => respond(StatusCode::NOT_FOUND, &[], ""),
    }
}

/// A multivariant playlist tagged as the origin tags it (`origin::steering::tag::hls`).
fn steer(playlist: &str, server_uri: &str) -> String {
    let mut out = String::new();
    for line in playlist.lines() {
        out.push_str(line);
        if line.starts_with("#EXT-X-STREAM-INF:") {
            out.push_str(",PATHWAY-ID=\"home\"");
        }
        out.push('\n');
        if line == "#EXTM3U" {
            out.push_str(&format!("#EXT-X-CONTENT-STEERING:SERVER-URI=\"{server_uri}\",PATHWAY-ID=\"home\"\n"));
        }
    }
    out
}

fn header<'a>(req: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn version(v: Version) -> String {
    format!("{v:?}")
}
