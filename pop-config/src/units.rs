//! Byte sizes and durations as people write them: `"256MiB"`, `"4GiB"`, `"300s"`, `"10m"`.

use std::time::Duration;

use toml::de::DeValue;

use crate::document::{count, string};

const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

const DURATION_UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// A size field: integer bytes, or a string such as `"256MiB"`.
pub(crate) fn size(v: &DeValue<'_>) -> Result<u64, String> {
    match v {
        DeValue::Integer(_) => count(v),
        _ => parse_size(string(v)?),
    }
}

/// A duration field: a string such as `"300s"`.
pub(crate) fn duration(v: &DeValue<'_>) -> Result<Duration, String> {
    parse_duration(string(v)?)
}

/// Parses `"<n>"` (bytes) or `"<n><unit>"` with a unit of B, KiB, MiB, GiB, TiB, KB, MB, GB, TB.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let refuse = || format!("`{text}` is not a size (write bytes, or e.g. \"256MiB\", \"4GiB\", \"500MB\")");
    let (digits, unit) = split_number(text).ok_or_else(refuse)?;
    let scale = match unit {
        "" => 1,
        _ => SIZE_UNITS.iter().find(|(name, _)| *name == unit).map(|(_, scale)| *scale).ok_or_else(refuse)?,
    };
    let n: u64 = digits.parse().map_err(|_| refuse())?;
    n.checked_mul(scale).ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `"<n><unit>"` with a unit of ms, s, m or h.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let refuse = || format!("`{text}` is not a duration (write e.g. \"500ms\", \"30s\", \"10m\", \"1h\")");
    let (digits, unit) = split_number(text).ok_or_else(refuse)?;
    let millis = DURATION_UNITS.iter().find(|(name, _)| *name == unit).map(|(_, ms)| *ms).ok_or_else(refuse)?;
    let n: u64 = digits.parse().map_err(|_| refuse())?;
    n.checked_mul(millis).map(Duration::from_millis).ok_or_else(|| format!("`{text}` is too long"))
}

/// Splits `"12 MiB"` into `("12", "MiB")`; `None` unless it starts with a digit.
fn split_number(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    (end > 0).then(|| (&text[..end], text[end..].trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4 GiB"), Ok(4 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        for bad in ["", "MiB", "12 parsecs", "1.5GiB", "-1", "12mib", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "10", "s", "10 fortnights", "1.5s", "-3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
