//! Video resources: create (returning a pre-signed upload URL), read, search, update while the
//! bytes are still flowing, take down, and issue playback tokens; creators' webhooks.

use std::sync::Arc;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{creator, now_secs, query};
use crate::app::App;
use crate::cache;
use crate::error::{Error, Kind, Result};
use crate::lifecycle::{self, apply::Applied};
use crate::meta::ondemand::Pin;
use crate::meta::{self, Audit, NewVideo, Video, VideoPatch, VideoQuery, VideoState, Webhook};
use crate::sign::{PlaybackGrant, Scope, UploadGrant, is_safe_name, query_param};
use crate::web::{self, Request, Response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVideo {
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_language")]
    language: String,
    filename: String,
    size: u64,
    content_type: String,
}

fn default_language() -> String {
    "und".into()
}

#[derive(Serialize)]
struct Created {
    video: Video,
    upload: UploadTicket,
}

#[derive(Serialize)]
struct UploadTicket {
    /// tus creation URL, pre-signed for this video.
    url: String,
    protocol: &'static str,
    max_bytes: u64,
    expires_at: i64,
}

/// `POST /v1/videos`
pub async fn create(app: &Arc<App>, req: Request) -> Result<Response> {
    let creator = creator(app, &req)?;
    let body: CreateVideo = web::read_json(req).await?;
    check_text("title", &body.title, 1, 500)?;
    check_text("description", &body.description, 0, 10_000)?;
    check_text("filename", &body.filename, 1, 255)?;
    check_language(&body.language)?;
    if body.size == 0 {
        return Err(Error::bad_request("empty_file", "size must be at least one byte"));
    }
    if body.size > app.config.max_upload_bytes {
        return Err(Error::refused(
            Kind::TooLarge,
            "file_too_large",
            format!("{} bytes is over the {}-byte limit", body.size, app.config.max_upload_bytes),
        ));
    }
    let ct = body.content_type.to_ascii_lowercase();
    if !(ct.starts_with("video/") || ct == "application/octet-stream" || ct == "application/mp4") {
        return Err(Error::refused(
            Kind::UnsupportedMedia,
            "not_a_video_type",
            format!("content type `{ct}` is not a video"),
        ));
    }
    let new = NewVideo {
        id: crate::secrets::random_hex(12)?,
        creator,
        title: body.title,
        description: body.description,
        language: body.language,
        filename: body.filename,
        size: body.size,
        content_type: ct,
        now: meta::now(),
    };
    let video = app.meta.create_video(&new).await?;
    let grant = UploadGrant {
        video: video.id.clone(),
        max_bytes: body.size,
        expires: now_secs() + app.config.upload_url_ttl.as_secs() as i64,
    };
    let upload = UploadTicket {
        url: format!("{}/v1/uploads?{}", app.config.upload_url.trim_end_matches('/'), app.signer.upload_query(&grant)),
        protocol: "tus/1.0.0",
        max_bytes: grant.max_bytes,
        expires_at: grant.expires,
    };
    tracing::info!(video = %video.id, size = video.size, title = %video.title, "video created");
    Ok(web::json(StatusCode::CREATED, &Created { video, upload }))
}

/// `GET /v1/videos?q=&limit=&offset=`
pub async fn list(app: &Arc<App>, req: Request) -> Result<Response> {
    let q = query(&req);
    let decoded = |k: &str| query_param(q, k).map(percent_decode).transpose();
    let limit = decoded("limit")?.map(|v| v.parse().map_err(|_| bad_param("limit"))).transpose()?.unwrap_or(20u32);
    let offset = decoded("offset")?.map(|v| v.parse().map_err(|_| bad_param("offset"))).transpose()?.unwrap_or(0u32);
    let query = VideoQuery {
        title: decoded("q")?.filter(|s| !s.is_empty()),
        creator: decoded("creator")?,
        include_deleted: false,
        limit: limit.clamp(1, 100),
        offset,
    };
    let videos = app.meta.list_videos(&query).await?;
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "videos": videos, "limit": query.limit, "offset": offset })))
}

