//! The API side of a just-in-time segment: one encode however many requests, PoPs and API
//! nodes ask at once (a flight per process, a claim in the database across processes), the
//! task on the viewers' queue topic, the pieces streamed to every waiting request as the
//! worker makes them, another worker when the first dies or fails, a deadline on the first
//! byte, and the next segments encoded ahead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encoder::jit::OnDemandPlan;
use encoder::layout::Tree;
use futures_util::StreamExt;
use http::header;
use http_body_util::{BodyExt, StreamBody};

use super::flight::{Ending, Flight};
use super::task::{Reason, Reply, SegmentTask};
use super::{segment_key, workers};
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::meta;
use crate::meta::ondemand::SegmentKey;
use crate::web::{self, Request, Response};

/// Answers a request for a segment that is not stored, in `tree` (its AES-128 or cbcs copy).
/// `Ok(None)`: it was stored meanwhile (serve it from storage).
pub async fn serve(
    app: &Arc<App>,
    req: &Request,
    video: &str,
    tree: Tree,
    rung: &str,
    segment: u64,
) -> Result<Option<Response>> {
    let plan = app.jit.plan(app, video).await?.ok_or_else(|| Error::not_found("object"))?;
    let planned = plan.rung(rung).ok_or_else(|| Error::not_found("object"))?;
    if segment >= plan.segment_count() as u64 {
        return Err(Error::refused(Kind::NotFound, "segment_out_of_range", "the rung has no such segment"));
    }
    if planned.floor {
        // A floor segment is always stored; one that is missing is not ours to invent.
        return Err(Error::not_found("object"));
    }
    let started = Instant::now();
    let key = SegmentKey { video: video.to_owned(), rung: rung.to_owned(), segment };
    let (flight, lead) = app.jit.flights.join(&key, tree);
    if lead {
        tokio::spawn(lead_flight(app.clone(), key.clone(), tree, flight.clone()));
        app.metrics.on_demand.request("encoded");
    } else {
        app.metrics.on_demand.request("joined");
    }
    look_ahead(app, &plan, video, rung, segment + 1).await;
    let deadline = app.config.on_demand.first_byte_deadline;
    match tokio::time::timeout(deadline, flight.first()).await {
        Err(_) => {
            app.metrics.on_demand.request("failed");
            return Ok(Some(web::retry_later(
                Kind::Unavailable,
                "encode_timeout",
                "the segment is still being encoded",
                2,
            )));
        }
        Ok(Some(Ending::Complete)) => {
            app.metrics.on_demand.request("recent");
            return Ok(None);
        }
        Ok(Some(Ending::Failed(kind, code, message))) => {
            app.metrics.on_demand.request("failed");
            if kind == Kind::Gone {
                return Err(Error::refused(kind, code, message));
            }
            return Ok(Some(web::retry_later(kind, code, &message, 2)));
        }
        Ok(None) => {}
    }
    // A Range that starts later needs the whole segment; take it from storage once stored.
    if ranged_past_start(req) {
        let _ = flight.ended().await;
        return Ok(None);
    }
    app.metrics.on_demand.first_byte.observe(started.elapsed().as_secs_f64());
    let last_byte = app.metrics.on_demand.last_byte.clone();
    let pieces = Box::pin(flight.stream());
    let body = futures_util::stream::unfold((pieces, last_byte), move |(mut pieces, last_byte)| async move {
        match pieces.next().await {
            Some(piece) => Some((piece.map(hyper::body::Frame::data), (pieces, last_byte))),
            None => {
                last_byte.observe(started.elapsed().as_secs_f64());
                None
            }
        }
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(body)));
    web::set(&mut r, header::CONTENT_TYPE.as_str(), "video/iso.segment");
    web::set(&mut r, header::CACHE_CONTROL.as_str(), "public, max-age=31536000, immutable");
    web::set(&mut r, "x-encode", "on-demand");
    Ok(Some(r))
}

fn ranged_past_start(req: &Request) -> bool {
    req.headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .is_some_and(|spec| !spec.trim_start().starts_with("0-"))
}

