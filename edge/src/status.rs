//! What the cache did for one response, said twice: `x-cache` (short, ours) and the standard
//! `Cache-Status` (RFC 9211), which lists every cache the request went through, the one
//! nearest the origin first. A PoP behind a parent (a regional shield) appends its own entry
//! to the parent's, so a viewer sees `"shield-1"; hit, "pop-a"; fwd=miss; stored`.

use crate::cache::Tier;
use crate::object::Head;

/// The longest upstream `Cache-Status` passed on; a longer one is dropped, not cut.
const MAX_CHAIN: usize = 1024;

/// How a response was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// From a tier of this PoP's cache, fresh.
    Hit(Tier),
    /// From the cache though stale, because the upstream failed (stale-if-error).
    Stale,
    /// Forwarded upstream: nothing was cached (`revalidated: false`) or only a stale copy.
    /// `chain` is the upstream's own `Cache-Status`, when it is a cache too.
    Forwarded {
        /// A stale copy was held and asked for again.
        revalidated: bool,
        /// The upstream's `Cache-Status`.
        chain: Option<String>,
    },
}

impl Served {
    /// A miss (nothing cached), with the upstream's `Cache-Status`.
    #[cfg(test)]
    pub fn miss(chain: Option<String>) -> Self {
        Self::Forwarded { revalidated: false, chain }
    }

    /// The `x-cache` value.
    pub fn x_cache(&self) -> &'static str {
        match self {
            Self::Hit(Tier::Memory) => "hit-memory",
            Self::Hit(Tier::Disk) => "hit-disk",
            Self::Stale => "stale",
            Self::Forwarded { .. } => "miss",
        }
    }

    /// The `Cache-Status` value: the upstream's entries (when forwarded), then this PoP's,
    /// for an object dated by `dating` at `now` (Unix ms). Written into one string.
    pub fn cache_status(&self, pop: &str, dating: &Dating, now: i64) -> String {
        use std::fmt::Write;
        let chain = match self {
            Self::Forwarded { chain: Some(chain), .. } => Some(chain.as_str()),
            _ => None,
        };
        let mut out = String::with_capacity(chain.map_or(0, |c| c.len() + 2) + pop.len() + 64);
        if let Some(chain) = chain {
            out.push_str(chain);
            out.push_str(", ");
        }
        let _ = write!(out, "\"{pop}\"");
        match self {
            Self::Hit(_) => out.push_str("; hit"),
            Self::Stale => out.push_str("; hit; detail=stale-if-error"),
            Self::Forwarded { revalidated, .. } => {
                out.push_str(if *revalidated { "; fwd=stale; fwd-status=200" } else { "; fwd=miss; fwd-status=200" });
                if dating.stored {
                    out.push_str("; stored");
                }
            }
        }
        if let Some(age) = dating.max_age_secs {
            let ttl = (dating.fetched_at + age as i64 * 1000 - now).div_euclid(1000);
            let _ = write!(out, "; ttl={ttl}");
        }
        out
    }
}

/// What `Cache-Status` and `Age` need to know of an object's head, copied out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dating {
    /// When the origin answered, Unix ms.
    pub fetched_at: i64,
    /// Its `max-age`.
    pub max_age_secs: Option<u64>,
    /// Whether a cache may keep it.
    pub stored: bool,
}

impl Dating {
    /// Of an object's head.
    pub fn of(head: &Head) -> Self {
        Self {
            fetched_at: head.fetched_at,
            max_age_secs: head.max_age_secs,
            stored: Head::cacheable(&head.cache_control),
        }
    }
}

/// An upstream's `Cache-Status`, if it is one worth passing on: visible ASCII and spaces, not
/// too long (it came from another PoP, but a broken one must not break our header).
pub fn upstream_chain(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_CHAIN && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// The `Age` of an object fetched at `fetched_at` (Unix ms), in whole seconds.
pub fn age_secs(fetched_at: i64, now: i64) -> i64 {
    (now - fetched_at).max(0) / 1000
}

/// When the origin answered, from a response an upstream cache says is `age` seconds old:
/// a second earlier than it says, since `Age` is rounded down. Erring early errs towards a
/// takedown: a tombstone drops objects fetched at or before it.
pub fn fetched_at(now: i64, age: Option<&str>) -> i64 {
    match age.and_then(|a| a.trim().parse::<i64>().ok()).filter(|a| *a >= 0) {
        Some(age) => now - (age.min(i64::MAX / 4000) + 1) * 1000,
        None => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(cache_control: &str, fetched_at: i64) -> Head {
        Head::new("video/mp4".into(), None, cache_control.into(), fetched_at)
    }

    #[test]
    fn entries_per_tier_nearest_the_origin_first() {
        let immutable = head("public, max-age=31536000, immutable", 0);
        assert_eq!(Served::Hit(Tier::Memory).cache_status("pop-a", &Dating::of(&immutable), 5_000), "\"pop-a\"; hit");
        let parent = Some("\"shield\"; fwd=miss; fwd-status=200; stored".to_owned());
        assert_eq!(
            Served::miss(parent).cache_status("pop-a", &Dating::of(&immutable), 0),
            "\"shield\"; fwd=miss; fwd-status=200; stored, \"pop-a\"; fwd=miss; fwd-status=200; stored"
        );
        let playlist = head("public, max-age=2", 10_000);
        assert_eq!(Served::Hit(Tier::Disk).cache_status("p", &Dating::of(&playlist), 10_500), "\"p\"; hit; ttl=1");
        assert_eq!(
            Served::Forwarded { revalidated: true, chain: None }.cache_status("p", &Dating::of(&playlist), 10_000),
            "\"p\"; fwd=stale; fwd-status=200; stored; ttl=2"
        );
        assert_eq!(
            Served::Stale.cache_status("p", &Dating::of(&playlist), 13_000),
            "\"p\"; hit; detail=stale-if-error; ttl=-1"
        );
        let private = head("no-store", 0);
        assert_eq!(
            Served::miss(None).cache_status("p", &Dating::of(&private), 0),
            "\"p\"; fwd=miss; fwd-status=200; ttl=0"
        );
    }

    #[test]
    fn upstream_values_are_checked_and_age_errs_early() {
        assert_eq!(upstream_chain(Some(" \"s\"; hit ")).as_deref(), Some("\"s\"; hit"));
        assert_eq!(upstream_chain(Some("a\r\nb")), None);
        assert_eq!(upstream_chain(Some(&"x".repeat(2000))), None);
        assert_eq!(upstream_chain(None), None);
        assert_eq!(fetched_at(100_000, Some("10")), 89_000);
        assert_eq!(fetched_at(100_000, Some("-3")), 100_000);
        assert_eq!(fetched_at(100_000, Some("soon")), 100_000);
        assert_eq!(fetched_at(100_000, None), 100_000);
        assert_eq!(age_secs(1_000, 3_999), 2);
    }
}
