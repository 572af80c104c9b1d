//! HTTP/1.1 and HTTP/2 over TCP, with or without TLS, under the connection policy: places
//! taken on arrival, a deadline for the handshake and headers, silence closes, request bodies
//! that must keep coming.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::policy::{Activity, Admitted, Watched};
use crate::Edge;
use crate::flow::{self, Protocol};

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Viewers and creators, over `Protocol`; connections count against the limits.
    Viewers(Protocol),
    /// Operators: `/metrics` and `/healthz` (the timeouts apply, the connection caps do not,
    /// so a flood of viewers cannot hide the PoP from its monitoring).
    Admin,
}

/// Serves until `shutdown`; in-flight requests get a grace period.
pub async fn serve(
    edge: Arc<Edge>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    role: Role,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let admitted = match role {
            Role::Admin => None,
            Role::Viewers(_) => match edge.connections.admit(peer.ip()) {
                Ok(place) => Some(place),
                Err(refusal) => {
                    // Closed at once: a client over its share learns it now rather than
                    // waiting in the backlog.
                    tracing::debug!(peer = %peer, reason = refusal.label(), "connection refused");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        tokio::spawn(connection(edge.clone(), stream, peer.ip(), tls.clone(), role, admitted, watcher));
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn connection(
    edge: Arc<Edge>,
    stream: TcpStream,
    peer: std::net::IpAddr,
    tls: Option<TlsAcceptor>,
    role: Role,
    admitted: Option<Admitted>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _place = admitted;
    let limits = *edge.connections.limits();
    let activity = Arc::new(Activity::default());
    let io = Watched::new(stream, activity.clone());
    let builder = builder(&limits);
    let service = {
        let (edge, activity) = (edge.clone(), activity.clone());
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            activity.request();
            let edge = edge.clone();
            async move {
                let mut req = req.map(|b| edge.connections.request_body(b.map_err(std::io::Error::other).boxed()));
                req.extensions_mut().insert(flow::Client(peer));
                Ok::<_, Infallible>(match role {
                    Role::Viewers(protocol) => flow::handle(edge, req, protocol).await,
                    Role::Admin => flow::admin(edge, req).await,
                })
            }
        })
    };
    let served = async {
        match tls {
            None => watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned()).await,
            Some(acceptor) => match acceptor.accept(io).await {
                Ok(tls) => watcher.watch(builder.serve_connection(TokioIo::new(tls), service).into_owned()).await,
                Err(_) => Ok(()),
            },
        }
    };
    tokio::select! {
        result = served => {
            if result.is_err_and(|e| e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout)) {
                edge.connections.timed_out("header");
            }
        }
        () = activity.silent_for(limits.idle_timeout) => edge.connections.timed_out("idle"),
        () = activity.no_request_within(limits.header_read_timeout) => edge.connections.timed_out("header"),
    }
}

fn builder(limits: &pop_config::Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    // Large windows: segments are megabytes; the default 64 KiB window throttles HTTP/2.
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .max_concurrent_streams(limits.max_streams_per_connection)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}
