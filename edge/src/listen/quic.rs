//! HTTP/3 over QUIC (quinn + h3): the same handler, the same bytes, on UDP, under the same
//! connection policy as TCP. QUIC itself enforces the idle timeout and the stream credit; h3
//! the field-section size (431 beyond).

use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use pop_config::Limits;
use tokio::sync::{mpsc, watch};

use super::policy::Admitted;
use crate::Edge;
use crate::flow::{self, Protocol};

/// A QUIC endpoint for `tls` (ALPN h3, TLS 1.3) on `addr`.
pub fn endpoint(
    tls: rustls::ServerConfig,
    addr: std::net::SocketAddr,
    limits: &Limits,
) -> anyhow::Result<quinn::Endpoint> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // Segments are megabytes: let a stream have several in flight on a fat pipe.
    transport.stream_receive_window((8u32 << 20).into());
    transport.receive_window((32u32 << 20).into());
    transport.send_window(32 << 20);
    transport.max_concurrent_bidi_streams(limits.max_streams_per_connection.into());
    transport.max_idle_timeout(Some(limits.idle_timeout.try_into()?));
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
        let place = match edge.connections.arrive() {
            Ok(place) => place,
            Err(refusal) => {
                tracing::debug!(peer = %incoming.remote_address(), reason = refusal.label(), "h3 connection refused");
                incoming.refuse();
                continue;
            }
        };
        let edge = edge.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(edge, incoming, place).await {
                tracing::debug!(error = %e, "h3 connection ended");
            }
        });
    }
    endpoint.close(0u32.into(), b"shutdown");
}

async fn connection(edge: Arc<Edge>, incoming: quinn::Incoming, mut place: Admitted) -> anyhow::Result<()> {
    let limits = *edge.connections.limits();
    let deadline = limits.header_read_timeout;
    let peer = incoming.remote_address().ip();
    let setup = async {
        let conn = incoming.await?;
        // The handshake proved the address: now it may count against its share.
        if let Err(refusal) = place.settle(conn.remote_address().ip()) {
            conn.close(0u32.into(), b"too many connections from this address");
            anyhow::bail!("refused: {}", refusal.label());
        }
        let h3 = h3::server::builder()
            .max_field_section_size(limits.max_header_bytes)
            .build::<_, Bytes>(h3_quinn::Connection::new(conn))
            .await?;
        anyhow::Ok(h3)
    };
    let Ok(h3) = tokio::time::timeout(deadline, setup).await else {
        edge.connections.timed_out("handshake");
        return Ok(());
    };
    let mut h3 = h3?;
    while let Some(resolver) = h3.accept().await? {
        let edge = edge.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(deadline, resolver.resolve_request()).await {
                Err(_) => edge.connections.timed_out("header"),
                Ok(Err(e)) => tracing::debug!(error = %e, "h3 request refused"),
                Ok(Ok((mut head, stream))) => {
                    head.extensions_mut().insert(flow::Client(peer));
                    if let Err(e) = request(edge, head, stream).await {
                        tracing::debug!(error = %e, "h3 request ended");
                    }
                }
            }
        });
    }
    Ok(())
}

async fn request<S>(
    edge: Arc<Edge>,
    head: http::Request<()>,
    stream: h3::server::RequestStream<S, Bytes>,
) -> anyhow::Result<()>
where
    S: h3::quic::BidiStream<Bytes> + Send + 'static,
    <S as h3::quic::BidiStream<Bytes>>::RecvStream: Send + 'static,
    <S as h3::quic::BidiStream<Bytes>>::SendStream: Send + 'static,
{
    let (mut send, mut recv) = stream.split();
    // The request body is pumped from QUIC into a channel the handler reads like any body;
    // the pump ends when the handler lets go of it.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
    tokio::spawn(async move {
        loop {
            let data = tokio::select! {
                d = recv.recv_data() => d,
                () = tx.closed() => return,
            };
            let frame = match data {
                Ok(Some(mut chunk)) => Ok(Frame::data(chunk.copy_to_bytes(chunk.remaining()))),
                Ok(None) => return,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let failed = frame.is_err();
            if tx.send(frame).await.is_err() || failed {
                return;
            }
        }
    });
    let body =
        StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) }));
    let req = head.map(|()| edge.connections.request_body(BodyExt::boxed(body)));
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
