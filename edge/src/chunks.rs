//! Objects larger than one cache block, kept in block-sized chunks: chunk `i` covers bytes
//! `i * size ..` of the object and is cached under `{key}#{i}` (`#` never occurs in a request
//! path, so no request names a chunk). A viewer's body is assembled from the chunks its range
//! covers, each from the cache or from its own single flight, the next one fetched while the
//! current one is sent.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::Edge;
use crate::cache::Tier;
use crate::fetch::{self, Want};
use crate::inflight::Flight;
use crate::metrics::Lookup;
use crate::object::{Form, Head};

/// The cache key of chunk `index` of the object at `object`.
pub fn key(object: &str, index: u64) -> String {
    format!("{object}#{index}")
}

/// One chunk of a chunked object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its number, from 0.
    pub index: u64,
    /// Its first byte in the object.
    pub start: u64,
    /// Its last byte in the object (inclusive).
    pub end: u64,
    /// The object's length.
    pub length: u64,
    /// The object's ETag: a chunk of another version is not this object's.
    pub etag: Option<String>,
}

impl Chunk {
    /// Chunk `index` of an object of `length` bytes in chunks of `size`.
    pub fn of(size: u64, length: u64, index: u64, etag: Option<String>) -> Self {
        let start = index * size;
        Self { index, start, end: (start + size).min(length) - 1, length, etag }
    }
}

/// `bytes {start}-{end}/{length}` from a `Content-Range` header.
pub fn content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (span, length) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end, length) = (start.parse().ok()?, end.parse().ok()?, length.parse().ok()?);
    (start <= end && end < length).then_some((start, end, length))
}

/// Whether a cached entry with `head` holds `chunk` of the current version at `now`: same
/// ETag, and fresh when there is no ETag to tell versions apart.
pub fn matches(head: &Head, chunk: &Chunk, now: i64) -> bool {
    head.form == Form::Whole && head.etag == chunk.etag && (chunk.etag.is_some() || head.is_fresh(now))
}

/// `chunk` of `object` from the cache, with its tier.
pub async fn cached(edge: &Edge, object: &str, chunk: &Chunk) -> Option<(Bytes, Tier)> {
    let (entry, tier) = edge.cache.lookup(&key(object, chunk.index)).await?;
    let whole = entry.body.len() as u64 == chunk.end - chunk.start + 1;
    (whole && matches(&entry.head, chunk, crate::now_ms())).then_some((entry.body, tier))
}

/// The object a chunked body is read from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its cache key.
    pub object: String,
    /// Its head (ETag, length).
    pub head: Head,
    /// Its length.
    pub length: u64,
    /// The flight that brought its first chunk, when this viewer joined it.
    pub first: Option<Arc<Flight>>,
    /// Whether its chunks earn a place on disk.
    pub admitted: bool,
    /// The `CDN-Loop` of the child PoP's request it serves, if any.
    pub via: Option<String>,
}

/// Bytes `start .. start + len` of the object, as they come from the cache or the origin.
/// A task assembles them (cache lookups are not `Sync`, response bodies must be); it stops
/// when the viewer goes.
pub fn body(
    edge: Arc<Edge>,
    source: Source,
    start: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static {
    let size = edge.cache.chunk_size().max(1);
    let end = start + len;
    let first = start / size;
    let past = if len == 0 { first } else { (end - 1) / size + 1 };
    let (indices, last) = (first..past, past.saturating_sub(1));
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let parts = stream::iter(indices).then(|i| {
            let chunk = Chunk::of(size, source.length, i, source.head.etag.clone());
            part(edge.clone(), source.clone(), chunk, start..end, last)
        });
        let mut pieces = std::pin::pin!(parts.flatten());
        while let Some(piece) = pieces.next().await {
            if tx.send(piece).await.is_err() {
                return;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|piece| (piece, rx)) })
}

/// The bytes of `chunk` that fall within `wanted`.
async fn part(
    edge: Arc<Edge>,
    source: Source,
    chunk: Chunk,
    wanted: std::ops::Range<u64>,
    last: u64,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let from = wanted.start.max(chunk.start) - chunk.start;
    let to = wanted.end.min(chunk.end + 1) - chunk.start;
    if chunk.index < last {
        read_ahead(&edge, &source, chunk.index + 1);
    }
    if let Some((bytes, tier)) = cached(&edge, &source.object, &chunk).await {
        if source.admitted && tier == Tier::Memory {
            edge.cache.promote(&key(&source.object, chunk.index));
        }
        edge.metrics.lookup(Lookup::Hit(tier));
        edge.metrics.served(tier.into(), to - from);
        return stream::once(async move { Ok(bytes.slice(from as usize..to as usize)) }).boxed();
    }
    edge.metrics.lookup(Lookup::Miss);
    let flight = match source.first.as_ref().filter(|_| chunk.index == 0) {
        Some(first) => first.clone(),
        None => fetch::start(
            &edge,
            Want { object: source.object.clone(), chunk: Some(chunk), via: source.via.clone() },
            source.admitted,
        ),
    };
    match crate::flow::wait_head(&edge, &flight).await {
        Ok(head) if head.status == 200 => {
            let counted = edge.clone();
            crate::flow::slice_stream(flight.stream(), from, Some(to - from))
                .inspect(move |c| {
                    if let Ok(c) = c {
                        counted.metrics.served(crate::metrics::Source::Origin, c.len() as u64);
                    }
                })
                .boxed()
        }
        Ok(head) => {
            stream::once(async move { Err(std::io::Error::other(format!("origin answered {}", head.status))) }).boxed()
        }
        Err(e) => stream::once(async move { Err(std::io::Error::other(e)) }).boxed(),
    }
}

/// Starts fetching chunk `index` unless it is cached: it is needed as soon as this one is sent.
fn read_ahead(edge: &Arc<Edge>, source: &Source, index: u64) {
    let chunk = Chunk::of(edge.cache.chunk_size().max(1), source.length, index, source.head.etag.clone());
    fetch::start_unless_cached(
        edge,
        Want { object: source.object.clone(), chunk: Some(chunk), via: source.via.clone() },
        source.admitted,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_object() {
        let c = Chunk::of(100, 250, 0, None);
        assert_eq!((c.start, c.end), (0, 99));
        let c = Chunk::of(100, 250, 2, None);
        assert_eq!((c.start, c.end), (200, 249));
        assert_eq!(content_range("bytes 0-99/250"), Some((0, 99, 250)));
        assert_eq!(content_range("bytes 9-1/250"), None);
        assert_eq!(content_range("bytes */250"), None);
        assert_eq!(content_range("bytes 0-250/250"), None);
    }
}
