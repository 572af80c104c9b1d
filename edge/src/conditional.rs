//! `If-None-Match` (RFC 9110 §13.1.2): a list of entity tags or `*`, compared weakly, so a
//! client holding `W/"x"` or `"x"` gets `304` for an object whose ETag is either. The same
//! answer on hits, misses and pages.

/// Whether a GET or HEAD carrying `if_none_match` should get `304 Not Modified` for a current
/// representation tagged `etag` (`None` when the origin gave none).
pub fn not_modified(if_none_match: Option<&str>, etag: Option<&str>) -> bool {
    let Some(header) = if_none_match else { return false };
    if header.trim() == "*" {
        return true;
    }
    let Some(current) = etag.and_then(opaque) else { return false };
    tags(header).any(|t| t == current)
}

/// The opaque tag of an entity tag (`W/"x"` and `"x"` both give `"x"`), `None` if malformed.
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let valid = tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"') && !tag[1..tag.len() - 1].contains('"');
    valid.then_some(tag)
}

/// The opaque tags of a comma-separated list. A tag may itself hold commas, so the list is
/// split at quotes rather than at commas; anything malformed ends the list.
fn tags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = list;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        let weak = usize::from(rest.starts_with("W/")) * 2;
        let body = rest[weak..].strip_prefix('"')?;
        let end = weak + 1 + body.find('"')? + 1;
        let tag = &rest[weak..end];
        rest = &rest[end..];
        Some(tag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_comparison_lists_and_star() {
        let etag = Some("\"abc\"");
        assert!(not_modified(Some("\"abc\""), etag));
        assert!(not_modified(Some("W/\"abc\""), etag), "weak comparison ignores W/");
        assert!(not_modified(Some("\"abc\""), Some("W/\"abc\"")));
        assert!(not_modified(Some("\"x\", W/\"abc\""), etag), "any tag of a list");
        assert!(not_modified(Some("\"a,b\",\"abc\""), etag), "commas inside a tag");
        assert!(not_modified(Some("*"), etag) && not_modified(Some(" * "), None), "* matches any representation");
        assert!(!not_modified(Some("\"abcd\""), etag));
        assert!(!not_modified(Some("abc"), etag), "unquoted is no tag");
        assert!(!not_modified(Some("\"abc\""), None), "nothing to compare with");
        assert!(!not_modified(None, etag));
        assert!(!not_modified(Some("\"abc"), etag), "unterminated");
        assert!(!not_modified(Some("\"x\" junk \"abc\""), etag), "malformed ends the list");
    }
}
