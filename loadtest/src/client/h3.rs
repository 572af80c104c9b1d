//! HTTP/3 with quinn and h3: one QUIC endpoint (UDP socket) for the whole run, and one QUIC
//! connection per viewer (or per shared slot), opened at its first request.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use h3::client::SendRequest;
use reqwest::Url;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{FetchError, Fetched, Get};
use crate::error::{Error, Result};

/// The endpoint and where it connects.
#[derive(Debug)]
pub struct Quic {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    server: SocketAddr,
    server_name: String,
}

impl Quic {
    /// Resolves `target` once and binds a UDP socket of the same address family.
    pub async fn new(tls: rustls::ClientConfig, target: &Url) -> Result<Self> {
        let host = target.host_str().ok_or_else(|| Error::Usage("--target has no host".into()))?;
        let port = target.port_or_known_default().unwrap_or(443);
        let server = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| Error::Usage(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| Error::Usage(format!("{host} has no address")))?;
        let local: SocketAddr =
            if server.is_ipv6() { "[::]:0".parse() } else { "0.0.0.0:0".parse() }.expect("a socket address literal");
        let endpoint =
            quinn::Endpoint::client(local).map_err(|e| Error::Tls(format!("cannot open a UDP socket: {e}")))?;
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::Tls(format!("TLS configuration unusable for QUIC: {e}")))?;
        let config = quinn::ClientConfig::new(Arc::new(quic));
        Ok(Self { endpoint, config, server, server_name: host.trim_matches(['[', ']']).to_owned() })
    }
}

type Sender = SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One QUIC connection with its h3 driver.
#[derive(Debug)]
pub struct H3Connection {
    quic: Arc<Quic>,
    live: Mutex<Option<Live>>,
}

struct Live {
    sender: Sender,
    connection: quinn::Connection,
    driver: JoinHandle<()>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("remote", &self.connection.remote_address()).finish_non_exhaustive()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
        self.connection.close(0u32.into(), b"viewer left");
    }
}

impl H3Connection {
    /// Not connected until the first request.
    pub fn new(quic: Arc<Quic>) -> Self {
        Self { quic, live: Mutex::new(None) }
    }

    async fn sender(&self, start: Instant) -> Result<Sender, FetchError> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref()
            && l.connection.close_reason().is_none()
        {
            return Ok(l.sender.clone());
        }
        let fail =
            |kind, e: &dyn std::fmt::Display| FetchError { kind, message: e.to_string(), elapsed: start.elapsed() };
        let q = &self.quic;
        let connecting =
            q.endpoint.connect_with(q.config.clone(), q.server, &q.server_name).map_err(|e| fail("connect", &e))?;
        let connection = connecting.await.map_err(|e| {
            let kind = if matches!(e, quinn::ConnectionError::TransportError(_)) { "tls" } else { "connect" };
            fail(kind, &e)
        })?;
        let (mut driver, sender) =
            h3::client::new(h3_quinn::Connection::new(connection.clone())).await.map_err(|e| fail("h3", &e))?;
        let driver = tokio::spawn(async move {
            let _ = futures_util::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        *live = Some(Live { sender: sender.clone(), connection, driver });
        Ok(sender)
    }

    /// One GET, timed from `start` (including the handshake when this is the first).
    ///
    /// A failed request does not drop the connection: a stream error leaves the other streams
    /// on it (the viewer's audio, or other viewers with shared connections) running, and a
    /// connection that did fail is closed, which [`sender`](Self::sender) sees and replaces.
    pub async fn get(&self, get: Get<'_>, start: Instant) -> Result<Fetched, FetchError> {
        self.exchange(get, start).await
    }

    async fn exchange(&self, get: Get<'_>, start: Instant) -> Result<Fetched, FetchError> {
        let fail =
            |e: &dyn std::fmt::Display| FetchError { kind: "h3", message: e.to_string(), elapsed: start.elapsed() };
        let mut sender = self.sender(start).await?;
        let mut request = http::Request::get(get.url.as_str());
        if let Some(range) = get.range {
            request = request.header(http::header::RANGE, range);
        }
        let request = request.body(()).map_err(|e| fail(&e))?;
        let mut stream = sender.send_request(request).await.map_err(|e| fail(&e))?;
        stream.finish().await.map_err(|e| fail(&e))?;
        let response = stream.recv_response().await.map_err(|e| fail(&e))?;
        let ttfb = start.elapsed();
        let x_cache = response.headers().get("x-cache").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut bytes = 0u64;
        let mut body = get.keep_body.then(BytesMut::new);
        while let Some(mut chunk) = stream.recv_data().await.map_err(|e| FetchError { kind: "body", ..fail(&e) })? {
            bytes += chunk.remaining() as u64;
            match &mut body {
                Some(b) => b.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining())),
                None => chunk.advance(chunk.remaining()),
            }
        }
        Ok(Fetched {
            status: response.status().as_u16(),
            x_cache,
            ttfb,
            total: start.elapsed(),
            bytes,
            body: body.map(BytesMut::freeze),
        })
    }
}
