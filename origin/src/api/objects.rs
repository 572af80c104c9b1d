//! Object serving: viewers with a delivery token (`/p/{token}/{id}/...`, the token in the
//! path so relative playlist URIs carry it to every segment), PoPs with their own credential
//! (`/v1/objects/{id}/...`). Range, ETag and cache rules by object kind: segments immutable,
//! playlists short-lived. Keys are not objects: the key service (`keys`) answers for them.
//! Nothing of a video leaves through any of these routes unless [`servable`] says so. With
//! steering on, the multivariant playlists and the MPD leave tagged for it (`steering::tag`).

use std::sync::Arc;

use bytes::Bytes;
use encoder::layout::{ObjectKind, object_kind};
use http::{Method, StatusCode, header};
use ring::digest::{SHA256, digest};

use super::{now_secs, query, require_pop};
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::meta::{Video, VideoState};
use crate::sign::{Scope, query_param};
use crate::web::{self, Request, Response};
use crate::{ondemand, storage};

/// `GET /p/{token}/{id}/{path}`.
pub async fn viewer(app: &Arc<App>, req: Request, token: &str, id: &str, rest: &[&str]) -> Result<Response> {
    app.signer.verify_playback(token, id, Scope::Delivery, now_secs())?;
    servable(app, id).await?;
    // Viewers served here directly count towards demand; PoPs report their own viewers.
    app.jit.demand.count(id, 1);
    serve(app, &req, id, rest).await
}

/// `GET /v1/objects/{id}/{path}` for PoPs pulling through their cache. A partner's PoP gets
/// only encrypted media and what describes it: pictures are clear frames of the video.
pub async fn pop(app: &Arc<App>, req: Request, id: &str, rest: &[&str]) -> Result<Response> {
    let pop = require_pop(app, &req).await?;
    if pop.partner && rest.last().is_some_and(|name| pop_config::tier::is_clear(name)) {
        return Err(Error::forbidden("clear_to_partner", "pictures are clear content: not served to a partner's PoP"));
    }
    servable(app, id).await?;
    serve(app, &req, id, rest).await
}

/// The one gate for everything of a video that leaves the origin (objects to viewers and
/// PoPs, keys): the video exists and its state is servable (`VideoState::is_servable`).
/// `410 deleted` for a taken-down video, `404 not_ready` for one not (yet) servable.
pub async fn servable(app: &App, id: &str) -> Result<Video> {
    let video = super::videos::find(app, id).await?;
    match refusal(video.state) {
        Some(e) => Err(e),
        None => Ok(video),
    }
}

/// Why nothing of a video in `state` may leave the origin, if anything: `410 deleted` once
/// taken down, `404 not_ready` before it is servable. Encodes on demand ask the same with the
/// state read fresh from the database.
pub fn refusal(state: VideoState) -> Option<Error> {
    match state {
        state if state.is_servable() => None,
        VideoState::Deleted => Some(Error::refused(Kind::Gone, "deleted", "the video was taken down")),
        state => Some(Error::refused(Kind::NotFound, "not_ready", format!("the video is {}", state.as_str()))),
    }
}

/// Whether a request path is the key service's (`/v1/keys/...`), whose responses only the
/// configured page origins may read.
pub fn is_key_path(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(segs.as_slice(), ["v1", "keys", ..])
}

/// `GET /v1/purges?after=SEQ`: takedowns edges must purge, in order.
pub async fn purges(app: &Arc<App>, req: Request) -> Result<Response> {
    require_pop(app, &req).await?;
    let after: i64 = query_param(query(&req), "after").and_then(|v| v.parse().ok()).unwrap_or(0);
    let purges = app.meta.purges_after(after).await?;
    let next = purges.last().map_or(after, |p| p.0);
    let list: Vec<_> = purges.iter().map(|(seq, video)| serde_json::json!({ "seq": seq, "video": video })).collect();
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "purges": list, "next": next })))
}

