//! Durations (`30s`, `5m`, `1h30m`, `250ms`) and byte sizes (`4MiB`, `300MB`) as people write
//! them in scenario files and on the command line.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses `30s`, `1.5s`, `5m`, `2h`, `1h30m`, `250ms`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (e.g. 30s, 5m, 1h30m, 250ms)");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = s.parse::<f64>() {
        return seconds_to_duration(seconds).ok_or_else(bad);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * factor;
    }
    seconds_to_duration(total).ok_or_else(bad)
}

fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    (0.0..1e12).contains(&seconds).then(|| Duration::from_secs_f64(seconds))
}

/// Parses `4MiB`, `512KiB`, `300MB`, `1GiB`, `1000`; a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a size (e.g. 4MiB, 300MB, 1048576)");
    let s = text.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let value: f64 = s[..split].parse().map_err(|_| bad())?;
    let factor: f64 = match s[split..].trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = value * factor;
    if (0.0..1.8e19).contains(&bytes) { Ok(bytes.round() as u64) } else { Err(bad()) }
}

/// Serde adapter: a duration written as a string (`"30s"`) or a number of seconds.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Text::deserialize(d)? {
        Text::Number(n) => {
            seconds_to_duration(n).ok_or_else(|| serde::de::Error::custom(format!("{n} is not a duration")))
        }
        Text::String(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

/// Serde adapter: a size written as a string (`"4MiB"`) or a number of bytes.
pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Text::deserialize(d)? {
        Text::Number(n) if n >= 0.0 && n.is_finite() => Ok(n as u64),
        Text::Number(n) => Err(serde::de::Error::custom(format!("{n} is not a size"))),
        Text::String(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Number(f64),
    String(String),
}

/// `1.5 GB`, `320 MB`, `12 kB`: decimal units, as network people count.
pub fn human_bytes(bytes: f64) -> String {
    let units = [(1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    for (scale, unit) in units {
        if bytes.abs() >= scale {
            return format!("{:.1} {unit}", bytes / scale);
        }
    }
    format!("{bytes:.0} B")
}

/// `850 Mbit/s` from bytes per second.
pub fn human_bits_per_second(bytes_per_second: f64) -> String {
    let bits = bytes_per_second * 8.0;
    let units = [(1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")];
    for (scale, unit) in units {
        if bits.abs() >= scale {
            return format!("{:.1} {unit}", bits / scale);
        }
    }
    format!("{bits:.0} bit/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("6min").unwrap(), Duration::from_secs(360));
        for bad in ["", "s", "5x", "-3s", "1h30", "m5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("300MB").unwrap(), 300_000_000);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("0.5 KiB").unwrap(), 512);
        assert!(parse_size("4 parsecs").is_err());
    }

    #[test]
    fn human_units_are_decimal() {
        assert_eq!(human_bytes(1_500_000_000.0), "1.5 GB");
        assert_eq!(human_bits_per_second(125_000_000.0), "1.0 Gbit/s");
        assert_eq!(human_bytes(12.0), "12 B");
    }
}
