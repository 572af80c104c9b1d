//! A cached HTTP object: the origin's body and the few headers that decide how it is served
//! again (content type, ETag, freshness). Stored as one `Bytes` (a small JSON head, then the
//! body), so a memory hit hands out the body without copying it.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// What the edge remembers about an object besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// `Content-Type` from the origin.
    pub content_type: String,
    /// `ETag` from the origin, if any.
    pub etag: Option<String>,
    /// `Cache-Control` from the origin, passed on to viewers.
    pub cache_control: String,
    /// Fresh for this long after `fetched_at` (immutable objects: forever).
    pub max_age_secs: Option<u64>,
    /// When the origin answered, Unix milliseconds.
    pub fetched_at: i64,
}

impl Head {
    /// Reads freshness from the origin's `Cache-Control`.
    pub fn new(content_type: String, etag: Option<String>, cache_control: String, fetched_at: i64) -> Self {
        let max_age_secs =
            if cache_control.contains("immutable") { None } else { directive(&cache_control, "max-age").or(Some(0)) };
        Self { content_type, etag, cache_control, max_age_secs, fetched_at }
    }

    /// Whether the origin allows a shared cache to keep it at all.
    pub fn cacheable(cache_control: &str) -> bool {
        let cc = cache_control.to_ascii_lowercase();
        !(cc.contains("no-store") || cc.contains("private") || cc.contains("no-cache"))
    }

    /// Whether, though stale, it may stand in for an unreachable origin at `now` (Unix ms):
    /// no longer than `grace` past its freshness (stale-if-error).
    pub fn stale_within(&self, now: i64, grace: std::time::Duration) -> bool {
        match self.max_age_secs {
            None => true,
            Some(age) => now - self.fetched_at < (age as i64) * 1000 + grace.as_millis() as i64,
        }
    }

    /// Whether it may be served without asking the origin at `now` (Unix ms).
    pub fn is_fresh(&self, now: i64) -> bool {
        match self.max_age_secs {
            None => true,
            Some(age) => now - self.fetched_at < (age as i64) * 1000,
        }
    }
}

fn directive(cache_control: &str, name: &str) -> Option<u64> {
    cache_control.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').parse().ok())?
    })
}

/// A cached object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Headers that matter.
    pub head: Head,
    /// The body.
    pub body: Bytes,
}

impl Object {
    /// One buffer: `[u32 head length][head JSON][body]`.
    pub fn encode(&self) -> Bytes {
        Self::encode_pieces(&self.head, std::slice::from_ref(&self.body), &[])
    }

    /// The same buffer for a body that arrived in pieces, with its body copied once.
    pub fn encode_pieces(head: &Head, pieces: &[Bytes], tail: &[u8]) -> Bytes {
        let head = serde_json::to_vec(head).unwrap_or_default();
        let body = pieces.iter().map(Bytes::len).sum::<usize>() + tail.len();
        let mut buf = BytesMut::with_capacity(4 + head.len() + body);
        buf.put_u32(head.len() as u32);
        buf.put_slice(&head);
        pieces.iter().for_each(|p| buf.put_slice(p));
        buf.put_slice(tail);
        buf.freeze()
    }

    /// The inverse of [`encode`](Self::encode); the body shares `bytes`' memory.
    pub fn decode(bytes: &Bytes) -> Option<Self> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let head = serde_json::from_slice(bytes.get(4..4 + len)?).ok()?;
        Some(Self { head, body: bytes.slice(4 + len..) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_shares_the_body() {
        let o = Object {
            head: Head::new(
                "video/iso.segment".into(),
                Some("\"e\"".into()),
                "public, max-age=31536000, immutable".into(),
                5,
            ),
            body: Bytes::from_static(b"segment bytes"),
        };
        let enc = o.encode();
        let back = Object::decode(&enc).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.body.as_ptr(), enc[enc.len() - 13..].as_ptr(), "no copy");
        assert!(Object::decode(&Bytes::from_static(b"\0\0")).is_none());
    }

    #[test]
    fn freshness_from_cache_control() {
        let seg = Head::new(String::new(), None, "public, max-age=31536000, immutable".into(), 0);
        assert!(seg.is_fresh(i64::MAX / 2));
        let playlist = Head::new(String::new(), None, "public, max-age=10".into(), 1_000);
        assert!(playlist.is_fresh(10_999) && !playlist.is_fresh(11_000));
        let unknown = Head::new(String::new(), None, String::new(), 0);
        assert!(!unknown.is_fresh(1));
        assert!(!Head::cacheable("no-store, private") && Head::cacheable("public, max-age=10"));
    }
}
