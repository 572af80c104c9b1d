//! Accepts connections (plain or TLS with ALPN h2/http1.1) and serves HTTP/1.1 and HTTP/2 on
//! each with hyper, under the policy of [`super::limits`]: a connection cap overall and per
//! client address, header, idle and body timeouts, HTTP/2 limits. On shutdown in-flight
//! requests get a grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::limits::{Activity, ClientAddr, Limits, RequestBody, Tracked};
use super::{Request, Response};
use crate::metrics::ConnectionMetrics;

/// How long requests in flight may take to finish once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long an idle connection closed by the policy gets to say goodbye (HTTP/2 GOAWAY).
const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Serves `handler` on `listener` until `shutdown` turns true.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Arc<Limits>,
    metrics: ConnectionMetrics,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    let gate = limits.connection_gate();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let pass = match gate.enter(peer.ip()) {
            Ok(pass) => pass,
            Err(refusal) => {
                // Closed at once: a flood of connections costs an accept each, nothing more.
                metrics.refused.get_or_create(&vec![("reason", refusal.label().to_owned())]).inc();
                tracing::debug!(%peer, reason = refusal.label(), "connection refused");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            handler: handler.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            peer,
            shutdown: shutdown.clone(),
        };
        let tls = tls.clone();
        connections.spawn(async move {
            let _pass = pass;
            connection.run(stream, tls).await;
        });
    }
    drop(listener);
    // Every connection saw the signal too and finishes within its own grace period.
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE + IDLE_GRACE, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period");
        connections.abort_all();
    }
}

struct Connection<H> {
    handler: Arc<H>,
    limits: Arc<Limits>,
    metrics: ConnectionMetrics,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
}

impl<H, F> Connection<H>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else { return self.serve(stream).await };
        let peer = self.peer;
        match tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.serve(tls).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self { handler, limits, metrics, peer, mut shutdown } = self;
        metrics.open.inc();
        let activity = Activity::new();
        let service = {
            let (activity, limits, stalls) = (activity.clone(), limits.clone(), metrics.body_stalls.clone());
            service_fn(move |req: http::Request<Incoming>| {
                let in_flight = activity.begin();
                let (handler, stalls, body_timeout) = (handler.clone(), stalls.clone(), limits.body_timeout);
                async move {
                    let mut req = req.map(|body| RequestBody::new(body, body_timeout, stalls));
                    req.extensions_mut().insert(ClientAddr(peer));
                    let response = handler(req).await;
                    Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight)))
                }
            })
        };
        let builder = limits.http_builder();
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let expired = activity.expired(&limits);
        tokio::pin!(expired);
        let grace = tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                None
            }
            reason = &mut expired => {
                metrics.closed_idle.get_or_create(&vec![("reason", reason.label().to_owned())]).inc();
                tracing::debug!(%peer, reason = reason.label(), "idle connection closed");
                Some(IDLE_GRACE)
            }
            _ = shutdown.changed() => Some(SHUTDOWN_GRACE),
        };
        if let Some(grace) = grace {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(grace, conn).await.is_err() {
                tracing::debug!(%peer, "connection dropped after its grace period");
            }
        }
        metrics.open.dec();
    }
}

/// A TLS acceptor for PEM certificate chain and key files, offering h2 and http/1.1.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> crate::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::storage::init_tls();
    let bad = |what: &str, e: &dyn std::fmt::Display| crate::Error::Config(format!("{what}: {e}"));
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("tls cert", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("tls cert", &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("tls key", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("tls", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("tls", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
