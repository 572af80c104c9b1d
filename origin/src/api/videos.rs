//! Video resources: create (returning a pre-signed upload URL), read, search, update while the
//! bytes are still flowing, take down, and issue playback tokens; creators' webhooks.

use std::sync::Arc;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{accounts as account_api, now_secs, query, steering};
use crate::accounts::{self, Principal, access};
use crate::app::App;
use crate::cache;
use crate::error::{Error, Kind, Result};
use crate::lifecycle::{self, apply::Applied};
use crate::meta::ondemand::Pin;
use crate::meta::people::{Role, Scope as Can};
use crate::meta::{self, Audit, NewVideo, Privacy, Video, VideoPatch, VideoQuery, VideoState, Webhook};
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
    #[serde(default)]
    privacy: Privacy,
    /// One of the creator's channels (handle or id); the first one when absent.
    #[serde(default)]
    channel: Option<String>,
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
    /// tus creation URL, pre-signed for this video: at the creator's best PoP taking uploads.
    url: String,
    /// The same URL at the next PoPs taking uploads, then at `upload_url`: a client whose PoP
    /// dies resumes through one of them (an upload's id and offset are origin-wide).
    alternates: Vec<String>,
    protocol: &'static str,
    max_bytes: u64,
    expires_at: i64,
}

/// `POST /v1/videos`
pub async fn create(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Can::Upload).await?;
    if !who.is(Role::Creator) {
        return Err(Error::forbidden("role", "this account may not upload"));
    }
    let client = steering::client(app, &req).await;
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
    let channel = channel_for(app, &who, body.channel.as_deref()).await?;
    let quota = !matches!(who.via, accounts::Via::Bootstrap);
    let new = NewVideo {
        id: crate::secrets::random_hex(12)?,
        creator: who.id.clone(),
        title: body.title,
        description: body.description,
        language: body.language,
        filename: body.filename,
        size: body.size,
        content_type: ct,
        privacy: body.privacy,
        channel,
        now: meta::now(),
    };
    let video = match create_within_quota(app, new, quota).await? {
        Ok(video) => video,
        Err(refusal) => return Ok(refusal),
    };
    let grant = UploadGrant {
        video: video.id.clone(),
        max_bytes: body.size,
        expires: now_secs() + app.config.upload_url_ttl.as_secs() as i64,
    };
    let (url, alternates) = upload_urls(app, client, &video.id, &app.signer.upload_query(&grant)).await;
    let upload =
        UploadTicket { url, alternates, protocol: "tus/1.0.0", max_bytes: grant.max_bytes, expires_at: grant.expires };
    tracing::info!(video = %video.id, size = video.size, title = %video.title, "video created");
    Ok(web::json(StatusCode::CREATED, &Created { video, upload }))
}

/// Attempts at creating a video that other creates of the same account keep pushing over the
/// quota before it answers `429 quota_contended`.
const QUOTA_ATTEMPTS: u32 = 3;

/// Creates `new` unless it would pass its creator's quota (`quota`: the account has one). The
/// quota is checked before the video is created and again after, with it counted: creates of
/// one account at once all pass the first check (none of them is counted yet), and the second
/// sees every one created before it, so the one that passes the quota is taken back. All of
/// them may be taken back when they count each other; they then try again after a random
/// pause, and the first check refuses those that no longer fit.
async fn create_within_quota(
    app: &App,
    mut new: NewVideo,
    quota: bool,
) -> Result<std::result::Result<Video, Response>> {
    for attempt in 0..QUOTA_ATTEMPTS {
        if attempt > 0 {
            new.id = crate::secrets::random_hex(12)?;
        }
        if quota && let Some(refusal) = account_api::check_quota(app, &new.creator, new.size, meta::now()).await? {
            return Ok(Err(refusal));
        }
        let video = app.meta.create_video(&new).await?;
        if !quota || account_api::within_quota(app, &new.creator, meta::now()).await? {
            return Ok(Ok(video));
        }
        // Nobody has its id yet, so nothing can have moved it on; if something did, say so.
        if !app.meta.discard_new_video(&video.id).await? {
            return Err(Error::Internal(format!("video {} over the quota could not be taken back", video.id)));
        }
        tracing::info!(video = %video.id, creator = %new.creator, "created over the quota with another: taken back");
        let pause = u64::from_str_radix(&crate::secrets::random_hex(1)?, 16).unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(5 + pause / 4)).await;
    }
    let message = "other uploads of this account are being created at the same moment: try again";
    Ok(Err(web::retry_later(Kind::RateLimited, "quota_contended", message, 1)))
}

