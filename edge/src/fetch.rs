//! The one origin fetch of a flight: what it asks for, how it reads the answer, and what it
//! leaves in the cache.
//!
//! An object is asked for with `Range: bytes=0-{chunk size - 1}`. A small object comes back
//! whole (`200`, or `206` covering all of it) and is cached as one entry. A larger one comes
//! back as its first chunk with its length (`206 .../{length}`): the PoP caches that chunk and
//! a head-only entry saying the object is chunked, and fetches further chunks (each its own
//! flight) only when a viewer reaches them. So origin egress per PoP is bounded by the chunks
//! viewers touch, however they slice their ranges. A `404` is remembered for
//! `cache.not_found_ttl`; nothing else the origin refuses or fails with is.

use std::sync::Arc;

use bytes::Bytes;
use http::header;

use crate::Edge;
use crate::chunks::{self, Chunk};
use crate::error::EdgeError;
use crate::inflight::{Flight, FlightHead};
use crate::metrics::Fetched;
use crate::object::{Form, Head, Object};
use crate::upstream::ObjectResponse;

/// What one flight fetches.
#[derive(Debug, Clone)]
pub struct Want {
    /// The object's cache key, `{video}/{path}`.
    pub object: String,
    /// One chunk of an object known to be chunked; `None` asks for the object itself.
    pub chunk: Option<Chunk>,
    /// The `CDN-Loop` of the child PoP's request that starts the flight (`cdn_loop.rs`).
    pub via: Option<String>,
}

impl Want {
    /// The object at `key`.
    pub fn object(key: &str) -> Self {
        Self { object: key.to_owned(), chunk: None, via: None }
    }

    /// The same, for a request that came with `via` (`CDN-Loop`).
    pub fn via(mut self, via: Option<&str>) -> Self {
        self.via = via.map(str::to_owned);
        self
    }

    /// The flight's (and the cache entry's) key.
    pub fn key(&self) -> String {
        match &self.chunk {
            None => self.object.clone(),
            Some(c) => chunks::key(&self.object, c.index),
        }
    }
}

/// Joins or starts the single flight for `want`.
pub fn start(edge: &Arc<Edge>, want: Want, admitted: bool) -> Arc<Flight> {
    let (flight, leader) = edge.flights.join(&want.key());
    if leader {
        tokio::spawn(run(edge.clone(), want, flight.clone(), admitted));
    }
    flight
}

/// Starts (or joins) the flight for `want` unless its entry is cached already: for fetches
/// nobody waits on yet (read-ahead, prefetch, the next chunk). Whether one was started.
pub fn start_unless_cached(edge: &Arc<Edge>, want: Want, admitted: bool) -> bool {
    if edge.cache.contains(&want.key()) {
        return false;
    }
    start(edge, want, admitted);
    true
}

/// How an origin answer is kept once its body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// The body is the object (or the asked chunk): one entry under the flight's key.
    Entry,
    /// The body is the first chunk of a chunked object: the chunk, then the object's head.
    FirstChunk,
}

/// An origin answer, read.
struct Reading {
    head: FlightHead,
    keep: Keep,
}

async fn run(edge: Arc<Edge>, want: Want, flight: Arc<Flight>, admitted: bool) {
    let key = want.key();
    // A viewer may have missed the cache just before the previous flight for this key
    // landed; what it fetched is in the cache now and must not be fetched again.
    if let Some((head, body)) = cached(&edge, &want).await {
        flight.set_head(Ok(head));
        flight.push(body);
        edge.flights.land(&key);
        flight.finish(Ok(()));
        return;
    }
    let range = match &want.chunk {
        None => (0, edge.cache.chunk_size().saturating_sub(1)),
        Some(c) => (c.start, c.end),
    };
    let started = std::time::Instant::now();
    let response = edge.upstream.object(&want.object, range, want.via.as_deref()).await;
    edge.metrics.origin_latency.observe(started.elapsed().as_secs_f64());
    let reading = response.and_then(|r| read(&r, &want).map(|reading| (r, reading)));
    let (response, reading) = match reading {
        Ok(ok) => ok,
        Err(e) => return fail(&edge, &key, &flight, e),
    };
    let mut reading = reading;
    if reading.head.status == 200 && edge.cache.purges().purged(&want.object, reading.head.head.fetched_at) {
        // A parent's copy from before a takedown this PoP has heard of and the parent has not
        // yet: refused like the origin would, and not kept.
        tracing::info!(key = ?key, "an upstream copy predates a takedown; refused");
        reading.head.status = 410;
    }
    let status = reading.head.status;
    edge.metrics.fetched(if status == 200 { Fetched::Ok } else { Fetched::Refused });
    flight.set_head(Ok(reading.head.clone()));
    if status != 200 || reading.head.length == Some(0) {
        // Nothing to stream: a refusal's body is not the object (nor is a 416's for an empty one).
        settle(&edge, &want, &reading, &flight, &[], admitted);
        flight.finish(Ok(()));
        return;
    }
    // The viewers waiting on the head send it now, before the body is polled: polling it
    // wakes the origin connection's task, which would run ahead of them and read the next
    // piece (`upstream::READ_SIZE`); the head would then go out only after that copy.
    tokio::task::yield_now().await;
    stream(edge, want, reading, response, flight, admitted).await;
}