/// Leads a flight to its end, then lands it.
async fn lead_flight(app: Arc<App>, key: SegmentKey, tree: Tree, flight: Arc<Flight>) {
    let ending = match lead(&app, &key, tree, &flight).await {
        Ok(()) => Ending::Complete,
        Err(e) => {
            if e.kind().is_server_side() {
                tracing::warn!(video = %key.video, rung = %key.rung, segment = key.segment, error = %e, "just-in-time segment failed");
            }
            Ending::Failed(e.kind(), e.code(), e.public_message())
        }
    };
    flight.finish(ending);
    app.jit.flights.land(&key, tree);
}

/// Why a dispatch did not end with the segment.
enum Miss {
    /// The worker died or failed in a way another worker may not: try elsewhere.
    Retry(Option<String>),
    /// Give up with this error.
    Stop(Error),
}

async fn lead(app: &Arc<App>, key: &SegmentKey, tree: Tree, flight: &Arc<Flight>) -> Result<()> {
    let od = &app.config.on_demand;
    super::policy::check_servable(app, &key.video).await?;
    let now = meta::now();
    let stale = super::stale_claims_before(app, now);
    if !app.ondemand.claim_segment(key, &app.jit.node, now, stale).await? {
        // Another process (or a flight of the other tree) encodes it: wait for it to be stored.
        return wait_stored(app, key, tree, od.first_byte_deadline * 3).await;
    }
    if app.ondemand.claims_of(&key.video, stale).await? > u64::from(od.max_pending_per_video) {
        app.ondemand.release_segment(key).await?;
        return Err(Error::refused(
            Kind::Unavailable,
            "encode_queue_full",
            "too many segments of this video are being encoded",
        ));
    }
    if !workers::encoders_alive(app, None).await? {
        app.ondemand.release_segment(key).await?;
        return Err(Error::refused(Kind::Unavailable, "no_workers", "no encoder is running"));
    }
    let mut avoid = None;
    let mut attempt = 1;
    loop {
        // A topic per attempt: a worker thought dead but still running cannot mix its
        // pieces into the next attempt's.
        let reply = format!("jit.{}", crate::secrets::random_hex(8)?);
        let task = SegmentTask {
            reply: Some(reply.clone()),
            attempt,
            avoid: avoid.clone(),
            ..SegmentTask::new(&key.video, &key.rung, key.segment, 1, Reason::Viewer)?
        };
        task.publish(app.queue.as_ref()).await?;
        let followed = follow(app, &reply, key, tree, flight).await;
        let _ = app.queue.delete_topic(&reply).await;
        match followed {
            Ok(()) => return Ok(()),
            // Another worker encodes it again; bytes already sent are checked against the new
            // encode's and the response goes on from where it was.
            Err(Miss::Retry(worker)) if attempt < 2 => {
                attempt += 1;
                avoid = worker;
                app.ondemand.claim_redispatched(key, meta::now()).await?;
            }
            Err(Miss::Retry(_)) => {
                return Err(Error::refused(Kind::Unavailable, "encode_failed", "the segment could not be encoded"));
            }
            Err(Miss::Stop(e)) => return Err(e),
        }
    }
}

