//! `GET /v1/videos/{id}/events`: server-sent events for a video's state changes, starting
//! with its current state and ending after a final one (ready, failed, deleted).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::app::App;
use crate::error::Result;
use crate::notify::VideoEvent;
use crate::web::{self, Response};

/// Keeps idle connections (and proxies in between) from timing out.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Opens the stream.
pub async fn stream(app: &Arc<App>, id: &str) -> Result<Response> {
    // Subscribe before reading the state, so no change falls between the two.
    let mut events = app.hub.subscribe();
    let video = super::videos::find(app, id).await?;
    let (tx, rx) = mpsc::channel::<std::io::Result<Frame<Bytes>>>(16);
    let id = id.to_owned();
    tokio::spawn(async move {
        let first = VideoEvent::of(&video);
        let mut done = first.is_final();
        if tx.send(Ok(Frame::data(sse(&first)))).await.is_err() {
            return;
        }
        while !done {
            let next = tokio::time::timeout(KEEPALIVE, events.recv()).await;
            let frame = match next {
                Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                Ok(Ok(e)) if e.video == id => {
                    done = e.is_final();
                    sse(&e)
                }
                Ok(Ok(_)) => continue,
                // Fell behind: say so; the client re-reads the video.
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    Bytes::from_static(b"event: lagged\ndata: {}\n\n")
                }
                Ok(Err(_)) => return,
            };
            if tx.send(Ok(Frame::data(frame))).await.is_err() {
                return;
            }
        }
    });
    let body = StreamBody::new(tokio_stream(rx)).boxed();
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    web::set(&mut r, header::CONTENT_TYPE.as_str(), "text/event-stream");
    web::set(&mut r, header::CACHE_CONTROL.as_str(), "no-store");
    web::set(&mut r, "x-accel-buffering", "no");
    Ok(r)
}

fn sse(e: &VideoEvent) -> Bytes {
    let data = serde_json::to_string(e).unwrap_or_default();
    Bytes::from(format!("event: state\nid: {}\ndata: {data}\n\n", e.at))
}

fn tokio_stream(
    mut rx: mpsc::Receiver<std::io::Result<Frame<Bytes>>>,
) -> impl futures_util::Stream<Item = std::io::Result<Frame<Bytes>>> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