async fn serve(app: &Arc<App>, req: &Request, id: &str, rest: &[&str]) -> Result<Response> {
    let path = rest.join("/");
    let segment_ok = |s: &&str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let kind = object_kind(&path).filter(|_| rest.iter().all(segment_ok)).ok_or_else(|| Error::not_found("object"))?;
    let key = format!("{}{path}", storage::published(id));
    let meta = match (app.blobs.stat(&key).await, ondemand::segment_path(rest)) {
        (Ok(meta), Some((_, rung, n))) => {
            // A viewer plays this rung: the next segments should exist before they are asked for.
            if let Some(plan) = app.jit.plan(app, id).await? {
                ondemand::dispatch::look_ahead(app, &plan, id, rung, n + 1).await;
            }
            meta
        }
        (Ok(meta), None) => meta,
        (Err(e), Some((tree, rung, n))) if e.kind() == opendal::ErrorKind::NotFound => {
            if let Some(r) = ondemand::dispatch::serve(app, req, id, tree, rung, n).await? {
                return Ok(r);
            }
            app.blobs.stat(&key).await?
        }
        (Err(e), _) => return Err(e.into()),
    };
    let steered = crate::steering::tag::steerable(&path).filter(|_| app.config.steering.enabled);
    let (source, len, etag) = match steered {
        Some(format) => {
            let tagged = tagged(app, &key, id, format).await?;
            let (len, etag) = (tagged.len() as u64, tagged_etag(&tagged));
            (Source::Held(tagged), len, etag)
        }
        None => {
            let len = meta.content_length();
            let etag = meta.etag().map_or_else(
                || format!("\"{len:x}-{:x}\"", meta.last_modified().map_or(0, |t| t.into_inner().as_second())),
                str::to_owned,
            );
            (Source::Stored(&key), len, etag)
        }
    };
    let mut r = if none_match(req, &etag) {
        web::status(StatusCode::NOT_MODIFIED)
    } else {
        body_for_range(app, req, source, len).await?
    };
    web::set(&mut r, header::ETAG.as_str(), &etag);
    web::set(&mut r, header::ACCEPT_RANGES.as_str(), "bytes");
    web::set(&mut r, header::CONTENT_TYPE.as_str(), content_type(&path));
    let cache = match kind {
        ObjectKind::Immutable => "public, max-age=31536000, immutable",
        ObjectKind::Manifest => "public, max-age=10",
    };
    web::set(&mut r, header::CACHE_CONTROL.as_str(), cache);
    Ok(r)
}

/// Where an object's bytes come from: storage, streamed, or a body made here (a tagged
/// playlist), held whole.
enum Source<'a> {
    Stored(&'a str),
    Held(Bytes),
}

/// A steerable object as stored, tagged for steering. Playlists are small: read whole. One
/// that is not UTF-8 is not ours to edit and goes out as stored.
async fn tagged(app: &App, key: &str, id: &str, format: crate::steering::Format) -> Result<Bytes> {
    let stored = app.blobs.read(key).await?.to_bytes();
    let Ok(text) = std::str::from_utf8(&stored) else { return Ok(stored) };
    let server = super::steering::server_uri(app, id, format);
    Ok(Bytes::from(crate::steering::tag::tag(format, text, &server)))
}

/// The ETag of a body made here: from its bytes, so it changes with the stored object and
/// with the steering URL, differs from the stored object's, and is the same on every node.
fn tagged_etag(body: &[u8]) -> String {
    let sum = digest(&SHA256, body);
    format!("\"st-{}\"", pop_config::token::hex(&sum.as_ref()[..16]))
}

async fn body_for_range(app: &App, req: &Request, source: Source<'_>, len: u64) -> Result<Response> {
    let head = req.method() == Method::HEAD;
    match header_value(req, header::RANGE).map(|v| parse_range(v, len)) {
        None | Some(RangeRequest::Ignore) => {
            let mut r = if head { web::status(StatusCode::OK) } else { Response::new(read(app, source, None).await?) };
            web::set(&mut r, header::CONTENT_LENGTH.as_str(), &len.to_string());
            app.metrics.served_bytes.inc_by(if head { 0 } else { len });
            Ok(r)
        }
        Some(RangeRequest::Unsatisfiable) => {
            let mut r = web::error(
                &Error::refused(Kind::RangeNotSatisfiable, "range_not_satisfiable", "the range is outside the object"),
                "",
            );
            web::set(&mut r, header::CONTENT_RANGE.as_str(), &format!("bytes */{len}"));
            Ok(r)
        }
        Some(RangeRequest::Satisfiable(start, end)) => {
            let mut r = if head {
                web::status(StatusCode::PARTIAL_CONTENT)
            } else {
                let mut r = Response::new(read(app, source, Some((start, end))).await?);
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                r
            };
            web::set(&mut r, header::CONTENT_RANGE.as_str(), &format!("bytes {start}-{end}/{len}"));
            web::set(&mut r, header::CONTENT_LENGTH.as_str(), &(end - start + 1).to_string());
            app.metrics.served_bytes.inc_by(if head { 0 } else { end - start + 1 });
            Ok(r)
        }
    }
}