/// Follows one dispatch's replies into the flight (its tree's pieces; the worker stores every
/// tree) until the segment is complete.
async fn follow(app: &App, topic: &str, key: &SegmentKey, tree: Tree, flight: &Flight) -> Result<(), Miss> {
    let deadline = app.config.on_demand.first_byte_deadline;
    let started = Instant::now();
    let mut worker: Option<String> = None;
    let mut next_seq = 0u32;
    // Bytes of this attempt's segment seen so far; those a previous attempt already sent
    // must be the same bytes.
    let mut position = 0usize;
    let mut last_word = Instant::now();
    loop {
        let msg =
            app.queue.receive(topic, Duration::from_secs(30), Duration::from_millis(250)).await.map_err(Miss::Stop)?;
        let Some(msg) = msg else {
            if worker.is_none() && started.elapsed() > deadline {
                return Err(Miss::Stop(Error::refused(
                    Kind::Unavailable,
                    "encode_timeout",
                    "no encoder took the segment in time",
                )));
            }
            if last_word.elapsed() > Duration::from_secs(1) {
                last_word = Instant::now();
                if let Some(w) = &worker
                    && !workers::alive(app, w).await.unwrap_or(true)
                {
                    tracing::warn!(worker = %w, segment = key.segment, "the encoding worker died; dispatching again");
                    return Err(Miss::Retry(Some(w.clone())));
                }
            }
            continue;
        };
        let _ = msg.lease.ack().await;
        last_word = Instant::now();
        match Reply::decode(&msg.payload).map_err(Miss::Stop)? {
            Reply::Taken { worker: w } => worker = Some(w),
            Reply::Piece { seq, bytes, tree: of, .. } => {
                if seq < next_seq {
                    continue;
                }
                if seq > next_seq {
                    return Err(Miss::Retry(worker));
                }
                next_seq += 1;
                if of != tree {
                    continue;
                }
                let piece = Bytes::from(bytes);
                let fresh = flight.resume(position, &piece).ok_or_else(|| {
                    Miss::Stop(Error::refused(
                        Kind::Unavailable,
                        "encode_interrupted",
                        "the encoder stopped midway and its replacement made other bytes",
                    ))
                })?;
                position += piece.len();
                if !fresh.is_empty() {
                    flight.push(fresh);
                }
            }
            Reply::Done => return Ok(()),
            Reply::Failed { code, retryable, message } => {
                tracing::warn!(%code, %message, segment = key.segment, "just-in-time encode failed");
                if code == "deleted" {
                    return Err(Miss::Stop(Error::refused(Kind::Gone, "deleted", "the video was taken down")));
                }
                if retryable {
                    return Err(Miss::Retry(worker));
                }
                return Err(Miss::Stop(Error::refused(
                    Kind::Unavailable,
                    "encode_failed",
                    "the segment could not be encoded",
                )));
            }
        }
    }
}

/// Waits until another process has stored the segment.
async fn wait_stored(app: &App, key: &SegmentKey, tree: Tree, limit: Duration) -> Result<()> {
    let blob = segment_key(&key.video, tree, &key.rung, key.segment);
    let started = Instant::now();
    while started.elapsed() < limit {
        if app.blobs.exists(&blob).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::refused(Kind::Unavailable, "encode_timeout", "the segment is still being encoded elsewhere"))
}

/// Encodes the segments after `from` that a viewer playing the rung will ask for next, in
/// one task at look-ahead priority, unless they are stored or already being encoded.
pub async fn look_ahead(app: &Arc<App>, plan: &OnDemandPlan, video: &str, rung: &str, from: u64) {
    if let Err(e) = try_look_ahead(app, plan, video, rung, from).await {
        tracing::debug!(error = %e, "look-ahead not queued");
    }
}

async fn try_look_ahead(app: &Arc<App>, plan: &OnDemandPlan, video: &str, rung: &str, from: u64) -> Result<()> {
    let depth = u64::from(app.config.on_demand.lookahead);
    let end = (from + depth).min(plan.segment_count() as u64);
    if depth == 0 || from >= end || plan.rung(rung).is_none_or(|r| r.floor) {
        return Ok(());
    }
    let now = meta::now();
    let stale = super::stale_claims_before(app, now);
    let mut claimed = 0;
    let counted = super::trees(app.config.protection)[0];
    for segment in from..end {
        if app.blobs.exists(&segment_key(video, counted, rung, segment)).await? {
            break;
        }
        let key = SegmentKey { video: video.to_owned(), rung: rung.to_owned(), segment };
        if !app.ondemand.claim_segment(&key, &app.jit.node, now, stale).await? {
            break;
        }
        claimed += 1;
    }
    if claimed == 0 {
        return Ok(());
    }
    SegmentTask::new(video, rung, from, claimed, Reason::Lookahead)?.publish(app.queue.as_ref()).await
}
