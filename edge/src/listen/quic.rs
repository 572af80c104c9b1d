//! HTTP/3 over QUIC (quinn + h3): the same handler, the same bytes, on UDP.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use tokio::sync::{mpsc, watch};

use crate::Edge;
use crate::flow::{self, Protocol};

/// A QUIC endpoint for `tls` (ALPN h3, TLS 1.3) on `addr`.
pub fn endpoint(tls: rustls::ServerConfig, addr: std::net::SocketAddr) -> anyhow::Result<quinn::Endpoint> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // Segments are megabytes: let a stream have several in flight on a fat pipe.
    transport.stream_receive_window((8u32 << 20).into());
    transport.receive_window((32u32 << 20).into());
    transport.send_window(32 << 20);
    config.transport_config(Arc::new(transport));
    Ok(quinn::Endpoint::server(config, addr)?)
}

/// Serves HTTP/3 until `shutdown`.
pub async fn serve(edge: Arc<Edge>, endpoint: quinn::Endpoint, mut shutdown: watch::Receiver<bool>) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.changed() => break,
        };
        let edge = edge.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(edge, incoming).await {
                tracing::debug!(error = %e, "h3 connection ended");
            }
        });
    }
    endpoint.close(0u32.into(), b"shutdown");
}

async fn connection(edge: Arc<Edge>, incoming: quinn::Incoming) -> anyhow::Result<()> {
    let conn = incoming.await?;
    let mut h3 = h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await?;
    while let Some(resolver) = h3.accept().await? {
        let edge = edge.clone();
        tokio::spawn(async move {
            if let Err(e) = request(edge, resolver).await {
                tracing::debug!(error = %e, "h3 request ended");
            }
        });
    }
    Ok(())
}

async fn request<C>(edge: Arc<Edge>, resolver: h3::server::RequestResolver<C, Bytes>) -> anyhow::Result<()>
where
    C: h3::quic::Connection<Bytes>,
    <C as h3::quic::OpenStreams<Bytes>>::BidiStream: h3::quic::BidiStream<Bytes> + Send + 'static,
    <<C as h3::quic::OpenStreams<Bytes>>::BidiStream as h3::quic::BidiStream<Bytes>>::RecvStream: Send + 'static,
    <<C as h3::quic::OpenStreams<Bytes>>::BidiStream as h3::quic::BidiStream<Bytes>>::SendStream: Send + 'static,
{
    let (head, stream) = resolver.resolve_request().await?;
    let (mut send, mut recv) = stream.split();
    // The request body is pumped from QUIC into a channel the handler reads like any body.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
    tokio::spawn(async move {
        loop {
            match recv.recv_data().await {
                Ok(Some(mut chunk)) => {
                    let bytes = chunk.copy_to_bytes(chunk.remaining());
                    if tx.send(Ok(Frame::data(bytes))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    let body =
        StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) }));
    let req = head.map(|()| BodyExt::boxed(body));
    let response = flow::handle(edge, req, Protocol::H3).await;
    let (parts, body) = response.into_parts();
    send.send_response(http::Response::from_parts(parts, ())).await?;
    let mut frames = BodyStream::new(body);
    while let Some(frame) = frames.next().await {
        if let Ok(data) = frame?.into_data() {
            send.send_data(data).await?;
        }
    }
    send.finish().await?;
    Ok(())
}
