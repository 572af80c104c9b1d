//! A cached HTTP object: the origin's body and the few headers that decide how it is served
//! again (content type, ETag, freshness). Stored as one `Bytes` (a small JSON head, then the
//! body), so a memory hit hands out the body without copying it. An entry may also stand for
//! an object kept in chunks (its head only) or for the origin's `404` (for a few seconds).

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// What an entry stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// The body is the object (or, under a chunk's key, that chunk).
    #[default]
    Whole,
    /// An object of `length` bytes larger than one cache block: the body is empty and the
    /// bytes are kept in chunks (`chunks.rs`).
    Chunked {
        /// The object's length.
        length: u64,
    },
    /// The origin answered `404`; remembered for `cache.not_found_ttl`.
    NotFound,
}

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
    /// What the entry stands for (entries written before chunks existed are whole).
    #[serde(default, skip_serializing_if = "is_whole")]
    pub form: Form,
}

fn is_whole(form: &Form) -> bool {
    *form == Form::Whole
}

impl Head {
    /// Reads freshness from the origin's `Cache-Control`.
    pub fn new(content_type: String, etag: Option<String>, cache_control: String, fetched_at: i64) -> Self {
        let max_age_secs =
            if cache_control.contains("immutable") { None } else { directive(&cache_control, "max-age").or(Some(0)) };
        Self { content_type, etag, cache_control, max_age_secs, fetched_at, form: Form::Whole }
    }

    /// The origin's `404` at `fetched_at`, fresh for `ttl`.
    pub fn not_found(ttl: std::time::Duration, fetched_at: i64) -> Self {
        Self {
            content_type: String::new(),
            etag: None,
            cache_control: "no-store".to_owned(),
            max_age_secs: Some(ttl.as_secs()),
            fetched_at,
            form: Form::NotFound,
        }
    }

    /// Whether the origin allows a shared cache to keep it at all.
    pub fn cacheable(cache_control: &str) -> bool {
        // Asked of every response served (for `Cache-Status`): compared in place, no copy.
        let has =
            |word: &str| cache_control.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word.as_bytes()));
        !(has("no-store") || has("private") || has("no-cache"))
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
        let missing = Head::not_found(std::time::Duration::from_secs(5), 1_000);
        assert!(missing.is_fresh(5_999) && !missing.is_fresh(6_000));
    }

    #[test]
    fn entries_written_before_forms_existed_are_whole() {
        let old = br#"{"content_type":"t","etag":null,"cache_control":"c","max_age_secs":null,"fetched_at":1}"#;
        let head: Head = serde_json::from_slice(old).unwrap();
        assert_eq!(head.form, Form::Whole);
        let chunked = Head { form: Form::Chunked { length: 9 }, ..head };
        let back: Head = serde_json::from_slice(&serde_json::to_vec(&chunked).unwrap()).unwrap();
        assert_eq!(back.form, Form::Chunked { length: 9 });
    }
}