/// The tus creation URL with `signed` (its query) at the creator's best PoP that takes
/// uploads, and the alternates: the next such PoPs, then `upload_url`. Without a live upload
/// PoP, `upload_url` alone, as without steering.
async fn upload_urls(app: &App, client: std::net::IpAddr, video: &str, signed: &str) -> (String, Vec<String>) {
    let at = |base: &str| format!("{}/v1/uploads?{signed}", base.trim_end_matches('/'));
    let configured = at(&app.config.upload_url);
    let mut urls: Vec<String> =
        // An original is clear content: creators are steered to our own PoPs only.
        steering::pathways(app, client, video)
            .await
            .into_iter()
            .filter(|p| p.uploads && !p.partner)
            .map(|p| at(&p.url))
            .collect();
    if !urls.is_empty() && !urls.contains(&configured) {
        urls.push(configured.clone());
    }
    let mut urls = urls.into_iter();
    (urls.next().unwrap_or(configured), urls.collect())
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
        channel: None,
        // The catalogue and search list public videos only; owners list theirs at /v1/me/videos.
        public_only: true,
        include_deleted: false,
        limit: limit.clamp(1, 100),
        offset,
    };
    let videos = app.meta.list_videos(&query).await?;
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "videos": videos, "limit": query.limit, "offset": offset })))
}

/// `GET /v1/videos/{id}`: any public or unlisted video; a private one for those it is for.
pub async fn get(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = accounts::caller(app, &req).await?;
    let video = watchable(app, id, who.as_ref()).await?;
    describe(app, video, who.as_ref()).await
}

/// A video as `GET /v1/videos/{id}` shows it to `who`: rung states and pin, and for its owner
/// and moderators its shares and moderation decisions.
async fn describe(app: &App, mut video: Video, who: Option<&Principal>) -> Result<Response> {
    let id = video.id.clone();
    let id = id.as_str();
    let rungs = app.ondemand.rungs(id).await?;
    for r in &mut video.renditions {
        r.state = rungs.iter().find(|s| s.name == r.name).map(|s| s.state);
    }
    let pin = app.ondemand.pin(id).await?;
    let internals = access::sees_internals(&video, who);
    let channel = match &video.channel {
        Some(c) => app.people.channel(c).await?,
        None => None,
    };
    let mut body = serde_json::to_value(&video)?;
    body["pin"] = serde_json::to_value(pin)?;
    // What the watch page links to and names.
    body["channel_handle"] = serde_json::to_value(channel.as_ref().map(|c| &c.handle))?;
    body["channel_name"] = serde_json::to_value(channel.as_ref().map(|c| &c.name))?;
    if internals {
        body["moderation"] = super::moderation::decisions_for_creator(app, id).await?.into();
    }
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
    let who = accounts::require(app, &req, Can::Manage).await?;
    let video = managed(app, id, &who).await?;
    let body: PinRequest = web::read_json(req).await?;
    crate::ondemand::policy::pin(app, id, body.pin).await?;
    cache::forget_video(app.cache.as_ref(), id).await;
    tracing::info!(video = id, pin = ?body.pin, "pin set");
    describe(app, video, Some(&who)).await
}

