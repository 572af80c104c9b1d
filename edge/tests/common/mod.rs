//! Shared pieces of the edge tests: an origin that serves generated objects over real HTTP
//! and counts every fetch, a PoP started in-process on a temp folder, and clients for
//! HTTP/1.1, HTTP/2 and HTTP/3 that trust the PoP's generated certificate.
#![allow(dead_code, unreachable_pub)]

pub mod origin;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use edge::Running;
use pop_config::PopConfig;
use pop_config::token::{PlaybackGrant, Scope, SigningKey};

pub use origin::{ORIGIN_TOKEN, TestOrigin};

/// The playback-token signing key of the test origin; the PoP holds its public half.
pub fn key() -> SigningKey {
    SigningKey::from_seed("t1", b"edge-test-signing-key-0123456789").unwrap()
}

/// A valid token for `video`.
pub fn token(video: &str) -> String {
    pop_config::token::sign_playback(
        &key(),
        &PlaybackGrant {
            video: video.to_owned(),
            expires: edge::now_secs() + 600,
            viewer: None,
            scope: Scope::Delivery,
        },
    )
}

/// `/p/{token}/{video}/{path}`.
pub fn viewer_path(video: &str, path: &str) -> String {
    format!("/p/{}/{video}/{path}", token(video))
}

/// A PoP's configuration for `origin`, cache under `dir`, prefetch off (tests turn it on).
pub fn config(dir: &Path, origin: &str) -> PopConfig {
    let mut c = PopConfig::default_for(dir, origin, ORIGIN_TOKEN, vec![key().public()]);
    c.listen.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    // Tests count origin fetches: nothing is fetched but what they ask for, unless they say so.
    c.prefetch.enabled = false;
    c.prefetch.readahead = 0;
    c.origin.connect_timeout = Duration::from_millis(500);
    c.origin.request_timeout = Duration::from_secs(3);
    c.origin.retries = 1;
    c
}

/// The URL of an origin that refuses connections: a port listened on a moment ago, closed.
pub fn refusing_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A running PoP and clients for it.
pub struct Pop {
    pub running: Running,
    pub h1: reqwest::Client,
    pub h2: reqwest::Client,
}

impl Pop {
    pub async fn start(config: PopConfig) -> Self {
        let running = edge::start(config).await.expect("PoP starts");
        let cert = reqwest::Certificate::from_der(&running.certificate).unwrap();
        let builder = || {
            reqwest::Client::builder()
                .tls_certs_only([cert.clone()])
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(256)
        };
        let h1 = builder().http1_only().build().unwrap();
        let h2 = builder().http2_prior_knowledge().build().unwrap();
        Self { running, h1, h2 }
    }

    /// `https://localhost:{port}{path}` (the development certificate names localhost).
    pub fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running.https.port())
    }

    /// The plain-HTTP listener's URL for `path`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.http.expect("plain HTTP listener"))
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// The metrics page, from the metrics listener.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.running.metrics.expect("metrics listener"));
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// GET over HTTP/1.1: status, `x-cache`, body.
    pub async fn get(&self, path: &str) -> (u16, String, bytes::Bytes) {
        fetch(&self.h1, &self.https(path), &[]).await
    }

    /// One HTTP/3 GET on a fresh QUIC connection.
    pub async fn get_h3(&self, path: &str) -> (http::Response<()>, Vec<u8>) {
        get_h3(self.running.h3.expect("h3 listener"), &self.running.certificate, path).await
    }
}

/// GET with extra headers: status, `x-cache`, body.
pub async fn fetch(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, String, bytes::Bytes) {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = r.status().as_u16();
    let x_cache = r.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, x_cache, r.bytes().await.unwrap())
}

/// A QUIC connection (ALPN h3) to `addr`, trusting `certificate` (DER); the endpoint with it.
pub async fn quic_connect(addr: SocketAddr, certificate: &[u8]) -> (quinn::Endpoint, quinn::Connection) {
    quic_try_connect(addr, certificate).await.expect("QUIC handshake")
}

/// [`quic_connect`], or why the handshake failed.
pub async fn quic_try_connect(
    addr: SocketAddr,
    certificate: &[u8],
) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(certificate.to_vec())).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint.connect(addr, "localhost").unwrap().await?;
    Ok((endpoint, conn))
}

/// One HTTP/3 GET on a fresh QUIC connection to `addr`, trusting `certificate` (DER).
pub async fn get_h3(addr: SocketAddr, certificate: &[u8], path: &str) -> (http::Response<()>, Vec<u8>) {
    let (endpoint, conn) = quic_connect(addr, certificate).await;
    let (mut driver, mut sender) = h3::client::new(h3_quinn::Connection::new(conn)).await.unwrap();
    let drive = tokio::spawn(async move { futures_util::future::poll_fn(|cx| driver.poll_close(cx)).await });
    let uri = format!("https://localhost:{}{path}", addr.port());
    let mut stream = sender.send_request(http::Request::get(uri).body(()).unwrap()).await.unwrap();
    stream.finish().await.unwrap();
    let response = stream.recv_response().await.unwrap();
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    drop(sender);
    drive.abort();
    endpoint.close(0u32.into(), b"done");
    (response, body)
}

/// A metric's value from a Prometheus text page (sum over label sets matching `labels`).
pub fn metric(page: &str, name: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|s| l.contains(s)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn init() {
    edge::init_tls();
    let _ = tracing_subscriber::fmt().with_env_filter("edge=debug").with_test_writer().try_init();
}
