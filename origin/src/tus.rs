//! The tus 1.0.0 resumable upload protocol's headers: parsing and the values we announce.
//! Pure functions; `api::uploads` does the IO.

use base64::Engine;

use crate::error::{Error, Result};

/// Protocol version.
pub const VERSION: &str = "1.0.0";
/// Extensions this server implements.
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum,concatenation,expiration";
/// Checksum algorithms accepted in `Upload-Checksum`.
pub const CHECKSUM_ALGORITHMS: &str = "sha256";
/// Content type of PATCH bodies.
pub const OFFSET_CONTENT_TYPE: &str = "application/offset+octet-stream";

/// What `Upload-Concat` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// One part of a parallel upload.
    Partial,
    /// The concatenation of these partial upload ids, in order.
    Final(Vec<String>),
}

/// Parses `Upload-Concat: partial` or `final;URL URL ...` (URLs absolute or path-only).
pub fn parse_concat(value: &str) -> Result<Concat> {
    let value = value.trim();
    if value == "partial" {
        return Ok(Concat::Partial);
    }
    let Some(urls) = value.strip_prefix("final;") else {
        return Err(Error::bad_request("bad_concat", "Upload-Concat must be `partial` or `final;<urls>`"));
    };
    let ids: Option<Vec<String>> = urls.split_whitespace().map(upload_id_from_url).collect();
    match ids {
        Some(ids) if !ids.is_empty() => Ok(Concat::Final(ids)),
        _ => Err(Error::bad_request("bad_concat", "Upload-Concat final lists no valid upload URLs")),
    }
}

/// The upload id in `.../v1/uploads/{id}[?query]`.
pub fn upload_id_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let (_, id) = path.trim_end_matches('/').rsplit_once("/uploads/")?;
    crate::sign::is_safe_name(id).then(|| id.to_owned())
}

/// Parses `Upload-Metadata: key base64,key2 base64,flag`; values must be UTF-8.
pub fn parse_metadata(value: &str) -> Result<Vec<(String, Option<String>)>> {
    let bad = || Error::bad_request("bad_metadata", "Upload-Metadata is not `key base64,...` with UTF-8 values");
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, ' ');
            let key = it.next().filter(|k| !k.is_empty()).ok_or_else(bad)?;
            let value = match it.next() {
                None => None,
                Some(b64) => {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| bad())?;
                    Some(String::from_utf8(bytes).map_err(|_| bad())?)
                }
            };
            Ok((key.to_owned(), value))
        })
        .collect()
}

/// The expected SHA-256 of a PATCH body, from `Upload-Checksum: sha256 BASE64`.
pub fn parse_checksum(value: &str) -> Result<Vec<u8>> {
    let (algorithm, b64) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(Error::bad_request(
            "checksum_algorithm",
            format!("checksum algorithm `{algorithm}` is not supported; use sha256"),
        ));
    }
    let digest = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| Error::bad_request("bad_checksum_header", "Upload-Checksum value is not base64"))?;
    if digest.len() != 32 {
        return Err(Error::bad_request("bad_checksum_header", "a SHA-256 checksum has 32 bytes"));
    }
    Ok(digest)
}

/// An HTTP date (RFC 7231 IMF-fixdate) for `Upload-Expires`.
pub fn http_date(unix_secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_header() {
        assert_eq!(parse_concat("partial").unwrap(), Concat::Partial);
        assert_eq!(
            parse_concat("final;https://x/v1/uploads/aa?sig=1 /v1/uploads/bb").unwrap(),
            Concat::Final(vec!["aa".into(), "bb".into()])
        );
        assert_eq!(parse_concat("final;").unwrap_err().code(), "bad_concat");
        assert_eq!(parse_concat("final;/v1/uploads/../x").unwrap_err().code(), "bad_concat");
        assert_eq!(parse_concat("whole").unwrap_err().code(), "bad_concat");
    }

    #[test]
    fn metadata_header() {
        let m = parse_metadata("filename 7YWM7Iqk7Yq4Lm1wNA==,filetype dmlkZW8vbXA0,is_confidential").unwrap();
        assert_eq!(m[0], ("filename".into(), Some("테스트.mp4".into())));
        assert_eq!(m[1], ("filetype".into(), Some("video/mp4".into())));
        assert_eq!(m[2], ("is_confidential".into(), None));
        assert_eq!(parse_metadata("name !!!").unwrap_err().code(), "bad_metadata");
    }

    #[test]
    fn checksum_header() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(parse_checksum(&format!("sha256 {b64}")).unwrap(), vec![1u8; 32]);
        assert_eq!(parse_checksum("md5 AAAA").unwrap_err().code(), "checksum_algorithm");
        assert_eq!(parse_checksum("sha256 AAAA").unwrap_err().code(), "bad_checksum_header");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_796_036_645), "Mon, 30 Nov 2026 11:04:05 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