/// The object's bytes (or a range of them): stored ones streamed as storage yields them, not
/// gathered into one buffer first (the first byte leaves before the last is read).
async fn read(app: &App, source: Source<'_>, range: Option<(u64, u64)>) -> Result<web::Body> {
    use futures_util::TryStreamExt;
    use http_body_util::BodyExt;
    let key = match source {
        Source::Stored(key) => key,
        Source::Held(bytes) => {
            let (start, end) = range.map_or((0, bytes.len()), |(s, e)| (s as usize, e as usize + 1));
            return Ok(web::full(bytes.slice(start..end)));
        }
    };
    let reader = app.blobs.reader(key).await?;
    let stream = match range {
        None => reader.into_bytes_stream(..).await?,
        Some((start, end)) => reader.into_bytes_stream(start..end + 1).await?,
    };
    Ok(http_body_util::StreamBody::new(stream.map_ok(hyper::body::Frame::data)).boxed())
}

fn header_value(req: &Request, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request's `If-None-Match` (every field line of it) matches `etag`.
fn none_match(req: &Request, etag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| matches_etag(v, etag))
}

/// `If-None-Match` evaluation (RFC 9110 §13.1.2): `*` matches any current representation;
/// otherwise a comma-separated list of entity tags, compared weakly (`W/"x"` matches `"x"`).
/// A malformed list matches nothing past the point where it breaks.
pub fn matches_etag(header: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.strip_prefix("W/").unwrap_or(tag).to_owned();
    let ours = opaque(etag.trim());
    let mut rest = header.trim();
    if rest == "*" {
        return true;
    }
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let body = rest.strip_prefix("W/").unwrap_or(rest);
        // An entity tag is a quoted string without inner quotes (commas are allowed).
        let Some(end) = body.strip_prefix('"').and_then(|b| b.find('"')) else { return false };
        let tag = &body[..end + 2];
        if tag == ours {
            return true;
        }
        rest = &body[end + 2..];
    }
}

/// What a `Range` header asks of an object of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole object (no single byte range we understand).
    Ignore,
    /// Inclusive byte range.
    Satisfiable(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 §14.2); several ranges are served whole.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeRequest::Ignore };
    if spec.contains(',') {
        return RangeRequest::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeRequest::Ignore };
    let range = match (a.trim(), b.trim()) {
        ("", "") => return RangeRequest::Ignore,
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            Err(_) => return RangeRequest::Ignore,
        },
        (start, "") => match start.parse::<u64>() {
            Ok(s) => (s, len.saturating_sub(1)),
            Err(_) => return RangeRequest::Ignore,
        },
        (start, end) => match (start.parse::<u64>(), end.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
            _ => return RangeRequest::Ignore,
        },
    };
    if len == 0 || range.0 >= len { RangeRequest::Unsatisfiable } else { RangeRequest::Satisfiable(range.0, range.1) }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("m4s") => "video/iso.segment",
        Some("mp4") => "video/mp4",
        Some("jpg") => "image/jpeg",
        Some("vtt") => "text/vtt; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Satisfiable(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Satisfiable(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Satisfiable(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Satisfiable(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignore);
        assert_eq!(parse_range("items=0-1", 100), Ignore);
        assert_eq!(parse_range("bytes=9-1", 100), Ignore);
    }

    #[test]
    fn if_none_match_is_a_weak_comparison_over_a_list() {
        let ours = "\"1a2b-3c\"";
        assert!(matches_etag("\"1a2b-3c\"", ours));
        assert!(matches_etag("W/\"1a2b-3c\"", ours), "weak matches strong");
        assert!(matches_etag("\"1a2b-3c\"", "W/\"1a2b-3c\""), "strong matches weak");
        assert!(matches_etag("\"other\", W/\"1a2b-3c\"", ours), "a list");
        assert!(matches_etag("\"a,b\",\"1a2b-3c\"", ours), "commas inside a tag");
        assert!(matches_etag(" * ", ours));
        assert!(!matches_etag("\"1a2b-3d\"", ours));
        assert!(!matches_etag("1a2b-3c", ours), "unquoted is not a tag");
        assert!(!matches_etag("\"unterminated", ours));
        assert!(!matches_etag("", ours));
        assert!(!matches_etag("\"x\", *", ours), "* only on its own");
        assert!(is_key_path("/v1/keys/vid") && is_key_path("/v1/keys/vid/licence"));
        assert!(!is_key_path("/p/tok/vid/master.m3u8") && !is_key_path("/v1/key"));
    }
}