/// Streams the body into the flight; keeps it (before its last chunk goes out when the length
/// is known) and lands the flight.
async fn stream(
    edge: Arc<Edge>,
    want: Want,
    reading: Reading,
    mut response: ObjectResponse,
    flight: Arc<Flight>,
    admitted: bool,
) {
    let length = reading.head.length;
    let mut received = 0u64;
    let finished = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                edge.metrics.origin_bytes.inc_by(chunk.len() as u64);
                if length == Some(received) {
                    settle(&edge, &want, &reading, &flight, &chunk, admitted);
                }
                flight.push(chunk);
                // From a fast origin every read is ready at once, and this loop would keep the
                // worker until the whole body is in: let the viewers of this flight send what
                // has arrived.
                tokio::task::yield_now().await;
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(EdgeError::OriginUnavailable(format!("body: {e}"))),
        }
    };
    let finished = match (finished, length) {
        (Ok(()), Some(n)) if n != received => Err(EdgeError::OriginUnavailable(format!("body: {received} of {n}"))),
        (other, _) => other,
    };
    match (&finished, length) {
        // Settled when its last byte came.
        (Ok(()), Some(_)) => {}
        (Ok(()), None) => settle(&edge, &want, &reading, &flight, &[], admitted),
        // A broken or short body is never cached: it was settled above only if every byte came.
        (Err(_), _) => edge.flights.land(&want.key()),
    }
    flight.finish(finished);
}

fn fail(edge: &Edge, key: &str, flight: &Flight, e: EdgeError) {
    edge.metrics.fetched(Fetched::Error);
    flight.set_head(Err(e.clone()));
    edge.flights.land(key);
    flight.finish(Err(e));
}

/// Caches what the answer is worth keeping, then lands the flight: whoever asks next finds
/// it in the cache, never a finished flight. `tail` is the body's last piece, not yet pushed.
fn settle(edge: &Edge, want: &Want, reading: &Reading, flight: &Flight, tail: &[u8], admitted: bool) {
    let head = &reading.head.head;
    let key = want.key();
    if reading.head.status == 404 {
        let ttl = edge.not_found_ttl;
        if !ttl.is_zero() && want.chunk.is_none() {
            let remembered = Object { head: Head::not_found(ttl, head.fetched_at), body: Bytes::new() };
            edge.cache.insert(&key, &remembered, false);
        }
    } else if reading.head.status == 200 && Head::cacheable(&head.cache_control) {
        let len =
            reading.head.length.unwrap_or_else(|| flight.with_received(|p| p.iter().map(|b| b.len() as u64).sum()));
        let whole = Head { form: Form::Whole, ..head.clone() };
        let entry_key = if reading.keep == Keep::FirstChunk { chunks::key(&want.object, 0) } else { key.clone() };
        let stored = || flight.with_received(|pieces| Object::encode_pieces(&whole, pieces, tail));
        let kept = edge.cache.insert_encoded(&entry_key, stored, len, admitted);
        if kept && reading.keep == Keep::FirstChunk {
            // After its first chunk, so that whoever finds the head finds the chunk too.
            edge.cache.insert(&want.object, &Object { head: head.clone(), body: Bytes::new() }, admitted);
        }
    }
    edge.flights.land(&key);
}

