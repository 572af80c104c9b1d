//! `GET /v1/videos/{id}/events`: server-sent events for a video's state changes, starting
//! with its current state and ending after a final one (ready, failed, deleted). Streams are
//! limited overall and per client address, and each lives at most `sse_max_lifetime`: it then
//! ends with a `reconnect` event and the client reconnects after the announced `retry:`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::notify::VideoEvent;
use crate::web::limits::{Pass, Refusal};
use crate::web::{self, Request, Response};

/// Keeps idle connections (and proxies in between) from timing out.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Opens the stream for a client at `client`.
pub async fn stream(app: &Arc<App>, req: &Request, id: &str) -> Result<Response> {
    // A private video's state is for those who may watch it.
    let who = crate::accounts::caller(app, req).await?;
    let pass = admit(app, super::client_addr(req))?;
    // Subscribe before reading the state, so no change falls between the two.
    let events = app.hub.subscribe();
    let video = super::videos::watchable(app, id, who.as_ref()).await?;
    let (tx, rx) = mpsc::channel::<std::io::Result<Frame<Bytes>>>(16);
    let sse = &app.config.limits.sse;
    let deadline = Instant::now() + sse.max_lifetime;
    let hello = format!("retry: {}\n{}", sse.retry.as_millis(), frame(&VideoEvent::of(&video)));
    let follow = Follow { id: id.to_owned(), events, tx, deadline, gauge: app.metrics.sse_streams.clone() };
    tokio::spawn(follow.run(hello, VideoEvent::of(&video).is_final(), pass));
    let body = StreamBody::new(tokio_stream(rx)).boxed();
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    web::set(&mut r, header::CONTENT_TYPE.as_str(), "text/event-stream");
    web::set(&mut r, header::CACHE_CONTROL.as_str(), "no-store");
    web::set(&mut r, "x-accel-buffering", "no");
    Ok(r)
}

/// A place among the open streams, or the refusal: `429` for this address, `503` overall.
fn admit(app: &App, client: IpAddr) -> Result<Pass> {
    app.streams.enter(client).map_err(|refusal| {
        app.metrics.sse_refused.get_or_create(&vec![("reason", refusal.label().to_owned())]).inc();
        match refusal {
            Refusal::PerAddress => Error::refused(
                Kind::RateLimited,
                "too_many_streams",
                format!("this address already has {} event streams open", app.config.limits.sse.per_address),
            ),
            Refusal::Full => Error::refused(
                Kind::Unavailable,
                "streams_exhausted",
                "the server has as many event streams open as it allows; retry later",
            ),
        }
    })
}

/// One stream's task: forwards the video's events until a final one, the client leaving, or
/// the end of the stream's lifetime.
struct Follow {
    id: String,
    events: broadcast::Receiver<VideoEvent>,
    tx: mpsc::Sender<std::io::Result<Frame<Bytes>>>,
    deadline: Instant,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Follow {
    async fn run(mut self, hello: String, mut done: bool, pass: Pass) {
        let _pass = pass;
        self.gauge.inc();
        let mut next = Some(Bytes::from(hello));
        while let Some(bytes) = next.take() {
            // A client that stops reading holds the stream no longer than its lifetime.
            match tokio::time::timeout_at(self.deadline, self.tx.send(Ok(Frame::data(bytes)))).await {
                Ok(Ok(())) if !done => next = self.next(&mut done).await,
                _ => break,
            }
        }
        self.gauge.dec();
    }

    /// The next bytes to send, or `None` to end.
    async fn next(&mut self, done: &mut bool) -> Option<Bytes> {
        loop {
            let event = tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => {
                    *done = true;
                    return Some(Bytes::from_static(b"event: reconnect\ndata: {}\n\n"));
                }
                () = self.tx.closed() => return None,
                e = tokio::time::timeout(KEEPALIVE, self.events.recv()) => e,
            };
            return match event {
                Err(_) => Some(Bytes::from_static(b": keep-alive\n\n")),
                Ok(Ok(e)) if e.video == self.id => {
                    *done = e.is_final();
                    Some(Bytes::from(frame(&e)))
                }
                Ok(Ok(_)) => continue,
                // Fell behind: say so; the client re-reads the video.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    Some(Bytes::from_static(b"event: lagged\ndata: {}\n\n"))
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => None,
            };
        }
    }
}

fn frame(e: &VideoEvent) -> String {
    let data = serde_json::to_string(e).unwrap_or_default();
    format!("event: state\nid: {}\ndata: {data}\n\n", e.at)
}

fn tokio_stream(
    mut rx: mpsc::Receiver<std::io::Result<Frame<Bytes>>>,
) -> impl futures_util::Stream<Item = std::io::Result<Frame<Bytes>>> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
