//! `Range` requests (RFC 9110 §14): one byte range served as 206, an unsatisfiable one as 416,
//! anything else (several ranges, other units) served whole.

/// What a `Range` header asks of an object of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole object.
    Whole,
    /// Inclusive byte range.
    Bytes(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a `Range` header value.
pub fn parse(value: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else { return RangeRequest::Whole };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeRequest::Whole };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", "") => return RangeRequest::Whole,
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            Err(_) => return RangeRequest::Whole,
        },
        (s, "") => match s.parse::<u64>() {
            Ok(s) => (s, len.saturating_sub(1)),
            Err(_) => return RangeRequest::Whole,
        },
        (s, e) => match (s.parse::<u64>(), e.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
            _ => return RangeRequest::Whole,
        },
    };
    if len == 0 || start >= len { RangeRequest::Unsatisfiable } else { RangeRequest::Bytes(start, end) }
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::*;
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(None, 100), Whole);
        assert_eq!(parse(Some("bytes=0-9"), 100), Bytes(0, 9));
        assert_eq!(parse(Some("bytes=90-"), 100), Bytes(90, 99));
        assert_eq!(parse(Some("bytes=-10"), 100), Bytes(90, 99));
        assert_eq!(parse(Some("bytes=50-500"), 100), Bytes(50, 99));
        assert_eq!(parse(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse(Some("items=0-1"), 100), Whole);
        assert_eq!(parse(Some("bytes=9-1"), 100), Whole);
    }
}