/// Reads the origin's answer to `want` (asked with a range), refusing what does not fit it.
fn read(r: &ObjectResponse, want: &Want) -> Result<Reading, EdgeError> {
    let text = |name: header::HeaderName| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Behind a parent PoP, the object is as old as the parent's copy: takedowns and freshness
    // go by when the origin answered, not by when the parent did.
    let fetched_at =
        crate::status::fetched_at(crate::now_ms(), r.headers().get(header::AGE).and_then(|v| v.to_str().ok()));
    let mut head = Head::new(
        text(header::CONTENT_TYPE).to_owned(),
        Some(text(header::ETAG).to_owned()).filter(|e| !e.is_empty()),
        text(header::CACHE_CONTROL).to_owned(),
        fetched_at,
    );
    let status = r.status().as_u16();
    let content_range = chunks::content_range(text(header::CONTENT_RANGE));
    let changed = |why: &str| EdgeError::OriginUnavailable(format!("{}: {why}", want.key()));
    let chain = crate::status::upstream_chain(r.headers().get("cache-status").and_then(|v| v.to_str().ok()));
    let reading = match (&want.chunk, status, content_range) {
        (None, 200, _) => {
            let length = r.content_length();
            Ok(Reading { head: FlightHead { status, head, length, chain: None }, keep: Keep::Entry })
        }
        (None, 206, Some((0, end, length))) if end + 1 == length => {
            Ok(Reading { head: FlightHead { status: 200, head, length: Some(length), chain: None }, keep: Keep::Entry })
        }
        (None, 206, Some((0, end, length))) if end + 1 < length => {
            head.form = Form::Chunked { length };
            Ok(Reading {
                head: FlightHead { status: 200, head, length: Some(end + 1), chain: None },
                keep: Keep::FirstChunk,
            })
        }
        // The first bytes of an empty object cannot be had: it is the empty object.
        (None, 416, _) if text(header::CONTENT_RANGE) == "bytes */0" => {
            Ok(Reading { head: FlightHead { status: 200, head, length: Some(0), chain: None }, keep: Keep::Entry })
        }
        (None, 206, _) => Err(changed("unexpected Content-Range")),
        (Some(c), 206, Some((start, end, length))) if (start, end, length) == (c.start, c.end, c.length) => {
            if head.etag != c.etag {
                return Err(changed("the object changed at the origin"));
            }
            Ok(Reading {
                head: FlightHead { status: 200, head, length: Some(end - start + 1), chain: None },
                keep: Keep::Entry,
            })
        }
        (Some(_), 200 | 206, _) => Err(changed("the origin did not answer the chunk's range")),
        (_, status, _) => {
            Ok(Reading { head: FlightHead { status, head, length: None, chain: None }, keep: Keep::Entry })
        }
    };
    reading.map(|mut reading| {
        reading.head.chain = chain;
        reading
    })
}

/// What the cache already holds for `want`, as a flight would have brought it.
async fn cached(edge: &Edge, want: &Want) -> Option<(FlightHead, Bytes)> {
    let now = crate::now_ms();
    let (object, _) = edge.cache.lookup(&want.key()).await.filter(|(o, _)| o.head.is_fresh(now))?;
    let length = Some(object.body.len() as u64);
    match (object.head.form, &want.chunk) {
        (Form::Whole, None) => Some((FlightHead { status: 200, head: object.head, length, chain: None }, object.body)),
        (Form::NotFound, None) => {
            Some((FlightHead { status: 404, head: object.head, length: None, chain: None }, Bytes::new()))
        }
        (Form::Chunked { length: total }, None) => {
            let first = Chunk::of(edge.cache.chunk_size(), total, 0, object.head.etag.clone());
            let body = chunks::cached(edge, &want.object, &first).await?.0;
            let length = Some(body.len() as u64);
            Some((FlightHead { status: 200, head: object.head, length, chain: None }, body))
        }
        (Form::Whole, Some(c)) if chunks::matches(&object.head, c, now) => {
            Some((FlightHead { status: 200, head: object.head, length, chain: None }, object.body))
        }
        _ => None,
    }
}