/// `PATCH /v1/videos/{id}`: accepted in any state but deleted, uploads included.
pub async fn patch(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = accounts::require(app, &req, Can::Manage).await?;
    let video = managed(app, id, &who).await?;
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
    if patch.poster.is_some_and(|n| usize::from(n) > encoder::layout::POSTER_CHOICES) {
        let most = encoder::layout::POSTER_CHOICES;
        return Err(Error::bad_request("bad_field", format!("poster: 0 (the encoder's pick) to {most}")));
    }
    if video.state == VideoState::Deleted {
        return Err(Error::refused(Kind::Gone, "deleted", "the video was taken down"));
    }
    if let Some(n) = patch.poster.filter(|&n| n > 0 && video.state == VideoState::Ready) {
        // Videos encoded before creators could choose have only the encoder's pick.
        let name = format!("{}{}", crate::storage::published(id), encoder::layout::poster_choice(usize::from(n)));
        if !app.blobs.exists(&name).await? {
            return Err(Error::refused(Kind::Conflict, "no_poster_choices", "this video has only its own poster"));
        }
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
    let who = accounts::require(app, &req, Can::Manage).await?;
    let video = find(app, id).await?;
    access::check_take_down(&video, &who)?;
    let takedown: Takedown = web::read_json_or_default(req, 16 * 1024).await?;
    let audit = Audit {
        at: meta::now(),
        actor: who.id.clone(),
        action: "takedown".into(),
        video_id: id.to_owned(),
        reason: takedown.reason,
    };
    // A creator's own takedown is for good; a moderator's keeps the video restorable.
    take_down(app, id, audit, !access::owns(&video, &who)).await
}

/// Takes a video down with its audit row: `{video, purge_seq}`. `restorable`: a moderator's
/// takedown, which keeps a ready video's bytes for `accounts.restore_grace`.
pub async fn take_down(app: &App, id: &str, audit: Audit, restorable: bool) -> Result<Response> {
    let done = if restorable {
        let until = audit.at + app.config.accounts.restore_grace.as_millis() as i64;
        lifecycle::apply::suspend(app, id, audit, until).await?
    } else {
        lifecycle::apply::take_down(app, id, audit).await?
    };
    match done {
        (Applied::Moved(updated), Some(purge)) => {
            Ok(web::json(StatusCode::OK, &serde_json::json!({ "video": updated, "purge_seq": purge })))
        }
        (Applied::Missing, _) => Err(Error::not_found("video")),
        _ => Err(Error::refused(Kind::Gone, "deleted", "the video was taken down")),
    }
}

/// `POST /v1/videos/{id}/restore`: a moderator undoes their takedown of a ready video while
/// it is retained (`409 not_restorable` after, or for a creator's own takedown).
pub async fn restore(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = accounts::require_role(app, &req, Role::Moderator).await?;
    let asked: Takedown = web::read_json_or_default(req, 16 * 1024).await?;
    let audit = Audit {
        at: meta::now(),
        actor: who.id.clone(),
        action: "restore".into(),
        video_id: id.to_owned(),
        reason: asked.reason,
    };
    match lifecycle::apply::restore(app, id, audit).await? {
        Applied::Moved(video) => describe(app, video, Some(&who)).await,
        Applied::Missing => Err(Error::not_found("video")),
        _ => Err(Error::refused(
            Kind::Conflict,
            "not_restorable",
            "only a ready video a moderator took down is restorable, until its retention ends",
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlaybackRequest {
    viewer_id: Option<String>,
    /// The viewer confirmed they want to see a video gated as sensitive.
    #[serde(default)]
    consent: bool,
}

/// `POST /v1/videos/{id}/playback`: a short-lived token and the playlist URLs, at the
/// viewer's best PoP (the pictures at the best one not run by a partner, which is sent
/// nothing clear), and the ranked PoPs; at `playback_url` without steering or a live PoP.
pub async fn playback(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let client = steering::client(app, &req).await;
    let who = accounts::caller(app, &req).await?;
    let asked: PlaybackRequest = web::read_json_or_default(req, 4096).await?;
    if let Some(v) = &asked.viewer_id
        && !is_safe_name(v)
    {
        return Err(Error::bad_request("bad_viewer", "viewer_id: 1-64 letters, digits, - or _"));
    }
    let video = watchable(app, id, who.as_ref()).await?;
    if video.gated && !asked.consent && !access::sees_internals(&video, who.as_ref()) {
        return Err(Error::refused(
            Kind::Forbidden,
            "consent_required",
            "this video is marked sensitive: confirm to watch",
        ));
    }
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
    let pathways = steering::pathways(app, client, id).await;
    let playback_url = app.config.playback_url.as_str();
    let media = pathways.first().map_or(playback_url, |p| p.url.as_str());
    let pictures = pathways.iter().find(|p| !p.partner).map_or(playback_url, |p| p.url.as_str());
    let base = format!("{}/p/{token}/{id}", media.trim_end_matches('/'));
    let picture_base = format!("{}/p/{token}/{id}", pictures.trim_end_matches('/'));
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
            "poster_url": format!("{picture_base}/{}", poster_name(&video)),
            "poster_choices": (1..=encoder::layout::POSTER_CHOICES)
                .map(|n| format!("{picture_base}/{}", encoder::layout::poster_choice(n)))
                .collect::<Vec<_>>(),
            "storyboard_url": format!("{picture_base}/{}", encoder::layout::STORYBOARD_VTT),
            "pathways": pathways,
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
    let who = accounts::require(app, &req, Can::Manage).await?.id;
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

/// The picture a video's poster is: its creator's choice, or the encoder's pick.
fn poster_name(video: &Video) -> String {
    match usize::from(video.poster) {
        0 => encoder::layout::POSTER.to_owned(),
        n => encoder::layout::poster_choice(n),
    }
}

/// A video by id, cache first.
pub async fn find(app: &App, id: &str) -> Result<Video> {
    if !is_safe_name(id) {
        return Err(Error::not_found("video"));
    }
    cache::video(app.cache.as_ref(), app.meta.as_ref(), id).await?.ok_or_else(|| Error::not_found("video"))
}

/// A video `who` may change (its owner's, or any for an admin).
pub async fn managed(app: &App, id: &str, who: &Principal) -> Result<Video> {
    let video = find(app, id).await?;
    access::check_manage(&video, who)?;
    Ok(video)
}

/// A video `who` may see and play.
pub async fn watchable(app: &App, id: &str, who: Option<&Principal>) -> Result<Video> {
    let video = find(app, id).await?;
    let shared = match who {
        Some(w) if video.privacy == Privacy::Private && !access::may_watch(&video, Some(w), false) => {
            app.people.is_shared(id, &w.id).await?
        }
        _ => false,
    };
    access::check_watch(&video, who, shared)?;
    Ok(video)
}

/// The channel a new video of `who` goes to: the one named (handle or id, theirs), or their
/// first; none for a bootstrap token.
async fn channel_for(app: &App, who: &Principal, named: Option<&str>) -> Result<Option<String>> {
    let mine = app.people.channels_of(&who.id).await?;
    match named {
        None => Ok(mine.first().map(|c| c.id.clone())),
        Some(n) => mine
            .iter()
            .find(|c| c.id == n || c.handle.eq_ignore_ascii_case(n))
            .map(|c| Some(c.id.clone()))
            .ok_or_else(|| Error::bad_request("bad_channel", "channel: one of your channels")),
    }
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
