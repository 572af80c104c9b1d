//! HTTP/1.1 and HTTP/2 over TCP, with or without TLS.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::Edge;
use crate::flow::{self, Protocol};

/// Serves until `shutdown`; in-flight requests get a grace period.
pub async fn serve(
    edge: Arc<Edge>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let protocol = if tls.is_some() { Protocol::Https } else { Protocol::Http };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
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
        let _ = stream.set_nodelay(true);
        let edge = edge.clone();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let edge = edge.clone();
            async move {
                let req = req.map(|b| b.map_err(std::io::Error::other).boxed());
                Ok::<_, Infallible>(flow::handle(edge, req, protocol).await)
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Large windows: segments are megabytes; the default 64 KiB window throttles HTTP/2.
        builder
            .http2()
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .max_concurrent_streams(256);
        let watcher = graceful.watcher();
        let acceptor = tls.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await;
                }
                Some(acceptor) => {
                    if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        let _ = watcher.watch(builder.serve_connection(TokioIo::new(tls), service).into_owned()).await;
                    }
                }
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}