/// `GET /v1/videos/{id}`
pub async fn get(app: &Arc<App>, id: &str) -> Result<Response> {
    let mut video = find(app, id).await?;
    let rungs = app.ondemand.rungs(id).await?;
    for r in &mut video.renditions {
        r.state = rungs.iter().find(|s| s.name == r.name).map(|s| s.state);
    }
    let pin = app.ondemand.pin(id).await?;
    let mut body = serde_json::to_value(&video)?;
    body["pin"] = serde_json::to_value(pin)?;
    Ok(web::json(StatusCode::OK, &body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    pin: Option<Pin>,
}

/// `PUT /v1/videos/{id}/pin`: keeps a video at one end of the materialisation policy
/// (`full`: every rung stored, never evicted; `floor`: never promoted) or lets the policy
/// decide again (`null`). Set before the upload completes, `full` encodes the whole ladder at
/// upload.
pub async fn set_pin(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = creator(app, &req)?;
    owned(app, id, &who).await?;
    let body: PinRequest = web::read_json(req).await?;
    crate::ondemand::policy::pin(app, id, body.pin).await?;
    cache::forget_video(app.cache.as_ref(), id).await;
    tracing::info!(video = id, pin = ?body.pin, "pin set");
    get(app, id).await
}

/// `PATCH /v1/videos/{id}`: accepted in any state but deleted, uploads included.
pub async fn patch(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = creator(app, &req)?;
    let video = owned(app, id, &who).await?;
    let patch: VideoPatch = web::read_json(req).await?;
    if let Some(t) = &patch.title {
        check_text("title", t, 1, 500)?;
    }
    if let Some(d) = &patch.description {
        check_text("description", d, 0, 10_000)?;
    }
    if let Some(l) = &patch.language {
        check_language(l)?;
    }
    if video.state == VideoState::Deleted {
        return Err(Error::refused(Kind::Gone, "deleted", "the video was taken down"));
    }
    let updated = app.meta.patch_video(id, &patch, meta::now()).await?.ok_or_else(|| Error::not_found("video"))?;
    cache::forget_video(app.cache.as_ref(), id).await;
    Ok(web::json(StatusCode::OK, &updated))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Takedown {
    #[serde(default)]
    reason: String,
}

/// `DELETE /v1/videos/{id}`: metadata, original, renditions, temporary files and key go; the
/// purge log tells edges; an audit row says who and why.
pub async fn takedown(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = creator(app, &req)?;
    owned(app, id, &who).await?;
    let body = web::read_body(req, 16 * 1024).await?;
    let takedown: Takedown = if body.is_empty() {
        Takedown::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::bad_request("bad_json", e.to_string()))?
    };
    let audit = Audit {
        at: meta::now(),
        actor: who,
        action: "takedown".into(),
        video_id: id.to_owned(),
        reason: takedown.reason,
    };
    match lifecycle::apply::take_down(app, id, audit).await? {
        (Applied::Moved(updated), Some(purge)) => {
            Ok(web::json(StatusCode::OK, &serde_json::json!({ "video": updated, "purge_seq": purge })))
        }
        (Applied::Missing, _) => Err(Error::not_found("video")),
        _ => Err(Error::refused(Kind::Gone, "deleted", "the video was taken down")),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlaybackRequest {
    viewer_id: Option<String>,
}

/// `POST /v1/videos/{id}/playback`: a short-lived token and the master playlist URL.
pub async fn playback(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let body = web::read_body(req, 4096).await?;
    let asked: PlaybackRequest = if body.is_empty() {
        PlaybackRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::bad_request("bad_json", e.to_string()))?
    };
    if let Some(v) = &asked.viewer_id
        && !is_safe_name(v)
    {
        return Err(Error::bad_request("bad_viewer", "viewer_id: 1-64 letters, digits, - or _"));
    }
    let video = find(app, id).await?;
    if !video.state.is_servable() {
        return Err(Error::refused(Kind::Conflict, "not_ready", format!("the video is {}", video.state.as_str())));
    }
    let grant = PlaybackGrant {
        video: id.to_owned(),
        expires: now_secs() + app.config.playback_ttl.as_secs() as i64,
        viewer: asked.viewer_id,
        scope: Scope::Delivery,
    };
    // Two capabilities: the delivery token rides in every URL a PoP serves; the key token
    // goes only to the key service, so no PoP ever holds anything that fetches a key.
    let token = app.signer.playback_token(&grant);
    let key_token = app.signer.playback_token(&PlaybackGrant { scope: Scope::Keys, ..grant.clone() });
    let base = format!("{}/p/{token}/{id}", app.config.playback_url.trim_end_matches('/'));
    let keys = format!("{}/v1/keys/{id}", app.config.key_url);
    Ok(web::json(
        StatusCode::OK,
        &serde_json::json!({
            "token": token,
            "key_token": key_token,
            "expires_at": grant.expires,
            "key_url": keys,
            "licence_url": format!("{keys}/licence"),
            "master_url": format!("{base}/{}", encoder::layout::MASTER_PLAYLIST),
            "dash_url": app.config.protection.writes_cbcs().then(|| format!("{base}/{}", encoder::layout::DASH_MANIFEST)),
            "poster_url": format!("{base}/{}", encoder::layout::POSTER),
            "storyboard_url": format!("{base}/{}", encoder::layout::STORYBOARD_VTT),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookRequest {
    url: String,
}

/// `PUT /v1/webhook`: where to POST this creator's ready/failed notifications.
pub async fn set_webhook(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = creator(app, &req)?;
    let body: WebhookRequest = web::read_json(req).await?;
    if body.url.len() > 2000 {
        return Err(Error::bad_request("bad_url", "the webhook URL is longer than 2000 characters"));
    }
    // Where it points is checked now (literal and resolved addresses) and again on every send.
    let url = app.outbound.check_url(&body.url).await?;
    let hook = Webhook { creator: who, url: url.to_string(), secret: crate::secrets::random_hex(32)? };
    app.meta.set_webhook(&hook).await?;
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "url": hook.url, "secret": hook.secret })))
}

/// A video by id, cache first.
pub async fn find(app: &App, id: &str) -> Result<Video> {
    if !is_safe_name(id) {
        return Err(Error::not_found("video"));
    }
    cache::video(app.cache.as_ref(), app.meta.as_ref(), id).await?.ok_or_else(|| Error::not_found("video"))
}

async fn owned(app: &App, id: &str, creator: &str) -> Result<Video> {
    let video = find(app, id).await?;
    if video.creator != creator {
        return Err(Error::forbidden("not_owner", "the video belongs to another creator"));
    }
    Ok(video)
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n < min || n > max || value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::bad_request("bad_field", format!("{field}: {min}-{max} characters without control codes")));
    }
    Ok(())
}

fn check_language(tag: &str) -> Result<()> {
    let ok = !tag.is_empty() && tag.len() <= 35 && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { Ok(()) } else { Err(Error::bad_request("bad_field", "language: a BCP 47 tag such as en, ko or pt-BR")) }
}

fn bad_param(name: &str) -> Error {
    Error::bad_request("bad_query", format!("query parameter `{name}` is not valid"))
}

/// Decodes `%XX` and `+` in a query value, which must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(|| bad_param("encoding"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad_param("encoding"))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad_param("encoding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_decode_to_utf8() {
        assert_eq!(percent_decode("%ED%95%9C%EA%B8%80+title").unwrap(), "한글 title");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%FF").is_err());
    }
}
