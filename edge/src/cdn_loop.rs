//! RFC 8586 `CDN-Loop`: every PoP that asks a parent for an object adds its id to the list the
//! request came with, and a PoP that finds its own id on a request refuses it (`508`). Parents
//! are configured PoP by PoP, so two PoPs can name each other: without the list, each would
//! join the other's flight for the object and both would wait out their timeouts.

/// The header.
pub const HEADER: &str = "cdn-loop";

/// Whether `value` (the header, comma-separated `cdn-id [; parameters]` entries) names `id`.
pub fn names(value: &str, id: &str) -> bool {
    value.split(',').filter_map(|entry| entry.split(';').next()).any(|cdn| cdn.trim().eq_ignore_ascii_case(id))
}

/// The header a PoP of `id` sends on, after a request that came with `value` (if any).
pub fn with(value: Option<&str>, id: &str) -> String {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => format!("{v}, {id}"),
        None => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_matched_by_their_cdn_id_alone() {
        assert!(names("pop-a", "pop-a"));
        assert!(names("other-cdn; v=1, pop-a ;x=2", "pop-a"));
        assert!(names("POP-A", "pop-a"), "ids compare without case");
        assert!(!names("pop-ab, xpop-a", "pop-a"));
        assert!(!names("", "pop-a"));
    }

    #[test]
    fn a_pop_appends_itself() {
        assert_eq!(with(None, "pop-a"), "pop-a");
        assert_eq!(with(Some("  "), "pop-a"), "pop-a");
        assert_eq!(with(Some("pop-b"), "pop-a"), "pop-b, pop-a");
        assert!(names(&with(Some("cdn-x"), "pop-a"), "pop-a"));
    }
}
